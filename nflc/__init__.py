"""nflc: the No-Free-Lunch architecture compiler.

    >>> import nflc
    >>> space = nflc.load("specs/nfl_h3.nfl")
    >>> space.count()
    729

The facade stays light: ``import nflc`` loads nothing but the error types (the compiler
and ``Space`` load when first used, torch only when a module is compiled), so the command
line's entry point (:mod:`nflc.entry`) is running before any heavy import and a Ctrl-C
there exits cleanly.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

# Intel MKL's conditional numerical reproducibility: without it a matrix product's last
# bits depend on its operands' memory alignment, so a network trained in a population of
# another size (a resumed run, another Ray worker) could differ in the last bits. It costs
# nothing measurable here (benchmarks/bench_population.py). MKL reads it at its first call,
# so it must be set before any matrix product of the process; a value set by the user wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from nflc.errors import NflcError, SpaceError
from nflc.errors import did_you_mean

if TYPE_CHECKING:
    from nflc.space import Architecture
    import torch

if TYPE_CHECKING:
    from nflc.space import Architecture, Space

__all__ = ["load", "loads", "load_all", "compile", "kernels", "score", "load_checkpoint", "Space", "Architecture",
           "NflcError", "SpaceError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``nflc.Space``, ``nflc.Architecture`` and the submodules (``nflc.space``, ...), loaded
    when first used."""
    if name in ("Space", "Architecture"):
        from nflc import space  # lazy: `import nflc` loads nothing heavy

        return getattr(space, name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_all(path: str | Path, allow_outside: bool = False) -> dict[str, Space]:
    """Every space of a .nfl file, by name."""
    from nflc.ir.lower import compile_path  # lazy: loads lark and pydantic
    from nflc.space import Space  # lazy: loads lark and networkx and pydantic

    prog = compile_path(path, allow_outside=allow_outside)
    return {name: Space(ir, prog.sources_by_space[name], prog.warnings) for name, ir in prog.spaces.items()}


def _pick(spaces: dict[str, Space], space: str | None, where: str) -> Space:
    if space is not None:
        if space not in spaces:
            raise SpaceError(f"{where} has no space '{space}'", hint=did_you_mean(space, spaces) or
                             f"its spaces: {', '.join(spaces)}")
        return spaces[space]
    if len(spaces) > 1:
        raise SpaceError(f"{where} defines {len(spaces)} spaces ({', '.join(spaces)}); say which one",
                         hint="pass space=NAME (CLI: --space NAME)")
    return next(iter(spaces.values()))


def load(path: str | Path, space: str | None = None, allow_outside: bool = False) -> Space:
    """The space of a .nfl file (name it with ``space=`` when the file has several)."""
    return _pick(load_all(path, allow_outside), space, str(path))


def loads(text: str, space: str | None = None, file: str = "<string>") -> Space:
    """The space of .nfl source text."""
    from nflc.ir.lower import compile_text  # lazy: loads lark and pydantic
    from nflc.space import Space  # lazy: loads lark and networkx and pydantic

    prog = compile_text(text, file)
    spaces = {name: Space(ir, prog.sources_by_space[name], prog.warnings) for name, ir in prog.spaces.items()}
    return _pick(spaces, space, file)


def compile(arch: Architecture, seed: int = 0, **options: Any) -> torch.nn.Module:
    """The torch module of an architecture (same as ``arch.to_module``)."""
    return arch.to_module(seed=seed, **options)


def kernels(arch: Architecture, x: Any) -> Any:
    """Exact infinite-width NNGP and NTK (float64 N x N) of an architecture on inputs x (N, d)."""
    from nflc.analysis.exact import architecture_kernels  # lazy: loads numpy

    return architecture_kernels(arch, x)


def score(archs: Architecture | Iterable[Architecture], kind: str = "nflc") -> float | list[float]:
    """nflc's data-free score of an architecture (a float) or of each of several (a list, in
    order): higher = predicted better, no data, weights or training (``nflc score`` on the
    command line). ``kind``: ``nflc`` (the path-depth score of ``nflc rank``), ``paths``,
    ``mean_depth``, ``params`` or ``flops``. An architecture without an input-output path
    scores ``-inf``.

        >>> space = nflc.load("specs/nb201.nfl", space="nb201")
        >>> best = max(space.sample(100, seed=0), key=nflc.score)
    """
    from nflc.rank import score_architectures  # lazy: loads numpy and scipy
    from nflc.space import Architecture  # lazy: loads lark and networkx and pydantic

    if isinstance(archs, Architecture):
        return score_architectures([archs], kind)[0].score
    return [r.score for r in score_architectures(archs, kind)]


def load_checkpoint(path: str | Path, space: Space) -> tuple[Architecture, torch.nn.Module]:
    """``(architecture, module)`` from a file ``nflc compile SPEC ID --out PATH`` wrote: the
    module rebuilt from ``space`` (the same spec; the file records its hash and refuses
    another) with the saved weights, in eval mode.

        >>> arch, module = nflc.load_checkpoint("m.pt", nflc.load("specs/nfl_h3.nfl"))
    """
    from nflc.backends.export import load_checkpoint as _load  # lazy: loads numpy and torch

    arch, module = _load(space, path)
    return arch, module.eval()
