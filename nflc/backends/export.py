"""Saving compiled modules: checkpoints (state dict + spec hash + id) and ONNX."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nflc.errors import NflcError
from nflc.outputs import atomic_path

if TYPE_CHECKING:
    from nflc.space import Architecture, Space


def save_checkpoint(arch: Architecture, module: torch.nn.Module, path: str | Path, seed: int) -> None:
    """A checkpoint that says what it is: spec hash, space, options, architecture id and
    seed; written atomically (a failure leaves an earlier file at ``path`` as it was)."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": module.state_dict(), "spec_hash": arch.space.spec_hash, "space": arch.space.name,
                    "options": dict(arch.space.options), "arch_id": arch.id, "index": arch.index, "seed": seed,
                    "constants": arch.constants}, tmp)


def load_checkpoint(space: Space, path: str | Path) -> tuple[Architecture, torch.nn.Module]:
    """(architecture, module with the saved weights); refuses a checkpoint of another spec.

    The options the module was compiled with (``--prune``, ``bias=``, ``init=``) travel in
    the checkpoint and are applied to ``space`` first, so the plain spec loads it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NflcError(f"{path}: no such file", hint="the file 'nflc compile SPEC ID --out PATH' wrote") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise NflcError(f"{path} is not a checkpoint nflc wrote ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                        hint="load the file 'nflc compile SPEC ID --out PATH' wrote") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "arch_id" not in ckpt:
        raise NflcError(f"{path} is not a checkpoint nflc wrote (no state_dict and arch_id)",
                        hint="load the file 'nflc compile SPEC ID --out PATH' wrote")
    options = ckpt.get("options") or {}
    if options:
        space = space.with_options(**options)
    if ckpt.get("spec_hash") != space.spec_hash:
        raise NflcError(f"{path} was saved from a different spec (space '{ckpt.get('space')}')",
                        hint="load it with the .nfl file it was compiled from")
    arch = space.architecture(ckpt["arch_id"])
    module = arch.to_module(seed=ckpt.get("seed", 0))
    module.load_state_dict(ckpt["state_dict"])
    return arch, module


def export_onnx(module: torch.nn.Module, path: str | Path, example: torch.Tensor, doc: str | None = None) -> float | None:
    """Write ONNX (atomically; ``doc`` as the model's doc string, which marks it as nflc's),
    check it with onnx.checker, and return the largest difference between onnxruntime's and
    torch's outputs on ``example`` (None when onnxruntime is absent)."""
    try:
        import onnx  # onnx: an optional extra (pip install nflc[onnx])
    except ImportError:
        raise NflcError("ONNX export needs the 'onnx' package", hint="pip install 'nflc[onnx]'") from None
    module = module.eval()
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        model = onnx.load(str(tmp))
        if doc is not None:
            model.doc_string = doc
            onnx.save(model, str(tmp))
        onnx.checker.check_model(model)
    try:
        import onnxruntime as ort  # onnxruntime: an optional extra (pip install nflc[onnx])
    except ImportError:
        return None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": example.numpy()})[0]
    with torch.no_grad():
        want = module(example).numpy()
    return float(abs(got - want).max())
