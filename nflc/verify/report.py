"""How well the predictions hold: the report of a verification run's results database.

Per architecture, the three measured aspects (docs/THEORY.md section 5) on their raw scales:

- expressivity: mean training loss over the run's last ``window`` epochs (lower = more
  expressive; :func:`nflc.verify.plateau.measure_window`: the stopping rule's window, or
  the last tenth of a fixed-length run, at most 50 epochs);
- convergence: first epoch whose training accuracy reached the threshold; ``None`` when
  never reached, ranked as ``epochs + 1`` (worse than every architecture that got there);
- generalization: mean of test loss minus training loss over the same epochs (smaller =
  better).

They are recomputed from the stored epochs, so every database (also one written before
the window means) is reported the same way. Each architecture also carries how its run
ended: whether its loss had converged by the run's stopping rule (or, for a fixed-length
run, by the default slope rule), and the slope of log(training loss) per epoch over the
rule's fit at the last epoch.

A diverged architecture has no expressivity or generalization and is left out of those
statistics (its ``diverged`` flag says so); it never wins an aspect.

Statistics (Kendall tau, scipy's tau-b, over architectures with at least one
input-output path, P > 0: the others compute a constant and have no mean depth, as in
``nflc analyze``):

- ``measured_vs_topology``: each raw measured quantity against P and mean depth, the
  reading of the paper's Fig. 3 (its values in ``paper_fig3``);
- ``predicted_vs_measured``: each predicted score of an ``nflc analyze --json`` file
  (higher = better) against its measured aspect oriented so that higher = better
  (-train loss, -epochs, -gap), with a seeded percentile bootstrap 95% interval
  (architectures resampled with replacement);
- ``nfl``: per-aspect winners, Pareto front and the no-free-lunch verdict on the
  oriented measured values (:func:`nflc.analysis.report.nfl_report`).

Topology comes from the database (``nflc verify`` records P, mean depth and parameters of
every architecture when it registers it), so a report needs no spec file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from pydantic import BaseModel

from nflc.analysis.plots import save_png, topology_grid, topology_panels
from nflc.analysis.report import ASPECTS, NflReport, Tau, kendall, nfl_report
from nflc.data import load_dataset, train_test_split
from nflc.errors import NflcError
from nflc.readers import read_json
from nflc.verify.config import DataConfig
from nflc.verify.plateau import DEFAULT_RULE, StopRule, converged_at, fit_length, levelled_off, log_slope, measure_window
from nflc.verify.run import chance_loss
from nflc.verify.store import ResultStore
from nflc.verify.train import TrainConfig, measure

__all__ = [
    "CHANCE_MARGIN",
    "MEASURED_AS",
    "PAPER_FIG3",
    "MeasuredArch",
    "TauCI",
    "VerifyReport",
    "bootstrap_kendall",
    "best_by_aspect",
    "build_report",
    "raw_value",
    "late_loss_drop",
    "left_chance",
    "to_json_dict",
    "write_plots",
]

PAPER_FIG3 = {  # Kendall tau of the raw measured quantity with topology, paper Fig. 3 (Tiny-ImageNet, 729 nets)
    "expressivity": {"paths": 0.11, "mean_depth": -0.87},
    "convergence": {"paths": -0.69, "mean_depth": 0.64},
    "generalization": {"paths": -0.41, "mean_depth": 0.39},
}
MEASURED_AS = {
    "expressivity": "train loss, mean of the last window epochs (converged: see 'converged')",
    "convergence": "epochs to the threshold train accuracy (never: epochs + 1)",
    "generalization": "test loss - train loss, mean of the last window epochs",
}


def _num(value: Optional[float]) -> float:
    """A stored number, NaN where there is none (statistics leave NaN pairs out)."""
    return math.nan if value is None else float(value)


CHANCE_MARGIN = 0.01  # relative: a best training loss within 1% of the chance loss never left chance


def left_chance(train_losses: Sequence[float], chance: float, margin: float = CHANCE_MARGIN) -> bool:
    """Whether the training loss ever fell ``margin`` (relative) below ``chance``, the
    cross-entropy of predicting the training class frequencies."""
    finite = [v for v in train_losses if math.isfinite(v)]
    return bool(finite) and min(finite) < (1 - margin) * chance


def _chance_loss(config: dict, run_info: dict) -> Optional[float]:
    """The run's chance loss: recorded by 'nflc verify', or recomputed from the stored data
    settings for databases written before it was recorded (None when that fails)."""
    if run_info.get("chance_loss") is not None:
        return float(run_info["chance_loss"])
    try:
        data = DataConfig(**config["data"])
        ds = load_dataset(data.dataset, seed=data.seed, n=data.samples)
        train, _ = train_test_split(ds, test_fraction=data.test_fraction, seed=data.seed)
        return chance_loss(train.y, train.classes)
    except Exception:  # noqa: BLE001 - a report must not fail on a database without data settings
        return None


def late_loss_drop(train_losses: Sequence[float]) -> Optional[float]:
    """Relative fall of the training loss over the last tenth of the epochs (at least one):
    ``(L[-1 - w] - L[-1]) / L[-1 - w]``; None with fewer than two finite epochs."""
    if len(train_losses) < 2 or not all(math.isfinite(v) for v in train_losses):
        return None
    w = max(1, len(train_losses) // 10)
    before, after = train_losses[-1 - w], train_losses[-1]
    return (before - after) / before if before > 0 else None


class MeasuredArch(BaseModel):
    id: str
    index: Optional[int] = None
    paths: Optional[int] = None
    mean_depth: Optional[float] = None
    params: Optional[int] = None
    status: str  # pending, running, done, diverged
    expressivity: Optional[float] = None  # train loss, mean of the last `window` epochs
    convergence: Optional[int] = None  # epoch reaching the threshold; None: never (or not finished)
    generalization: Optional[float] = None  # test loss - train loss, mean of the last `window` epochs
    diverged: bool = False
    epochs_run: Optional[int] = None
    # whether the training loss had converged at the last epoch (the run's --until-converged
    # rule, else nflc.verify.plateau.DEFAULT_RULE), and the first epoch at which it had;
    # None while unfinished or diverged
    converged: Optional[bool] = None
    converged_at: Optional[int] = None
    window: Optional[int] = None  # epochs averaged into the measured losses
    # d log(train loss) / d epoch at the last epoch, fitted over the rule's fit length
    # (slope_epochs); -0.001 = still falling 0.1% per epoch
    final_slope: Optional[float] = None
    slope_epochs: Optional[int] = None
    train_acc: Optional[float] = None  # final
    test_acc: Optional[float] = None
    # relative fall of the training loss over the last tenth of the epochs: ~0 when the
    # loss has levelled off (the "converged training loss" docs/THEORY.md section 5 measures)
    late_loss_drop: Optional[float] = None
    predicted: Optional[dict[str, Optional[float]]] = None  # scores of the analysis file, higher = better
    # False when the training loss never fell CHANCE_MARGIN below the loss of predicting the
    # training class frequencies (it learned nothing: a learning rate too high or too low);
    # None while unfinished or diverged, or when the run's chance level is unknown
    left_chance: Optional[bool] = None


class TauCI(Tau):
    ci_low: Optional[float] = None  # 95% percentile bootstrap interval
    ci_high: Optional[float] = None
    resamples: int = 0


class VerifyReport(BaseModel):
    db: str
    space: Optional[str]
    spec_hash: str
    config: dict[str, Any]
    counts: dict[str, int]  # registered, finished, done, diverged, unfinished
    measured_as: dict[str, str]
    architectures: list[MeasuredArch]
    measured_vs_topology: dict[str, dict[str, Tau]]  # aspect -> {"paths", "mean_depth"} (raw quantities)
    paper_fig3: dict[str, dict[str, Optional[float]]]
    predicted_vs_measured: Optional[dict[str, TauCI]] = None
    analysis: Optional[dict[str, Any]] = None  # file, matched, missing ids, notes
    nfl: Optional[NflReport] = None  # over the finished architectures that left chance
    chance_loss: Optional[float] = None  # the loss of predicting the training class frequencies
    width_solved: bool = False  # a budget solved each network's width (the config's width is only the search's start)
    plateau: dict[str, Any] = {}  # the levelling-off criterion the report judged by, and where it comes from
    notes: list[str] = []


# ---------------------------------------------------------------------------------------
# statistics


def bootstrap_kendall(x: Sequence[float], y: Sequence[float], resamples: int = 1000, seed: int = 0) -> TauCI:
    """Kendall tau of finite pairs with a seeded percentile-bootstrap 95% interval."""
    from scipy.stats import kendalltau  # scipy: loaded only when a tau is bootstrapped

    base = kendall(x, y)
    pairs = np.array([(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)], dtype=np.float64)
    if base.tau is None or resamples < 1:
        return TauCI(**base.model_dump(), resamples=0)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(resamples):
        sample = pairs[rng.integers(0, len(pairs), len(pairs))]
        tau = kendalltau(sample[:, 0], sample[:, 1]).statistic
        if math.isfinite(tau):  # a resample with a constant column has no tau
            taus.append(tau)
    if not taus:
        return TauCI(**base.model_dump(), resamples=0)
    lo, hi = np.percentile(taus, [2.5, 97.5])
    return TauCI(**base.model_dump(), ci_low=float(lo), ci_high=float(hi), resamples=len(taus))


def raw_value(a: MeasuredArch, aspect: str, never: int) -> float:
    """The measured quantity on its raw scale (lower = better); NaN when it has none (a
    diverged or unfinished run); a threshold never reached counts as ``never``."""
    if a.status not in ("done", "diverged"):
        return math.nan
    if aspect == "convergence":
        return float(a.convergence) if a.convergence is not None else float(never)
    value = getattr(a, aspect)
    return math.nan if value is None else float(value)


def _oriented(a: MeasuredArch, aspect: str, never: int) -> float:
    """Higher = better; a diverged run is worst (-inf) in expressivity and generalization."""
    raw = raw_value(a, aspect, never)
    if math.isnan(raw):
        return -math.inf if a.diverged else math.nan
    return -raw


def _number(v: Any) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v.lower())
    return float(v)


# ---------------------------------------------------------------------------------------
# building


def _load_analysis(path: Path) -> dict:
    if not Path(path).exists():
        raise NflcError(f"no analysis file at {path}", hint="write one with 'nflc analyze SPEC --json PATH'")
    data = read_json(path, "analysis file", hint="pass the JSON written by 'nflc analyze SPEC --json PATH'")
    archs = data.get("architectures") if isinstance(data, dict) else None
    if not isinstance(archs, list) or not all(isinstance(a, dict) and "id" in a and isinstance(a.get("scores"), dict)
                                              for a in archs):
        raise NflcError(f"{path} is not an 'nflc analyze --json' file (no architectures[].id / .scores)",
                        hint="pass the JSON written by 'nflc analyze SPEC --json PATH'")
    return data


def _stored_rule(train_config: Any) -> Optional[StopRule]:
    """The stopping rule a run was trained with (None: a fixed number of epochs)."""
    stored = train_config.get("plateau") if isinstance(train_config, dict) else None
    return TrainConfig.model_validate({"plateau": stored}).plateau if stored else None


def _measured(arch_id: str, status: str, info: dict, store: Any, rule: StopRule, threshold: float, window: Optional[int],
              chance: Optional[float]) -> MeasuredArch:
    """One architecture of the database, its aspects recomputed from its stored epochs."""
    aspects = store.aspects(arch_id)
    epochs = store.epochs(arch_id) if aspects is not None else []
    if aspects is not None and not aspects.diverged and epochs and window is not None:
        # the losses as window means (databases written before them stored one epoch's);
        # the convergence epoch is an event and stays as recorded
        means = measure(epochs, threshold, window=window)
        aspects = aspects.model_copy(update={"expressivity": means.expressivity, "generalization": means.generalization})
    last = epochs[-1] if epochs else None
    finite = aspects is not None and not aspects.diverged
    losses = [r.train_loss for r in epochs]
    fit = log_slope(losses, min(len(losses), fit_length(len(losses), rule.window))) if finite else None
    return MeasuredArch(
        id=arch_id, index=info.get("index"), paths=info.get("paths"), mean_depth=info.get("mean_depth"),
        params=info.get("params"), status=status,
        expressivity=aspects.expressivity if aspects else None,
        convergence=aspects.convergence if aspects else None,
        generalization=aspects.generalization if aspects else None,
        diverged=bool(aspects and aspects.diverged), epochs_run=aspects.epochs if aspects else None,
        converged=levelled_off(losses, rule) if finite else None,
        converged_at=converged_at(losses, rule) if finite else None,
        window=min(window, len(epochs)) if window is not None and finite else None,
        final_slope=fit.slope if fit else None, slope_epochs=fit.epochs if fit else None,
        train_acc=last.train_acc if last else None, test_acc=last.test_acc if last else None,
        late_loss_drop=late_loss_drop(losses) if finite else None,
        left_chance=left_chance(losses, chance) if finite and chance is not None else None)


def _convergence_notes(ranked: Sequence[MeasuredArch], trained_with_rule: bool, rule: StopRule,
                       max_epochs: int) -> list[str]:
    """What the report must say about runs whose loss had not converged at their end."""
    judged = [a for a in ranked if a.converged is not None]
    unconverged = [a for a in judged if not a.converged]
    if not unconverged:
        return []
    slopes = [a.final_slope for a in unconverged if a.final_slope is not None]
    fell = ""
    if slopes and float(np.median(slopes)) < 0:
        per = -math.expm1(float(np.median(slopes)) * rule.window)
        fell = (f"; at their last epoch their loss still fell by a median {100 * per:.1f}% per {rule.window} epochs "
                f"(log-loss slope {float(np.median(slopes)):.2e} per epoch)")
    if trained_with_rule:
        how = f"stopped at --max-epochs {max_epochs} before converging"
    elif max_epochs < rule.first_epoch:
        how = f"cannot be judged converged: {max_epochs} epochs are fewer than the rule's {rule.first_epoch}"
    else:
        how = f"had not converged after {max_epochs} epochs"
    fitted = sum(a.train_acc == 1.0 for a in unconverged)
    why = (f"; {fitted} of them fit their training set (100% training accuracy), where the cross-entropy keeps "
           "falling as the margin grows: compare such losses at one training length" if fitted else "")
    return [f"{len(unconverged)} of {len(judged)} architecture(s) {how} ({rule.describe()}){fell}{why}: their "
            "'expressivity' is the fit after that many epochs, not a converged training loss "
            "(train with --until-converged, or longer)"]


def _measured_verdict(ranked: list[MeasuredArch], finished: list[MeasuredArch], chance: Optional[float],
                      have_topology: bool, never: int, notes: list[str]) -> Optional[NflReport]:
    """The measured no-free-lunch report over the finished architectures that left chance
    (a note says which did not)."""
    # P = 0 networks compute a constant: at chance by construction, and left out as such below
    stuck = [a for a in ranked if a.left_chance is False]
    if stuck:
        notes.append(f"{len(stuck)} of {len(ranked)} architecture(s) never left chance: their training loss never "
                     f"fell {100 * CHANCE_MARGIN:g}% below {chance:.4f}, the loss of predicting the training class "
                     "frequencies (the learning rate may be too high or too low for them); they are left out of "
                     "the measured verdict")
    stuck_ids = {a.id for a in stuck}
    contenders = [a for a in finished if a.id not in stuck_ids]
    nfl = None
    if contenders:
        ids = [a.id for a in contenders]
        scores: dict[str, Sequence[float]] = {asp: [_oriented(a, asp, never) for a in contenders] for asp in ASPECTS}
        paths = [_num(a.paths) if have_topology else 1.0 for a in contenders]
        depth = [_num(a.mean_depth) if have_topology else 0.0 for a in contenders]
        nfl = nfl_report(ids, scores, paths, depth)
    elif finished:
        notes.append("no architecture left chance: no measured verdict")
    return nfl


def _compare(analysis: str | Path, data: dict, db: str | Path, spec_hash: str, archs: list[MeasuredArch],
             ranked: list[MeasuredArch], config: dict, run_info: dict, never: int, bootstrap: int, seed: int,
             notes: list[str]) -> tuple[dict[str, TauCI], dict]:
    """Each predicted score of the ``analysis`` file against its measured aspect (Kendall
    tau with a bootstrap interval), and what was matched; the architectures get their
    predictions."""
    if data.get("spec_hash") and data["spec_hash"] != spec_hash:
        raise NflcError(f"analysis file {analysis} is of another spec (hash {data['spec_hash'][:12]}...) than "
                        f"the results database {db} ({spec_hash[:12]}...)",
                        hint="analyze the spec the database was trained from: 'nflc analyze SPEC --json PATH'")
    by_id = {a["id"]: a for a in data["architectures"]}
    for a in archs:
        entry = by_id.get(a.id)
        if entry is not None:
            a.predicted = {asp: _number(entry["scores"].get(asp)) for asp in ASPECTS}
    matched = [a for a in ranked if a.predicted is not None]
    missing = [a.id for a in ranked if a.predicted is None]
    analysis_meta = {"file": str(analysis), "matched": len(matched), "missing": missing, "data": data.get("data")}
    width, spec_width = config.get("width"), run_info.get("spec_width")
    if width is not None and spec_width is not None and width != spec_width and matched:
        notes.append(f"trained at width {width}, analyzed at the spec's width {spec_width} (the closed-form "
                     "expressivity score depends on the width; the kernel scores are infinite-width)")
    if missing:
        notes.append(f"{len(missing)} finished architecture(s) are not in the analysis file")
    predicted = {}
    for i, asp in enumerate(ASPECTS):
        xs = [_num((a.predicted or {}).get(asp)) for a in matched]
        ys = [_oriented(a, asp, never) for a in matched]
        predicted[asp] = bootstrap_kendall(xs, ys, resamples=bootstrap, seed=seed + i)
    return predicted, analysis_meta


def build_report(db: str | Path, analysis: str | Path | None = None, *, bootstrap: int = 1000,
                 seed: int = 0) -> VerifyReport:
    """The report of the results database ``db`` (opened read-only), compared with the
    predictions of ``analysis`` (an ``nflc analyze --json`` file) when given."""
    data = _load_analysis(Path(analysis)) if analysis is not None else None  # a bad file is refused before any work
    with ResultStore.open_readonly(db) as store:
        config = store.config
        statuses = store.statuses()
        infos = store.info("arch:")
        run_info = store.info("run").get("run", {})
        train_config = config.get("train", config)
        stored_rule = _stored_rule(train_config)
        rule: StopRule = stored_rule or DEFAULT_RULE
        threshold = float(train_config.get("threshold", 0.5)) if isinstance(train_config, dict) else 0.5
        chance = _chance_loss(config, run_info)
        if chance is not None and not math.isfinite(chance):
            chance = None
        max_epochs = int(train_config.get("epochs", 0) or 0) if isinstance(train_config, dict) else 0
        window = measure_window(stored_rule, max_epochs) if max_epochs else None
        archs = [_measured(arch_id, status, infos.get(f"arch:{arch_id}", {}), store, rule, threshold, window, chance)
                 for arch_id, status in statuses.items()]
        spec_hash = store.spec_hash
    notes: list[str] = []
    max_epochs = max_epochs or max((a.epochs_run or 0 for a in archs), default=0)
    never = max_epochs + 1
    finished = [a for a in archs if a.status in ("done", "diverged")]
    counts = {"registered": len(archs), "finished": len(finished),
              "done": sum(a.status == "done" for a in archs), "diverged": sum(a.status == "diverged" for a in archs),
              "unfinished": len(archs) - len(finished)}
    if counts["unfinished"]:
        notes.append(f"{counts['unfinished']} architecture(s) not finished yet: rerun the same 'nflc verify' command "
                     "to complete them; statistics use finished ones")
    have_topology = all(a.paths is not None and a.mean_depth is not None for a in finished)
    if not have_topology:
        notes.append("the database has no topology for some architectures (not written by 'nflc verify'): "
                     "no topology statistics")
    # P = 0: constant output, undefined mean depth (left out, as in 'nflc analyze')
    ranked = [a for a in finished if not have_topology or (a.paths or 0) > 0]
    left_out = [a.id for a in finished if a not in ranked]
    if left_out:
        notes.append(f"{len(left_out)} architecture(s) without an input-output path (P = 0) are left out of the statistics")

    criterion = rule.describe()
    plateau_meta = {**rule.model_dump(), "rule": getattr(rule, "rule", "window"),
                    "source": "--until-converged" if stored_rule else "default", "criterion": criterion,
                    "measure_window": window}
    notes.extend(_convergence_notes(ranked, stored_rule is not None, rule, max_epochs))

    topo: dict[str, dict[str, Tau]] = {}
    if have_topology and ranked:
        for asp in ASPECTS:
            raw = [raw_value(a, asp, never) for a in ranked]
            topo[asp] = {"paths": kendall(raw, [_num(a.paths) for a in ranked]),
                         "mean_depth": kendall(raw, [_num(a.mean_depth) for a in ranked])}

    nfl = _measured_verdict(ranked, finished, chance, have_topology, never, notes)
    predicted, analysis_meta = (_compare(analysis, data, db, spec_hash, archs, ranked, config, run_info, never, bootstrap,
                                         seed, notes) if analysis is not None and data is not None else (None, None))

    return VerifyReport(db=str(db), space=config.get("space") or run_info.get("space"), spec_hash=spec_hash,
                        config=config, counts=counts, measured_as=MEASURED_AS, architectures=archs,
                        measured_vs_topology=topo, paper_fig3=PAPER_FIG3, predicted_vs_measured=predicted,
                        analysis=analysis_meta, nfl=nfl, plateau=plateau_meta,
                        width_solved=bool(run_info.get("width_solved")), notes=notes, chance_loss=chance)


def best_by_aspect(report: VerifyReport, top: int) -> dict[str, list[MeasuredArch]]:
    """Per aspect, the ``top`` finished architectures with the lowest measured value (a
    missing one last; ties in database order). Like the statistics, it leaves out the
    networks without an input-output path."""
    finished = [a for a in report.architectures if a.status in ("done", "diverged") and (a.paths is None or a.paths > 0)]

    def key(aspect: str) -> Callable[[MeasuredArch], float]:
        def value(a: MeasuredArch) -> float:
            v = getattr(a, aspect)
            return v if v is not None else math.inf

        return value

    return {asp: sorted(finished, key=key(asp))[:top] for asp in ASPECTS}


def to_json_dict(report: VerifyReport) -> dict:
    """The report as strict JSON (non-finite numbers as null / "inf" / "-inf")."""

    def fix(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: fix(v) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v) for v in o]
        if isinstance(o, float) and not math.isfinite(o):
            return None if math.isnan(o) else ("inf" if o > 0 else "-inf")
        return o

    return fix(report.model_dump())


# ---------------------------------------------------------------------------------------
# figures


PLOT_FILES = ("measured_topology.png", "fig3_measured_vs_predicted.png", "predicted_vs_measured.png")


def write_plots(report: VerifyReport, directory: str | Path) -> list[Path]:
    """PNG figures in ``directory``: ``measured_topology.png`` (P against mean depth,
    coloured by each raw measured aspect, Kendall taus in the legends: the paper's Fig. 3)
    and, with an analysis, ``fig3_measured_vs_predicted.png`` (those panels above the
    predicted scores' panels, the paper's Fig. 4) and ``predicted_vs_measured.png`` (one
    scatter per aspect, Kendall tau in the title). Each replaces an earlier one atomically."""
    import matplotlib  # matplotlib: loaded only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: loaded only when a figure is drawn

    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NflcError(f"cannot create plot directory {out}: {exc}") from None
    written = []
    never = int(report.config.get("train", {}).get("epochs", 0)) + 1
    finished = [a for a in report.architectures if a.status in ("done", "diverged") and a.paths is not None]
    if finished:
        path = out / "measured_topology.png"
        labels = {"expressivity": "train loss", "convergence": "epochs to threshold", "generalization": "test - train loss"}
        measured: dict[str, Sequence[Optional[float]]] = {
            f"{asp}: {labels[asp]}": [raw_value(a, asp, never) for a in finished] for asp in ASPECTS}
        p, d = [_num(a.paths) for a in finished], [_num(a.mean_depth) for a in finished]
        topology_panels(path, p, d, measured, f"{report.space}: measured aspects ({len(finished)} architectures)")
        written.append(path)
        if any(a.predicted is not None for a in finished):
            # the paper's Fig. 3 (measured) above Fig. 4 (predicted), on the same architectures
            predicted: dict[str, Sequence[Optional[float]]] = {
                f"{asp}: predicted score": [(a.predicted or {}).get(asp) for a in finished] for asp in ASPECTS}
            path = out / "fig3_measured_vs_predicted.png"
            topology_grid(path, p, d, [("measured", measured), ("predicted", predicted)],
                          f"{report.space}: measured (raw, lower = better) and predicted (higher = better)")
            written.append(path)
    if report.predicted_vs_measured:
        pts = [a for a in report.architectures if a.predicted is not None and a.status in ("done", "diverged")
               and (a.paths or 0) > 0]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, asp in zip(axes, ASPECTS, strict=True):
            xy = [((a.predicted or {}).get(asp), _oriented(a, asp, never)) for a in pts]
            xy = [(x, y) for x, y in xy if x is not None and math.isfinite(x) and math.isfinite(y)]
            ax.scatter([p[0] for p in xy], [p[1] for p in xy], s=14, alpha=0.7)
            t = report.predicted_vs_measured[asp]
            tau = "n/a" if t.tau is None else f"{t.tau:.2f}"
            ci = f" [{t.ci_low:.2f}, {t.ci_high:.2f}]" if t.ci_low is not None else ""
            ax.set_title(f"{asp}: tau = {tau}{ci}", fontsize=10)
            ax.set_xlabel("predicted score (higher = better)")
            ax.set_ylabel(f"-({MEASURED_AS[asp].split(' (')[0]})")
        fig.suptitle(f"{report.space}: predicted vs measured ({len(pts)} architectures)")
        fig.tight_layout()
        path = out / "predicted_vs_measured.png"
        save_png(fig, path)
        plt.close(fig)
        written.append(path)
    return written
