"""A user's data (`--dataset PATH`: .npz files and CIFAR-10 python-batch folders written
here), the shipped 3x32x32 image set, the default dataset chosen by a space's input, and
every kind of bad data file refused before any work or database (exit 2)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nflc.cli import app
from nflc.data import DATASETS, InputShapeError, default_dataset, fit_input_shape, fit_space, load_dataset
from nflc.datafiles import DataFileError, fingerprint, read

REPO = Path(__file__).resolve().parents[2]
NB201 = REPO / "specs" / "nb201.nfl"
H3 = REPO / "specs" / "nfl_h3.nfl"
ONE_NB201 = ["--space", "nb201", "--archs", "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"]


def cli(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


def images(n: int, seed: int = 0, shape=(3, 32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def write_cifar(folder: Path, batches: dict[str, tuple[np.ndarray, list[int]]], protocol: int = 2,
                names: list[str] | None = None) -> Path:
    """Batch files as CIFAR-10's authors pickled them: bytes keys, a uint8 (n, 3072) array."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in batches.items():
        with (folder / name).open("wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"img.png"] * len(labels)}, fh, protocol=protocol)
    if names is not None:
        with (folder / "batches.meta").open("wb") as fh:
            pickle.dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": 10}, fh, protocol=protocol)
    return folder


# ------------------------------------------------------------------ .npz


def test_an_npz_file_loads_as_it_was_saved(tmp_path):
    x = images(30)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.name == str((tmp_path / "d.npz").resolve()) and ds.classes == 3 and ds.input_shape == (3, 32, 32)
    assert torch.equal(ds.x, torch.from_numpy(x)) and ds.y.tolist() == y.tolist()
    sub = load_dataset(str(tmp_path / "d.npz"), seed=1, n=9)  # stratified: 3 of each class, real rows
    assert sorted(sub.y.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    rows = {r.tobytes() for r in x}
    assert all(r.tobytes() in rows for r in sub.x.numpy())


def test_uint8_pixels_are_scaled_and_labels_may_be_a_column_of_integral_floats(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "u.npz", x=x, y=(np.arange(12) % 4).astype(np.float64).reshape(-1, 1))
    ds = load_dataset(str(tmp_path / "u.npz"))
    np.testing.assert_array_equal(ds.x.numpy(), x.astype(np.float32) / 255.0)
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == [i % 4 for i in range(12)]


def test_channels_last_images_are_moved_channels_first(tmp_path):
    nhwc = np.random.default_rng(1).random((4, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "nhwc.npz", x=nhwc, y=np.arange(4))
    ds = fit_input_shape(load_dataset(str(tmp_path / "nhwc.npz")), (3, 32, 32))
    assert ds.input_shape == (3, 32, 32)
    for i, h, w, c in [(0, 0, 0, 0), (1, 5, 7, 2), (3, 31, 30, 1)]:
        assert float(ds.x[i, c, h, w]) == float(nhwc[i, h, w, c])
    flat = fit_input_shape(load_dataset(str(tmp_path / "nhwc.npz")), (3072,))  # an MLP: a plain reshape
    assert torch.equal(flat.x, torch.from_numpy(nhwc.reshape(4, -1)))


def test_labels_beyond_the_spaces_outputs_are_refused():
    ds = load_dataset("digits", n=50)
    assert fit_space(ds, (64,), (10,)).x.shape == (50, 64)
    with pytest.raises(InputShapeError, match=r"labels up to 9 \(10 classes\) but space 's' has 4 outputs"):
        fit_space(ds, (64,), (4,), "space 's'")


# ------------------------------------------------------------------ CIFAR-10 folders


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_cifar10_folder_is_read_batch_by_batch_as_rgb_planes(tmp_path, protocol):
    rng = np.random.default_rng(2)
    batches = {name: (rng.integers(0, 256, (5, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, 5)])
               for name in ("data_batch_1", "data_batch_2", "test_batch")}
    folder = write_cifar(tmp_path / "cifar-10-batches-py", batches, protocol,
                         ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    for given in (folder, tmp_path):  # the batch folder itself, or the folder the archive was unpacked in
        ds = load_dataset(str(given))
        assert ds.input_shape == (3, 32, 32) and ds.classes == 10 and len(ds) == 15
        raw = np.concatenate([batches[n][0] for n in ("data_batch_1", "data_batch_2", "test_batch")])
        labels = sum((batches[n][1] for n in ("data_batch_1", "data_batch_2", "test_batch")), [])
        assert ds.y.tolist() == labels
        # CIFAR-10's layout: the first 1024 bytes of a row are the red plane, row-major
        pixel = lambda v: float(np.float32(v) / np.float32(255))  # noqa: E731
        assert float(ds.x[0, 0, 0, 1]) == pixel(raw[0, 1])
        assert float(ds.x[7, 1, 2, 3]) == pixel(raw[7, 1024 + 2 * 32 + 3])
        assert float(ds.x[14, 2, 31, 31]) == pixel(raw[14, 3071])
    assert read(folder).class_names[9] == "truck"


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    tmp_path.joinpath("evil").mkdir()
    with (tmp_path / "evil" / "data_batch_1").open("wb") as fh:
        pickle.dump({b"data": Payload(), b"labels": [0]}, fh)
    with pytest.raises(DataFileError, match="not a CIFAR-10 python batch .*would build"):
        load_dataset(str(tmp_path / "evil"))
    assert not marker.exists()


def test_a_changed_file_has_another_fingerprint(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=images(6), y=np.arange(6) % 2)
    before = fingerprint(path)
    np.savez(path, x=images(6, seed=1), y=np.arange(6) % 2)
    assert fingerprint(path) != before and len(before) == 64
    assert len(load_dataset(str(path))) == 6 and float(load_dataset(str(path)).x[0, 0, 0, 0]) == images(6, 1)[0, 0, 0, 0]


# ------------------------------------------------------------------ the shipped image set


def test_mnist5k_rgb32_is_mnist5k_padded_to_32_and_repeated_over_3_channels():
    base = load_dataset("mnist5k", seed=3, n=200)
    rgb = load_dataset("mnist5k_rgb32", seed=3, n=200)
    assert rgb.x.shape == (200, 3, 32, 32) and torch.equal(rgb.y, base.y)
    img = base.x.reshape(200, 28, 28)
    for c in range(3):
        assert torch.equal(rgb.x[:, c, 2:30, 2:30], img)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert float(rgb.x[:, :, border].abs().max()) == 0.0
    assert DATASETS["mnist5k_rgb32"].size == 5000 and len(load_dataset("mnist5k_rgb32")) == 5000


def test_the_default_dataset_is_the_shipped_one_that_fits_the_space():
    assert default_dataset((784,)) == "mnist5k" and default_dataset((1, 28, 28)) == "mnist5k"
    assert default_dataset((3, 32, 32)) == "mnist5k_rgb32" and default_dataset((3072,)) == "mnist5k_rgb32"
    assert default_dataset((64,)) == "digits" and default_dataset((40,)) == "mnist1d"
    assert default_dataset((7, 7)) == "mnist5k"  # none fits: mnist5k's shape error says what to do


def test_nb201_verifies_on_the_shipped_image_set_by_default(tmp_path):
    db = tmp_path / "r.sqlite"
    res = cli("verify", NB201, *ONE_NB201, "--samples", "40", "--epochs", "1", "--quiet", "--db", db)
    assert res.exit_code == 0, res.output
    assert "using mnist5k_rgb32" in res.output and "mnist5k_rgb32 (32 train / 8 test)" in res.output
    from nflc.verify.store import ResultStore

    with ResultStore.open_readonly(db) as store:
        assert store.config["data"]["dataset"] == "mnist5k_rgb32" and "sha256" not in store.config["data"]
        assert list(store.statuses().values()) == ["done"]


def test_a_data_file_run_records_the_file_and_refuses_it_once_changed(tmp_path):
    path, db = tmp_path / "d.npz", tmp_path / "r.sqlite"
    np.savez(path, x=images(40), y=np.arange(40) % 10)
    res = cli("verify", NB201, *ONE_NB201, "--dataset", path, "--epochs", "1", "--quiet", "--db", db)
    assert res.exit_code == 0, res.output
    from nflc.verify.store import ResultStore

    with ResultStore.open_readonly(db) as store:
        assert store.config["data"]["dataset"] == str(path.resolve())
        assert store.config["data"]["sha256"] == fingerprint(path)
    again = cli("verify", NB201, *ONE_NB201, "--dataset", path, "--epochs", "1", "--quiet", "--db", db)
    assert again.exit_code == 0 and "already done 1" in again.output
    np.savez(path, x=images(40, seed=5), y=np.arange(40) % 10)
    changed = cli("verify", NB201, *ONE_NB201, "--dataset", path, "--epochs", "1", "--quiet", "--db", db)
    assert changed.exit_code == 2 and "belongs to another run" in changed.output and "sha256" in changed.output


# ------------------------------------------------------------------ bad data: exit 2, no work, no database


def _bad_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (the --dataset value, what the error must say)."""
    rng = np.random.default_rng(0)
    x = images(20)
    np.savez(tmp_path / "mismatch.npz", x=x, y=np.arange(19) % 10)
    nan = x.copy()
    nan[3, 0, 0, 0], nan[7, 2, 1, 1] = np.nan, np.inf
    np.savez(tmp_path / "nan.npz", x=nan, y=np.arange(20) % 10)
    np.savez(tmp_path / "range.npz", x=x, y=np.arange(20) % 12)
    np.savez(tmp_path / "negative.npz", x=x, y=np.arange(20) % 10 - 1)
    np.savez(tmp_path / "fractional.npz", x=x, y=(np.arange(20) % 10) + 0.5)
    np.savez(tmp_path / "shape.npz", x=images(20, shape=(3, 28, 28)), y=np.arange(20) % 10)
    np.savez(tmp_path / "keys.npz", inputs=x, labels=np.arange(20) % 10)
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 20, dtype=object), y=np.arange(20) % 10)
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    (tmp_path / "data.csv").write_text("x,y\n1,2\n")
    (tmp_path / "empty_folder").mkdir()
    write_cifar(tmp_path / "bad_cifar", {"data_batch_1": (rng.integers(0, 256, (4, 100), dtype=np.uint8), [0, 1, 2, 3])})
    return {
        "missing": (str(tmp_path / "nowhere" / "d.npz"), "no such file or folder"),
        "mismatch": (str(tmp_path / "mismatch.npz"), "x has 20 samples but y has 19 labels"),
        "nan": (str(tmp_path / "nan.npz"), "NaN or infinite values in 2 sample(s) (the first: row 3)"),
        "range": (str(tmp_path / "range.npz"), "labels up to 11 (12 classes) but space 'nb201' has 10 outputs"),
        "negative": (str(tmp_path / "negative.npz"), "y[0] = -1 is negative"),
        "fractional": (str(tmp_path / "fractional.npz"), "y[0] = 0.5 is not a class index"),
        "shape": (str(tmp_path / "shape.npz"), "inputs of shape (3, 28, 28) (2352 values) but the architecture expects (3, 32, 32)"),
        "keys": (str(tmp_path / "keys.npz"), "no array 'x' and 'y' (it has: 'inputs', 'labels')"),
        "objects": (str(tmp_path / "objects.npz"), "without unpickling objects"),
        "text": (str(tmp_path / "text.npz"), "not an .npz file (not a zip archive"),
        "csv": (str(tmp_path / "data.csv"), "not an .npz file or a CIFAR-10 folder"),
        "folder": (str(tmp_path / "empty_folder"), "a folder without CIFAR-10 batch files"),
        "cifar": (str(tmp_path / "bad_cifar"), "data_batch_1: data has shape (4, 100), not (n, 3072)"),
        "unknown": ("mnist6k", "unknown dataset 'mnist6k'"),
    }


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", ["missing", "mismatch", "nan", "range", "negative", "fractional", "shape", "keys",
                                  "objects", "text", "csv", "folder", "cifar", "unknown"])
@pytest.mark.parametrize("command", ["verify", "analyze"])
def test_bad_data_is_a_clear_error_before_any_work(bad_files, case, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    value, message = bad_files[case]
    out = tmp_path / "out.json"
    extra = ["--db", tmp_path / "r.sqlite"] if command == "verify" else ["--json", out, "--samples", "8"]
    res = cli(command, NB201, *ONE_NB201, "--dataset", value, *extra)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no JSON, nothing else
    assert "analyzing" not in res.output and "trained" not in res.output


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    x = images(10)
    x[4, 0, 0, 0] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(9) - 1)
    with pytest.raises(DataFileError) as info:
        load_dataset(str(tmp_path / "d.npz"))
    text = info.value.render()
    assert len(info.value.diagnostics) == 3
    assert "NaN or infinite values in 1 sample(s) (the first: row 4)" in text and "y[0] = -1 is negative" in text
    assert "x has 10 samples but y has 9 labels" in text
    res = cli("verify", NB201, *ONE_NB201, "--dataset", tmp_path / "d.npz", "--db", tmp_path / "r.sqlite")
    assert res.exit_code == 2 and res.output.count("error: dataset") == 3, res.output


def test_an_mlp_space_takes_a_flat_data_file(tmp_path):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "flat.npz", x=rng.random((30, 1, 28, 28)).astype(np.float32), y=np.arange(30) % 10)
    res = cli("analyze", H3, "--archs", "sample:2", "--dataset", tmp_path / "flat.npz", "--samples", "10",
              "--threads", "1")
    assert res.exit_code == 0, res.output
    assert f"data {(tmp_path / 'flat.npz')} (N = 10)" in res.output or "(N = 10)" in res.output
