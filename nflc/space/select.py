"""Which architectures of a space a run takes: the selection grammar the command line's
``--archs`` accepts (:meth:`nflc.space.Space.select`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from nflc.errors import SettingError

if TYPE_CHECKING:
    from nflc.space.architecture import Architecture
    from nflc.space.space import Space

__all__ = ["rejected_error", "select"]


def rejected_error(arch: Architecture, what: str, override: Optional[str] = None) -> SettingError:
    """The error for an architecture the space's filters drop, named by ``what``."""
    hint = f"'nflc list {arch.space.ir.file} --rejected' lists what the space's filters (budget, require, unique) drop"
    if override:
        hint += f"; {override}"
    return SettingError(f"{what}: #{arch.index} {arch.id} is rejected by space '{arch.space.name}': {arch.rejection}",
                        hint=hint)


def select(space: Space, spec: Optional[str], seed: int = 0) -> Optional[list[Architecture]]:
    """The architectures ``spec`` names: ``all`` (or None: the whole space, returned as
    None so it is never materialised), ``sample:K`` (K drawn uniformly, seeded by ``seed``)
    or comma-separated ids or indices (ids that contain ',' can be given by index). An id
    the filters drop is not in the space: a :class:`SettingError` names the `archs`
    setting."""
    if spec is None or spec == "all":
        return None
    if spec.startswith("sample:"):
        k = spec.split(":", 1)[1]
        if not (k.isascii() and k.isdigit()):
            raise SettingError(f"`archs` {spec}: expected sample:K with K a number")
        return space.sample(int(k), seed=seed)
    chosen = [space.architecture(i) for i in spec.split(",") if i.strip()]
    for a in chosen:
        if a.rejection is not None:
            raise rejected_error(a, "`archs`")
    return chosen
