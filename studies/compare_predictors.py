"""Which static score predicts each measured aspect? Candidates side by side on trained runs.

For every results database given (``nflc verify``; the first one is where a choice is
made, the others confirm it), and the ``nflc analyze --json`` file of the same space,
prints the Kendall tau (with a seeded bootstrap 95% interval) of each candidate score
(higher = better) with its measured aspect oriented higher = better (-training loss,
-epochs to the threshold, -(test - train loss); losses are means over the run's last
window of epochs, as ``nflc report`` measures them), over the architectures with an
input-output path. Nothing is fitted: every candidate is a closed form of the theory.

    python studies/compare_predictors.py RUN.sqlite:ANALYSIS.json [RUN2.sqlite:ANALYSIS2.json ...] [--json OUT]

Candidates (docs/ANALYZE.md, "The expressivity score", and docs/VERIFY.md say why each is there):

- expressivity: the total path depth ``sum_p d_p`` (nflc's score); the Thm 4.1 path-sum
  curvature ``1 / sum_p exp(-5 d_p / 8m)`` (nflc 0.1's); its per-path normalised form,
  whose first-order term is the mean path depth; the Thm 4.1 depth deficit
  ``sum_p (1 - exp(-5 d_p / 8m))`` (the total depth at the network's width); two kernel
  candidates from the exact NNGP on the analysis inputs (the mean correlation between
  different inputs, and minus its effective rank); the NTK's label norm; P and the width
  as references.
- convergence: Thm 4.4's pair bound on the exact NNGP (nflc's); the NNGP's smallest
  eigenvalue; P; minus the mean path depth.
- generalization: Thm 4.5's ``-(sum_p d_p) sqrt(y^T Theta^-1 y / N)`` (nflc's); its
  topology factor ``-sum_p d_p``; its kernel factor ``-sqrt(y^T Theta^-1 y / N)``; minus
  the mean path depth; the width.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from nflc.verify.report import _number, _oriented, bootstrap_kendall, build_report


def _label_norm(a: dict) -> float:
    q = _number(a["kernels"].get("ntk", {}).get("y_inv_y"))
    return -math.sqrt(q) if q is not None and math.isfinite(q) and q >= 0 else math.nan


def _depths(a: dict) -> list[int]:
    return list(a["topology"].get("depths", []))


def _per_path_log_curvature(a: dict) -> float:
    """``-log((1/P) sum_p exp(-5 d_p / 8m))``: the curvature of the mean path."""
    depths, m = _depths(a), a["width"]
    if not depths:
        return math.nan
    return -math.log(sum(math.exp(-5 * d / (8 * m)) for d in depths) / len(depths))


def _depth_deficit(a: dict) -> float:
    """``sum_p (1 - exp(-5 d_p / 8m))``: how far Thm 4.1's path sum falls below P."""
    return sum(1 - math.exp(-5 * d / (8 * a["width"])) for d in _depths(a))


Candidate = Callable[[dict], float]

CANDIDATES: dict[str, dict[str, Candidate]] = {
    "expressivity": {
        "total path depth sum_p d_p (nflc)": lambda a: _number(a["scores"]["expressivity"]),
        "curvature, Thm 4.1 path sum (nflc 0.1)": lambda a: _number(a.get("indicators", {}).get("curvature_thm41")),
        "per-path curvature, Thm 4.1 / P": _per_path_log_curvature,
        "mean path depth (its first order)": lambda a: a["topology"]["mean_depth"],
        "Thm 4.1 depth deficit sum(1-e^-5d/8m)": _depth_deficit,
        "NNGP mean input correlation": lambda a: a["nngp_mean_corr"],
        "-NNGP effective rank": lambda a: -a["nngp_erank"],
        "NTK label norm -sqrt(y'K^-1y/N)": _label_norm,
        "paths P (reference)": lambda a: float(a["topology"]["paths"]),
        "width m (reference)": lambda a: float(a["width"]),
    },
    "convergence": {
        "NNGP pair bound, Thm 4.4 (nflc)": lambda a: _number(a["scores"]["convergence"]),
        "NNGP lambda_min": lambda a: _number(a["kernels"].get("nngp", {}).get("lambda_min")),
        "paths P": lambda a: float(a["topology"]["paths"]),
        "-mean path depth": lambda a: -a["topology"]["mean_depth"],
    },
    "generalization": {
        "Thm 4.5 -(sum d) sqrt(y'K^-1y/N) (nflc)": lambda a: _number(a["scores"]["generalization"]),
        "-sum of path depths": lambda a: -float(a["topology"]["sum_depth"]),
        "-mean path depth": lambda a: -a["topology"]["mean_depth"],
        "NTK label norm -sqrt(y'K^-1y/N)": _label_norm,
        "width m": lambda a: float(a["width"]),
    },
}


def compare(db: str, analysis: str, bootstrap: int = 1000) -> dict:
    rep = build_report(db, bootstrap=0)
    data = json.loads(Path(analysis).read_text())
    if data.get("spec_hash") and data["spec_hash"] != rep.spec_hash:
        sys.exit(f"{analysis} analyzes another spec than {db}")
    by_id = {a["id"]: a for a in data["architectures"]}
    never = int(rep.config["train"]["epochs"]) + 1
    archs = [a for a in rep.architectures if a.status == "done" and (a.paths or 0) > 0 and a.id in by_id]
    for a, extra in _built(db, rep.config["space"], [a.id for a in archs], data["data"]).items():
        by_id[a].update(extra)
    out = {"db": db, "analysis": analysis, "n": len(archs), "converged": sum(bool(a.converged) for a in archs),
           "reached_100pct": sum(a.train_acc == 1.0 for a in archs),
           "median_final_slope": float(np.median([a.final_slope for a in archs if a.final_slope is not None]))
           if archs else None, "aspects": {}}
    for i, (asp, cands) in enumerate(CANDIDATES.items()):
        measured = [_oriented(a, asp, never) for a in archs]
        out["aspects"][asp] = {}
        for name, fn in cands.items():
            scores = [fn(by_id[a.id]) for a in archs]
            scores = [math.nan if s is None else float(s) for s in scores]
            t = bootstrap_kendall(scores, measured, resamples=bootstrap, seed=i)
            out["aspects"][asp][name] = {"tau": t.tau, "ci": [t.ci_low, t.ci_high], "n": t.n}
    return out


def _nngp_summaries(nngp: np.ndarray) -> tuple[float, float]:
    """The mean correlation between different inputs of an NNGP, and the effective rank
    ``exp(entropy of the normalised eigenvalues)`` of its correlation matrix."""
    d = np.sqrt(np.clip(np.diag(nngp), 1e-300, None))
    corr = nngp / np.outer(d, d)
    off = ~np.eye(len(corr), dtype=bool)
    ev = np.clip(np.linalg.eigvalsh(corr), 0, None)
    p = ev / ev.sum()
    p = p[p > 0]
    return float(corr[off].mean()), float(np.exp(-(p * np.log(p)).sum()))


def _built(db: str, space: str, ids: list[str], data: dict) -> dict[str, dict]:
    """Each trained architecture's width m (solved per architecture under a budget) and its
    exact NNGP's summaries on the analysis file's inputs."""
    import nflc
    from nflc.analysis.analyze import analysis_inputs, placements
    from nflc.analysis.exact import architecture_kernels, normalize_inputs
    from nflc.verify.store import ResultStore

    with ResultStore.open_readonly(db) as store:
        spec = store.info("run")["run"]["spec_file"]
    sp = nflc.load(spec, space=space)
    x, _, _ = analysis_inputs(sp, data["name"], int(data["samples"]), int(data["seed"]))
    x = normalize_inputs(x)
    out = {}
    for i in ids:
        arch = sp.architecture(i)
        corr, erank = _nngp_summaries(architecture_kernels(arch, x).nngp)
        out[i] = {"width": placements(arch)[0][1], "nngp_mean_corr": corr, "nngp_erank": erank}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="DB:ANALYSIS pairs; the first chooses, the others confirm")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [compare(*r.rsplit(":", 1), bootstrap=args.bootstrap) for r in args.runs]
    for r in results:
        print(f"{r['db']}: {r['n']} networks with a path, {r['reached_100pct']} at 100% training accuracy, "
              f"{r['converged']} converged by the slope rule, median final log-loss slope {r['median_final_slope']:.2e}/epoch")
    for asp in CANDIDATES:
        print(f"\n{asp}")
        print(f"{'candidate':42s}" + "".join(f"{Path(r['db']).stem + f' (n={r[chr(110)]})':>26s}" for r in results))
        for name in CANDIDATES[asp]:
            row = f"{name:42s}"
            for r in results:
                v = r["aspects"][asp][name]
                ci = v["ci"]
                cell = "n/a" if v["tau"] is None else (f"{v['tau']:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"
                                                       if ci[0] is not None else f"{v['tau']:+.3f}")
                row += f"{cell:>26s}"
            print(row)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
