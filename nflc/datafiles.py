"""A user's own data for ``--dataset PATH``: an ``.npz`` file of inputs and labels, or a
CIFAR-10 folder in its standard python-batch format.

- ``.npz`` (``numpy.savez(path, x=inputs, y=labels)``): ``x`` of shape ``(N, ...)`` with
  any numeric dtype (``uint8`` pixels are scaled from 0..255 to [0, 1]; every other dtype
  is taken as it is), ``y`` of shape ``(N,)`` (or ``(N, 1)``) holding integer class labels
  ``0 .. C - 1``. The file is read with ``allow_pickle=False``: it can hold arrays only.
- A CIFAR-10 folder (``cifar-10-batches-py`` as its authors distribute it, or a folder
  that contains one): the batch files ``data_batch_1`` .. ``data_batch_5`` and
  ``test_batch`` that are present (each a pickled ``{b"data": uint8 (n, 3072), b"labels":
  [...]}``), read in that order into one pool of ``3 x 32 x 32`` images scaled to [0, 1];
  nflc splits the pool into train and test with its own seed, as for every dataset.
  ``batches.meta`` gives the class names when present. The pickles are read by an
  unpickler that builds only dicts, lists, strings, numbers and numpy arrays, never
  arbitrary objects: a batch file cannot run code.

Everything wrong with a file (a path that is not there, another format, missing arrays,
x and y of different lengths, non-finite inputs, labels that are not class indices) is an
:class:`DataFileError` naming the file and every problem at once, before any work.
"""

from __future__ import annotations

from typing import Any

import hashlib
import io
import pickle
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nflc.errors import Diagnostic, NflcError

__all__ = ["CIFAR_BATCHES", "DataFileError", "FileData", "cifar_folder", "fingerprint", "looks_like_path", "read"]

CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR_FOLDER = "cifar-10-batches-py"
NPZ_HINT = "save it with numpy.savez(PATH, x=inputs, y=labels): x of shape (N, ...), y of N integer labels 0..C-1"


class DataFileError(NflcError, ValueError):
    """A ``--dataset`` path that cannot be read as a dataset."""


@dataclass(frozen=True, eq=False)
class FileData:
    """What a dataset file holds: ``x`` as stored (uint8 pixels stay uint8 until a subset
    is taken; :func:`as_float` scales them), ``y`` int64 labels, ``classes`` = max label + 1
    (or the number of class names a CIFAR folder lists)."""

    path: str  # absolute
    x: np.ndarray
    y: np.ndarray
    classes: int
    kind: str  # "npz" or "cifar10"
    class_names: tuple[str, ...] = ()

    def as_float(self, rows: np.ndarray | None = None) -> np.ndarray:
        """float32 inputs (of ``rows`` only when given): uint8 scaled to [0, 1]."""
        x = self.x if rows is None else self.x[rows]
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def looks_like_path(name: str) -> bool:
    """Whether a ``--dataset`` value that is no dataset's name means a file or folder."""
    return "/" in name or "\\" in name or name.endswith(".npz") or name.startswith(".") or Path(name).exists()


def cifar_folder(path: Path) -> Path | None:
    """The python-batch folder at ``path`` (itself, or its ``cifar-10-batches-py``), or None."""
    for folder in (path, path / CIFAR_FOLDER):
        if folder.is_dir() and any((folder / b).is_file() for b in CIFAR_BATCHES):
            return folder
    return None


def _fail(path: str, problems: list[str], hint: str | None = None) -> DataFileError:
    head = f"dataset {path}: {problems[0]}" if len(problems) == 1 else f"dataset {path}: {len(problems)} problems"
    diags = [Diagnostic("error", f"dataset {path}: {p}", None, hint if i == len(problems) - 1 else None)
             for i, p in enumerate(problems)]
    return DataFileError(head, hint=hint, diagnostics=diags)


def read(path: str | Path) -> FileData:
    """The dataset at ``path`` (an ``.npz`` file or a CIFAR-10 folder), checked; cached
    while the file is unchanged."""
    p = Path(path).expanduser()
    if not p.exists():
        raise _fail(str(path), ["no such file or folder"],
                    "give an .npz file (x, y), a CIFAR-10 folder (cifar-10-batches-py), or a shipped dataset's name")
    p = p.resolve()
    if p.is_dir():
        folder = cifar_folder(p)
        if folder is None:
            raise _fail(str(path), [f"a folder without CIFAR-10 batch files ({', '.join(CIFAR_BATCHES)})"],
                        "pass the folder that holds data_batch_1 .. data_batch_5 and test_batch (cifar-10-batches-py), "
                        "or an .npz file")
        files = tuple((folder / b) for b in CIFAR_BATCHES if (folder / b).is_file())
        return _read_cifar(str(folder), _stamp(files))
    if p.suffix.lower() != ".npz":
        raise _fail(str(path), [f"not an .npz file or a CIFAR-10 folder (a '{p.suffix or 'no suffix'}' file)"], NPZ_HINT)
    return _read_npz(str(p), _stamp((p,)))


def _stamp(files: tuple[Path, ...]) -> tuple[tuple[str, int, int], ...]:
    # the cache key: a file that changed on disk is read again
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


def fingerprint(path: str | Path) -> str:
    """SHA-256 of the data (the ``.npz`` file, or the CIFAR batch files by name and bytes):
    a results database records it, so a changed file is not mixed into a resumed run."""
    data = read(path)
    h = hashlib.sha256()
    files = [Path(data.path)] if data.kind == "npz" else [Path(data.path) / b for b in CIFAR_BATCHES
                                                          if (Path(data.path) / b).is_file()]
    for f in files:
        if data.kind != "npz":
            h.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# checks shared by both formats


def _labels(y: np.ndarray, problems: list[str]) -> np.ndarray | None:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        problems.append(f"y has shape {tuple(y.shape)}; labels are one integer per sample, shape (N,)")
        return None
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf":
        problems.append(f"y has dtype {y.dtype}; labels are integers 0..C-1")
        return None
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(f"y[{i}] = {float(y[i])!r} is not a class index ({int(bad.sum())} such labels); labels are integers 0..C-1")
            return None
    if len(y) and int(y.min()) < 0:
        i = int(np.argmin(y))
        problems.append(f"y[{i}] = {int(y[i])} is negative; labels are class indices 0..C-1")
        return None
    return y.astype(np.int64)


def _inputs(x: np.ndarray, problems: list[str]) -> bool:
    if x.dtype.kind not in "biuf":
        problems.append(f"x has dtype {x.dtype}; inputs must be numbers")
        return False
    if x.ndim < 2:
        problems.append(f"x has shape {tuple(x.shape)}; inputs are one row per sample, shape (N, ...)")
        return False
    if x.dtype.kind == "f":
        finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            problems.append(f"x has NaN or infinite values in {len(rows)} sample(s) (the first: row {int(rows[0])})")
    return True  # rows to count, whatever their values


def _checked(path: str, kind: str, x: np.ndarray, y: np.ndarray, hint: str, names: tuple[str, ...] = ()) -> FileData:
    problems: list[str] = []
    x_ok = _inputs(x, problems)
    labels = _labels(y, problems)
    if x_ok and y.ndim >= 1 and len(x) != len(y):
        problems.append(f"x has {len(x)} samples but y has {len(y)} labels")
    if x_ok and len(x) == 0:
        problems.append("it holds no samples")
    if labels is not None and names and len(labels) and int(labels.max()) >= len(names):
        problems.append(f"label {int(labels.max())} is out of range: batches.meta names {len(names)} classes")
    if problems:
        raise _fail(path, problems, hint)
    assert labels is not None
    classes = len(names) if names else int(labels.max()) + 1
    return FileData(path, x.astype(np.float32) if x.dtype == np.bool_ else x, labels, classes, kind, names)


# ---------------------------------------------------------------------------------------
# .npz


@lru_cache(maxsize=2)
def _read_npz(path: str, stamp: tuple) -> FileData:
    if not zipfile.is_zipfile(path):  # np.load would try to unpickle it
        raise _fail(path, ["not an .npz file (not a zip archive of arrays)"], NPZ_HINT)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            if "x" not in keys or "y" not in keys:
                missing = " and ".join(repr(k) for k in ("x", "y") if k not in keys)
                raise _fail(path, [f"no array {missing} (it has: {', '.join(repr(k) for k in keys) or 'nothing'})"], NPZ_HINT)
            x, y = z["x"], z["y"]
    except DataFileError:
        raise
    except ValueError as exc:  # an object array needs pickle, which is refused
        raise _fail(path, [f"cannot read it without unpickling objects ({exc})"], NPZ_HINT) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _fail(path, [f"not a readable .npz file ({exc})"], NPZ_HINT) from None
    return _checked(path, "npz", x, y, NPZ_HINT)


# ---------------------------------------------------------------------------------------
# CIFAR-10 python batches


class _ArraysOnly(pickle.Unpickler):
    """Builds the containers, strings, numbers and numpy arrays a CIFAR batch holds, and
    refuses every other global (the "restricting globals" recipe of the pickle docs)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it would build {module}.{name}, which a CIFAR batch does not hold")


def _unpickle(path: Path) -> object:
    try:
        return _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, OSError) as exc:
        raise _fail(str(path), [f"not a CIFAR-10 python batch ({exc})"],
                    "the folder must hold the files of cifar-10-python.tar.gz as its authors distribute them") from None


def _key(d: dict, name: str) -> Any:
    return d.get(name.encode(), d.get(name))


@lru_cache(maxsize=1)
def _read_cifar(folder: str, stamp: tuple) -> FileData:
    hint = "each batch is a pickled dict with b'data' (n x 3072 uint8) and b'labels' (n integers)"
    xs, ys, problems = [], [], []
    for file, _, _ in stamp:
        d = _unpickle(Path(file))
        name = Path(file).name
        data, labels = (_key(d, "data"), _key(d, "labels")) if isinstance(d, dict) else (None, None)
        if data is None or labels is None:
            problems.append(f"{name}: no 'data' and 'labels' entries")
            continue
        data, labels = np.asarray(data), np.asarray(labels)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            problems.append(f"{name}: data has shape {tuple(data.shape)}, not (n, 3072) (3 x 32 x 32 images)")
            continue
        if len(labels) != len(data):
            problems.append(f"{name}: {len(data)} images but {len(labels)} labels")
            continue
        xs.append(data.reshape(-1, 3, 32, 32))  # rows are the R, G, B planes of 32 x 32, row-major
        ys.append(labels)
    names: tuple[str, ...] = ()
    meta = Path(folder) / "batches.meta"
    if meta.is_file() and not problems:
        m = _unpickle(meta)
        raw = _key(m, "label_names") if isinstance(m, dict) else None
        if raw is not None:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
    if problems:
        raise _fail(folder, problems, hint)
    return _checked(folder, "cifar10", np.concatenate(xs), np.concatenate(ys), hint, names)
