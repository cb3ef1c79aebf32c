"""Which static score predicts each measured aspect? Candidates side by side on trained runs.

For every results database given (``nflc verify``; the first one is where a choice is
made, the others confirm it), and the ``nflc analyze --json`` file of the same space,
prints the Kendall tau (with a seeded bootstrap 95% interval) of each candidate score
(higher = better) with its measured aspect oriented higher = better (-converged training
loss, -epochs to the threshold, -(test - train loss)), over the architectures with an
input-output path. Nothing is fitted: every candidate is a closed form of the theory.

    python studies/compare_predictors.py RUN.sqlite:ANALYSIS.json [RUN2.sqlite:ANALYSIS2.json ...] [--json OUT]

Candidates (docs/VERIFY.md, "Choosing the predictors", says why each is there):

- expressivity: the Thm 4.1 path-sum curvature ``1 / sum_p exp(-5 d_p / 8m)``; its per-path
  normalised form, whose first-order term is the mean path depth; the NTK's label norm
  ``-sqrt(y^T Theta^-1 y / N)``; P as a reference.
- convergence: Thm 4.4's pair bound on the exact NNGP; the NNGP's smallest eigenvalue; P.
- generalization: Thm 4.5's ``-(sum_p d_p) sqrt(y^T Theta^-1 y / N)``; its topology factor
  ``-sum_p d_p``; its kernel factor ``-sqrt(y^T Theta^-1 y / N)``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from nflc.verify.report import _number, _oriented, bootstrap_kendall, build_report


def _label_norm(a: dict) -> float:
    q = _number(a["kernels"].get("ntk", {}).get("y_inv_y"))
    return -math.sqrt(q) if q is not None and math.isfinite(q) and q >= 0 else math.nan


def _live_params(a: dict) -> float:
    """Parameters that can affect the output: the network's count minus those of its dead
    edges (on no input-output path), which a budget pays for and the function never uses."""
    return a["live_params"]


def _per_path_log_curvature(a: dict) -> float:
    """``-log((1/P) sum_p exp(-a d_p))`` with ``a = 5 / (8 m)``: the curvature of the mean path."""
    t = a["topology"]
    m = a["width"]
    depths = t["depths"]
    if not depths:
        return math.nan
    return -math.log(sum(math.exp(-5 * d / (8 * m)) for d in depths) / len(depths))


CANDIDATES = {
    "expressivity": {
        "curvature, Thm 4.1 path sum (nflc 0.1)": lambda a: _number(a["scores"]["expressivity"]),
        "per-path curvature, Thm 4.1 / P": _per_path_log_curvature,
        "mean path depth (its first order)": lambda a: a["topology"]["mean_depth"],
        "NTK label norm -sqrt(y'K^-1y/N)": _label_norm,
        "live parameters (on some path)": lambda a: _live_params(a),
        "paths P (reference)": lambda a: float(a["topology"]["paths"]),
        "width m (reference)": lambda a: float(a["width"]),
    },
    "convergence": {
        "NNGP pair bound, Thm 4.4 (nflc 0.1)": lambda a: _number(a["scores"]["convergence"]),
        "NNGP lambda_min": lambda a: _number(a["kernels"].get("nngp", {}).get("lambda_min")),
        "paths P": lambda a: float(a["topology"]["paths"]),
        "-mean path depth": lambda a: -a["topology"]["mean_depth"],
    },
    "generalization": {
        "Thm 4.5 -(sum d) sqrt(y'K^-1y/N) (nflc 0.1)": lambda a: _number(a["scores"]["generalization"]),
        "-sum of path depths": lambda a: -float(a["topology"]["sum_depth"]),
        "-mean path depth": lambda a: -a["topology"]["mean_depth"],
        "NTK label norm -sqrt(y'K^-1y/N)": _label_norm,
    },
}


def compare(db: str, analysis: str, bootstrap: int = 1000) -> dict:
    rep = build_report(db, bootstrap=0)
    built = _built(db, rep.config["space"])
    data = json.loads(Path(analysis).read_text())
    if data.get("spec_hash") and data["spec_hash"] != rep.spec_hash:
        sys.exit(f"{analysis} analyzes another spec than {db}")
    by_id = {a["id"]: a for a in data["architectures"]}
    for a in by_id.values():
        a["width"], a["live_params"] = built.get(a["id"], (math.nan, math.nan))
    never = int(rep.config["train"]["epochs"]) + 1
    archs = [a for a in rep.architectures if a.status == "done" and (a.paths or 0) > 0 and a.id in by_id]
    out = {"db": db, "analysis": analysis, "n": len(archs), "converged": sum(bool(a.converged) for a in archs),
           "aspects": {}}
    for i, (asp, cands) in enumerate(CANDIDATES.items()):
        measured = [_oriented(a, asp, never) for a in archs]
        out["aspects"][asp] = {}
        for name, fn in cands.items():
            scores = [fn(by_id[a.id]) for a in archs]
            scores = [math.nan if s is None else float(s) for s in scores]
            t = bootstrap_kendall(scores, measured, resamples=bootstrap, seed=i)
            out["aspects"][asp][name] = {"tau": t.tau, "ci": [t.ci_low, t.ci_high], "n": t.n}
    return out


def _built(db: str, space: str) -> dict[str, tuple[int, int]]:
    """Each trained architecture's width m (solved per architecture under a budget) and
    its parameters on live edges, from the spec file the database records."""
    import nflc
    from nflc.analysis.analyze import placements
    from nflc.space import Space
    from nflc.verify.store import ResultStore

    with ResultStore.open_readonly(db) as store:
        spec = store.info("run")["run"]["spec_file"]
        ids = list(store.statuses())
    sp = nflc.load(spec, space=space)
    out = {}
    for i in ids:
        arch = sp.architecture(i)
        # the cell graph at the architecture's own (solved) width: arch.graph is built at
        # the spec's width constant, which a budget only starts its search from
        own = Space(sp.lowered(arch.constants_override), sp.source, sp.warnings).architecture(arch.index)
        dead = sum(own.graph.edges[e]["params"] for e in arch.topology().dead_edges)
        out[i] = (placements(arch)[0][1], arch.params - dead)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="DB:ANALYSIS pairs; the first chooses, the others confirm")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = [compare(*r.rsplit(":", 1), bootstrap=args.bootstrap) for r in args.runs]
    for asp in CANDIDATES:
        print(f"\n{asp}")
        print(f"{'candidate':46s}" + "".join(f"{Path(r['db']).stem + f' (n={r[chr(110)]})':>28s}" for r in results))
        for name in CANDIDATES[asp]:
            row = f"{name:46s}"
            for r in results:
                v = r["aspects"][asp][name]
                ci = v["ci"]
                cell = "n/a" if v["tau"] is None else (f"{v['tau']:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"
                                                       if ci[0] is not None else f"{v['tau']:+.3f}")
                row += f"{cell:>28s}"
            print(row)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
