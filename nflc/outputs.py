"""Files a command writes: checked before the work, written atomically, never onto an input.

Every file a command writes is an :class:`Output`: its path, the option that named it and
its kind (:data:`KINDS`). :func:`check_outputs` runs before any work and refuses

- an output that is one of the command's inputs (the spec and the files it imports, a
  benchmark file, a results database with its ``-wal``/``-shm``, an analysis file), or
  another output of the same command, compared after resolving symbolic links (and, for
  files that exist, by device and inode, so a hard link is the same file too);
- a directory; a path in a directory that does not exist; a symbolic link to nothing; an
  existing file that is not a regular file (``/dev/full``, a FIFO); a directory this
  process cannot create a file in (tried for real: ``/proc``, a read-only mount);
- an existing file that is not nflc's own output of the same kind (an ``nflc analyze
  --json`` file may be replaced by another; a file nflc cannot tell is its own needs
  ``--force``). An empty file holds nothing to lose.

Writing (:func:`write_bytes`, :func:`write_text`, :func:`atomic_path`): a temporary file
next to the target, flushed to disk (fsync), then renamed over the target, so a failure
(a full disk, Ctrl-C, a kill) leaves the old file as it was. A symbolic link stays a link:
its target is replaced. :class:`PartialFile` is the streamed form (analyze's JSON and CSV
grow as the work goes): the rows go to ``PATH.partial``, renamed to ``PATH`` when the work
is complete; a run stopped early leaves ``PATH`` unchanged and its rows in ``PATH.partial``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, IO, Iterator, Optional, Sequence

from nflc.errors import NflcError

if TYPE_CHECKING:
    from nflc.space import Space

__all__ = [
    "KINDS",
    "Input",
    "Output",
    "OutputError",
    "PartialFile",
    "atomic_path",
    "check_outputs",
    "database_files",
    "refuse_inputs",
    "spec_files",
    "write_bytes",
    "write_text",
]

HEAD_BYTES = 1 << 16  # how much of an existing file is read to tell whose it is
PARTIAL_SUFFIX = ".partial"


class OutputError(NflcError):
    """An output path that cannot or must not be written."""


@dataclass(frozen=True)
class Output:
    """A file a command will write: ``path`` as given, the ``option`` that named it (for
    messages) and its ``kind`` (a key of :data:`KINDS`)."""

    path: Path
    option: str
    kind: str


@dataclass(frozen=True)
class Input:
    """A file a command reads (its outputs must not replace it)."""

    path: Path
    what: str  # "the spec", "--benchmark", ...


# ---------------------------------------------------------------------------------------
# whose file is it


def _json_object_starting(first_key: str, *keys: str) -> Callable[[bytes], bool]:
    lead = re.compile(rb'\A\s*\{\s*"' + re.escape(first_key.encode()) + rb'"\s*:')
    return lambda head: bool(lead.match(head)) and all(f'"{k}"'.encode() in head for k in keys)


def _png(head: bytes) -> bool:
    # nflc's figures carry Software=nflc; older ones were marked only by matplotlib
    return head.startswith(b"\x89PNG\r\n\x1a\n") and (b"Software\x00nflc" in head or b"Software\x00Matplotlib" in head)


def _svg(head: bytes) -> bool:
    # nflc's drawings name nflc as their creator; older ones only matplotlib
    return b"<svg" in head and (b"<dc:title>nflc" in head or b"<dc:title>Matplotlib" in head)


def _graph(head: bytes) -> bool:
    dot = re.match(rb'\Adigraph "(?:[^"\\]|\\.)*" \{\n  rankdir=LR;\n', head) is not None
    graphml = head.lstrip().startswith(b"<graphml") or (head.startswith(b"<?xml") and b"<graphml" in head[:1024])
    node_link = re.match(rb'\A\s*\{\s*"directed"\s*:', head) is not None and b'"nodes"' in head
    return dot or graphml or node_link or _svg(head) or _png(head)


def _checkpoint(head: bytes) -> bool:
    # torch.save's zip: the pickled dict's keys appear as plain text (nothing is unpickled)
    return head.startswith(b"PK\x03\x04") and b"spec_hash" in head and b"arch_id" in head


def _json_lines(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0]
    return re.match(rb'\A\{"(index|op)": ', first) is not None


KINDS: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    # kind: (what nflc writes there, whether the head of an existing file is such a file)
    "analyze-json": ("an 'nflc analyze --json' file", _json_object_starting("space", "spec_hash", "data")),
    "analyze-csv": ("an 'nflc analyze --csv' file", lambda h: h.startswith(b"index,id,group,group_size,")),
    "report-json": ("an 'nflc report --json' file", _json_object_starting("db", "spec_hash", "counts")),
    "rank-json": ("an 'nflc rank --json' file", _json_object_starting("benchmark", "space", "score")),
    "score-json": ("an 'nflc score --json' file", _json_object_starting("space", "score", "higher_is_better")),
    "html": ("an nflc HTML page", lambda h: b'<meta name="generator" content="nflc' in h),
    "png": ("a figure nflc drew", _png),
    "graph": ("a graph or drawing 'nflc graph' wrote", _graph),
    "checkpoint": ("a module 'nflc compile --out' saved", _checkpoint),
    "onnx": ("an ONNX file 'nflc compile --onnx' exported", lambda h: b"nflc:" in h[:4096]),
    "json-lines": ("JSON lines 'nflc list' or 'nflc ops' wrote", _json_lines),
}


def is_own(path: Path, kind: str) -> bool:
    """Whether the existing regular file ``path`` is nflc's own output of ``kind`` (or is
    empty: nothing to lose)."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    return not head or KINDS[kind][1](head)


# ---------------------------------------------------------------------------------------
# checks


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _identity(path: Path) -> tuple[str, Optional[tuple[int, int]]]:
    """What makes two paths the same file: the resolved path, and (device, inode) when it exists."""
    real = _resolved(path)
    try:
        st = os.stat(real)
    except OSError:
        return str(real), None
    return str(real), (st.st_dev, st.st_ino)


def _same(a: tuple[str, Optional[tuple[int, int]]], b: tuple[str, Optional[tuple[int, int]]]) -> bool:
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def database_files(db: Path, what: str = "--db") -> list[Input]:
    """A results database and the files SQLite keeps beside it."""
    return [Input(db, what)] + [Input(db.with_name(db.name + s), f"{what} ({s[1:]} file)") for s in ("-wal", "-shm", "-journal")]


def spec_files(space: Space) -> list[Input]:
    """The files a loaded space was read from: its spec and every file it imports."""
    sources = getattr(getattr(space, "source", None), "sources", None) or {}
    return [Input(Path(name), "a file the spec imports") for name in sources if not name.startswith("<")]


def refuse_inputs(outputs: Sequence[Output], inputs: Sequence[Input]) -> None:
    """Refuse an output that is one of ``inputs`` (after resolving links) or another output."""
    seen: list[tuple[tuple[str, Optional[tuple[int, int]]], Output]] = []
    ins = [(_identity(i.path), i) for i in inputs]
    for out in outputs:
        me = _identity(out.path)
        for ident, inp in ins:
            if _same(me, ident):
                raise OutputError(f"{out.option} {out.path} is {inp.what} of this command ({inp.path}); writing it would "
                                  "destroy what the command reads", hint=f"pass another path for {out.option}")
        for ident, other in seen:
            if _same(me, ident):
                raise OutputError(f"{out.option} {out.path} and {other.option} {other.path} are the same file",
                                  hint="give each output its own path")
        seen.append((me, out))


def _probe_directory(directory: Path, out: Output) -> None:
    """Create and remove a file in ``directory``: the only sure test that it can be written."""
    shown = out.path.parent if not out.path.is_symlink() else directory
    probe = directory / f".{out.path.name[:40]}.{uuid.uuid4().hex[:8]}.nflc-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        why = "the file system is read-only" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise OutputError(f"{out.option} {out.path}: cannot write there: cannot create a file in {shown} ({why})",
                          hint="pass a path in a directory you can write to") from None
    os.close(fd)
    os.unlink(probe)


def check_output(out: Output, force: bool = False) -> None:
    """Refuse ``out`` if it cannot or must not be written (see the module docstring)."""
    path, option = out.path, out.option
    if str(path) == "":
        raise OutputError(f"{option} is empty", hint=f"pass a file path to {option}")
    try:
        if path.is_symlink() and not path.exists():
            raise OutputError(f"{option} {path} is a symbolic link to {os.readlink(path)}, which does not exist",
                              hint="pass the file's own path, or remove the link")
        target = _resolved(path)
        if target.is_dir():
            raise OutputError(f"{option} {path} is a directory",
                              hint=f"pass a file path, e.g. {option} {path / ('out' + _suffix(out.kind))}")
        if not target.parent.is_dir():
            raise OutputError(f"{option} {path}: directory {path.parent} does not exist",
                              hint=f"create it first (mkdir -p {path.parent}) or pass another path")
        exists = target.exists()
        if exists and not stat.S_ISREG(os.stat(target).st_mode):
            raise OutputError(f"{option} {path} is not a regular file ({_file_type(target)}); nflc writes its outputs "
                              "as files, replaced whole when complete", hint="pass the path of a file")
        _probe_directory(target.parent, out)
        if exists and not force and not is_own(target, out.kind):
            what = KINDS[out.kind][0]
            raise OutputError(f"{option} {path} exists and is not {what}; nflc does not overwrite it",
                              hint="pass another path, or add --force to replace it")
    except OSError as exc:  # a name too long, a loop of links, no permission to look
        raise OutputError(f"{option} {path}: {exc.strerror or exc}", hint="pass another path") from None


def check_outputs(outputs: Sequence[Optional[Output]], inputs: Sequence[Input] = (), force: bool = False) -> None:
    """Every check of the module docstring, on every output, before any work."""
    given = [o for o in outputs if o is not None]
    refuse_inputs(given, inputs)
    for out in given:
        check_output(out, force)


def _suffix(kind: str) -> str:
    return {"analyze-csv": ".csv", "html": ".html", "png": ".png", "checkpoint": ".pt", "onnx": ".onnx",
            "graph": ".dot", "json-lines": ".jsonl"}.get(kind, ".json")


def _file_type(path: Path) -> str:
    mode = os.stat(path).st_mode
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


# ---------------------------------------------------------------------------------------
# writing


def _temporary_next_to(target: Path) -> tuple[Path, int]:
    """A new file beside ``target`` (same directory, so the rename is atomic), created with
    the target's permissions if it exists, else the usual ones (0666 less the umask)."""
    mode = 0o666
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(os.stat(target).st_mode)
    tmp = target.with_name(f".{target.name[:60]}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    if mode != 0o666:
        os.fchmod(fd, mode)  # an existing file's mode, not reduced by the umask
    return tmp, fd


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened or synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_failed(path: Path, exc: OSError) -> OutputError:
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EFBIG: "the file is larger than this process may write", errno.EROFS: "the file system is read-only"}
    return OutputError(f"cannot write {path}: {why.get(exc.errno or 0, exc.strerror or str(exc))}; {path} is unchanged",
                       hint="free some space or pass a path elsewhere")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (by any library that writes by
    path); on success it is synced and renamed over ``path``, on failure removed."""
    path = Path(path)
    target = _resolved(path)
    try:
        tmp, fd = _temporary_next_to(target)
    except OSError as exc:
        raise _write_failed(path, exc) from None
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _write_failed(path, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(target.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"))


class PartialFile:
    """An output written as the work goes: into ``PATH.partial``, renamed to ``PATH`` by
    :meth:`commit` once complete. Until then ``PATH`` is as it was; :meth:`abandon` (the
    work stopped) keeps the rows so far in ``PATH.partial``."""

    def __init__(self, path: str | Path, newline: Optional[str] = None):
        self.path = Path(path)
        self.target = _resolved(self.path)
        self.partial = self.target.with_name(self.target.name + PARTIAL_SUFFIX)
        try:
            self.fh: Optional[IO[str]] = open(self.partial, "w", newline=newline, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise _write_failed(self.partial, exc) from None

    def write(self, text: str) -> None:
        assert self.fh is not None, "written after commit or abandon"
        try:
            self.fh.write(text)
        except OSError as exc:
            raise _write_failed(self.partial, exc) from None

    def flush(self) -> None:
        if self.fh is not None:
            try:
                self.fh.flush()
            except OSError as exc:
                raise _write_failed(self.partial, exc) from None

    def commit(self) -> None:
        """The work is complete: sync the file and rename it over ``PATH``."""
        if self.fh is None:
            return
        fh, self.fh = self.fh, None
        try:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            with contextlib.suppress(OSError):
                os.chmod(self.partial, stat.S_IMODE(os.stat(self.target).st_mode))  # keep a replaced file's mode
            os.replace(self.partial, self.target)
        except OSError as exc:
            raise _write_failed(self.path, exc) from None
        _sync_directory(self.target.parent)

    def abandon(self) -> None:
        """The work stopped: close ``PATH.partial`` as it is (``PATH`` stays unchanged)."""
        if self.fh is not None:
            fh, self.fh = self.fh, None
            with contextlib.suppress(OSError):
                fh.close()
