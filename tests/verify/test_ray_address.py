"""Which Ray cluster `--executor ray` uses (issue #27, item 8). Without --address, a
private local instance, even beside a cluster started with `ray start --head` on this
machine or with RAY_ADDRESS set (a plain `ray.init()` joins that cluster, and then refuses
nflc's CPU count: "When connecting to an existing cluster, num_cpus ... must not be
provided"); `--address auto` joins it deliberately. A stand-in `ray` module records what
nflc asks of it, so this runs without starting Ray."""

from __future__ import annotations

import os
import sys
import types

import pytest

from nflc.verify.ray_executor import RayExecutor
from nflc.verify.train import TrainConfig


@pytest.fixture
def fake_ray(monkeypatch):
    calls: list[dict] = []

    def init(address=None, **kwargs):
        # what ray.init would see: its address argument and the environment
        calls.append({"address": address, "num_cpus": kwargs.get("num_cpus"),
                      "RAY_ADDRESS": os.environ.get("RAY_ADDRESS")})

    module = types.SimpleNamespace(init=init, is_initialized=lambda: False, shutdown=lambda: None,
                                   cluster_resources=lambda: {"CPU": 2.0})
    monkeypatch.setitem(sys.modules, "ray", module)
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")  # as after 'ray start --head' told the user to set it
    return calls


def test_no_address_starts_a_private_local_instance(fake_ray):
    RayExecutor(workers=2).prepare(TrainConfig())
    assert fake_ray == [{"address": "local", "num_cpus": 2, "RAY_ADDRESS": None}]
    assert os.environ["RAY_ADDRESS"] == "10.1.2.3:6379"  # the user's environment is given back


def test_address_auto_joins_the_cluster_of_this_machine(fake_ray):
    RayExecutor(address="auto").prepare(TrainConfig())
    assert fake_ray == [{"address": "auto", "num_cpus": None, "RAY_ADDRESS": "10.1.2.3:6379"}]
