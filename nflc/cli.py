"""The `nflc` command line: a thin typer layer over the API.

Logic lives in the library and prints nothing; this module turns results into rich output
and every :class:`NflcError` into ``file:line:col`` diagnostics with exit code 2.
"""

from __future__ import annotations

import functools
import itertools
import json
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterable, Optional

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from typer.core import TyperGroup

import nflc
from nflc import __version__
from nflc import encodings as enc
from nflc.cli_progress import AnalysisProgress, sweep_progress
from nflc.errors import NflcError, SettingError
from nflc.limits import check_dataset_name, check_samples, check_seed, check_threads, memory_size
from nflc.outputs import Input, Output, atomic_path, check_outputs, database_files, spec_files, write_bytes, write_text

if TYPE_CHECKING:
    from nflc.space import Architecture, Space

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

def _no_flag_metavar(cmd: Any, ctx: Any) -> None:
    """A flag takes no value: its help shows no ``<bool>`` (``--rejected``, not
    ``--rejected <bool>``, which suggested that ``--rejected true`` would work)."""
    for p in cmd.get_params(ctx):
        if getattr(p, "is_flag", False) and p.metavar is None:  # typer's options are its own click's
            p.metavar = ""


BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})  # not 1 or 0: an index may follow a flag


def _refuse_flag_values(group: Any, ctx: Any, args: list[str]) -> None:
    """``--rejected true``: a flag followed by a word meaning true or false is a usage error
    that says how flags are written (click would only report an unexpected argument)."""
    cmd = group.get_command(ctx, args[0]) if args else None
    if cmd is None:
        return
    flags = {o: p for p in cmd.get_params(ctx) if getattr(p, "is_flag", False) for o in (*p.opts, *p.secondary_opts)}
    for flag, word in zip(args, args[1:], strict=False):  # each token with the one after it
        p = flags.get(flag)
        if p is not None and word.lower() in BOOL_WORDS:
            off = f"; '{p.secondary_opts[0]}' for the opposite" if p.secondary_opts else ""
            raise typer.BadParameter(f"a flag takes no value: write '{flag}' alone, without '{word}'{off}",
                                     ctx=ctx, param_hint=f"'{flag}'")


class _Commands(TyperGroup):
    """``list --json`` and ``ops --json`` without a value (last, or before another option or
    a ``.nfl`` file) mean ``--json -``, JSON lines on standard output: every ``--json``
    takes a PATH, and the bare form keeps working."""

    BARE_JSON = ("list", "ops")

    def get_command(self, ctx: Any, cmd_name: Any) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            _no_flag_metavar(cmd, ctx)
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _no_flag_metavar(self, ctx)
        return super().format_help(ctx, formatter)

    def parse_args(self, ctx: Any, args: Any) -> list[str]:
        _refuse_flag_values(self, ctx, list(args))
        if args and args[0] in self.BARE_JSON:
            args = list(args)
            for i in range(len(args) - 1, 0, -1):
                nxt = args[i + 1] if i + 1 < len(args) else None
                if args[i] == "--json" and (nxt is None or (nxt.startswith("-") and nxt != "-") or nxt.endswith(".nfl")):
                    args.insert(i + 1, "-")
        return super().parse_args(ctx, args)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_Commands,
                  help="nflc: the No-Free-Lunch architecture compiler. Start with 'nflc analyze SPEC'.")


def _print_version(value: bool) -> None:
    if value:
        print(f"nflc {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print nflc's version and exit.")] = False) -> None:
    """nflc: the No-Free-Lunch architecture compiler. Start with 'nflc analyze SPEC'."""
# emoji=False: ids and user input such as "sample:-1:" must never turn into emoji
out = Console(highlight=False, soft_wrap=True, emoji=False)
if not out.is_terminal:  # piped output: wide enough for a full architecture id per row
    out = Console(highlight=False, soft_wrap=True, emoji=False, width=180)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

SpaceOpt = Annotated[Optional[str], typer.Option("--space", "-s", help="Which space of the file (when it has several).")]
OutsideOpt = Annotated[bool, typer.Option("--allow-outside-imports", help="Let imports leave the spec's directory tree.")]
FileArg = Annotated[Path, typer.Argument(help="A .nfl spec file.", show_default=False)]
HtmlOpt = Annotated[Optional[Path], typer.Option(
    "--html", metavar="PATH", help="Write a self-contained interactive HTML page (opens offline; docs/PAGES.md).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing output files that are not nflc's own output of their kind.")]


def _fail(exc: NflcError) -> None:
    err.print(exc.render(), markup=False)
    raise typer.Exit(EXIT_USER_ERROR)


# a library setting whose flag is not its name with dashes (``max_epochs``: ``--max-epochs``)
FLAG_OF_SETTING = {"window": "--plateau-window", "tol": "--plateau-tol", "rule": "--stop-rule"}


def flag(setting: str) -> str:
    """The flag of a library setting named in a :class:`nflc.errors.SettingError`."""
    return FLAG_OF_SETTING.get(setting, "--" + setting.replace("_", "-"))


def user_errors(fn: Any) -> Callable[..., Any]:
    """Run a command; a user's mistake becomes diagnostics and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SettingError as exc:
            _fail(exc.respelled(flag))
        except NflcError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            _say_interrupted("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _say_interrupted(message: str) -> None:
    """After Ctrl-C: ignore further ones (they must not cut the message or the clean-up
    short), and say what happened."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # CPython marks a Ctrl-C that ended a string exec (dataclass and namedtuple creation during
    # an import) as unhandled even when caught, and `python -m nflc.cli` would then die by
    # SIGINT instead of exiting 130; every string exec clears the mark
    exec("None")
    err.print(message, markup=False)


def id_column(table: Table, header: str = "id") -> None:
    """An id column: never wrapped, never cut (see :func:`print_table`)."""
    table.add_column(header, justify="left", no_wrap=True, overflow="ignore")


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table`` with every ``no_wrap`` column (ids) whole: when the console is too
    narrow for the table, it is printed at its natural width, wider than the console (a
    terminal then wraps the line where it must; the id stays one token to copy), never
    with an id broken across lines or shortened with an ellipsis."""
    console = console or out
    for col in table.columns:
        if col.no_wrap:
            col.min_width = max([len(str(c)) for c in col._cells] + [len(str(col.header))])
    need = Measurement.get(console, console.options.update_width(10**6), table)
    if need.maximum <= console.width:
        console.print(table)
        return
    saved = console.width
    console.width = need.maximum  # nothing squeezed: every header and number whole too
    try:
        console.print(table)
    finally:
        console.width = saved


def _json_lines(rows: Any, path: Path) -> None:
    """JSON lines to standard output (``-``) or to ``path`` (replaced when complete)."""
    if str(path) == "-":
        for r in rows:
            out.print(json.dumps(r), markup=False)
        return
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    err.print(f"wrote {path}", markup=False)


def _check_outputs(outputs: Any, inputs: Any = (), force: bool = False) -> None:
    """Refuse, before any work, outputs that cannot or must not be written (nflc.outputs)."""
    check_outputs(outputs, inputs, force)


def _output(path: Optional[Path], option: str, kind: str) -> Any:
    return None if path is None or str(path) == "-" and kind == "json-lines" else Output(path, option, kind)


def _spec_inputs(file: Optional[Path], sp: Space | None = None) -> list:
    """The spec given and, once loaded, every file it imports: inputs no output may replace."""
    return ([Input(file, "the spec")] if file is not None else []) + (spec_files(sp) if sp is not None else [])


JsonLinesOpt = Annotated[Optional[Path], typer.Option(
    "--json", metavar="PATH", help="Write JSON lines to PATH instead of a table ('--json' alone or '--json -': "
    "standard output).")]


def _warn(space: Space) -> None:
    srcs = space.source.sources if space.source else {}
    for w in space.warnings:
        err.print(w.render(srcs), markup=False)


def load_space(path: Path, space: str | None, outside: bool = False) -> Space:
    """The space a command works on: ``--space NAME``, or for a file with several spaces the
    one named like the file (``nb201.nfl``: ``nb201``), else the first; stderr says which."""
    if space is not None:
        return nflc.load(path, space=space, allow_outside=outside)
    spaces = nflc.load_all(path, allow_outside=outside)
    if len(spaces) == 1:
        return next(iter(spaces.values()))
    name = Path(path).stem if Path(path).stem in spaces else next(iter(spaces))
    others = ", ".join(n for n in spaces if n != name)
    err.print(f"note: {path} defines {len(spaces)} spaces; using '{name}' (the others: {others}; "
              "pick one with --space NAME)", markup=False)
    return spaces[name]


def _flag_rejected(arch: Architecture) -> None:
    """Say on stderr that the space's filters drop this architecture (it is still shown)."""
    if arch.rejection is not None:
        err.print(f"note: #{arch.index} {arch.id} is rejected by space '{arch.space.name}': {arch.rejection}",
                  markup=False)


@app.command()
@user_errors
def check(file: FileArg, allow_outside_imports: OutsideOpt = False) -> None:
    """Check a spec: every error and warning with its position; exit 0 when it compiles."""
    spaces = nflc.load_all(file, allow_outside=allow_outside_imports)
    first = next(iter(spaces.values()))
    _warn(first)
    for name, sp in spaces.items():
        empty = sp.filters_reject_all()
        if empty is not None:
            err.print(empty.render(sp.source.sources if sp.source else {}), markup=False)
        out.print(f"ok: space {name}: {sp.raw_count():,} architectures before filters"
                  + (", none after them" if empty is not None else ""))


@app.command()
@user_errors
def count(file: FileArg, space: SpaceOpt = None, allow_outside_imports: OutsideOpt = False) -> None:
    """Print the exact number of architectures in the space (after budgets and constraints)."""
    sp = load_space(file, space, allow_outside_imports)
    out.print(str(sp.count()))


def _arch_row(a: Any) -> dict:
    row = {"index": a.index, "id": a.id, "params": a.params, "flops": a.flops}
    if a.space.scale_budget is not None:
        row[a.space.scale_budget.scale] = a.constants[a.space.scale_budget.scale]
    return row


@app.command("list")
@user_errors
def list_(file: FileArg, space: SpaceOpt = None,
          limit: Annotated[Optional[int], typer.Option(help="Show at most N architectures.")] = None,
          sample: Annotated[Optional[int], typer.Option(help="Draw K architectures uniformly instead.")] = None,
          seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
          rejected: Annotated[bool, typer.Option(
              "--rejected", help="List the architectures the space's filters drop, with the reason.")] = False,
          as_json: JsonLinesOpt = None, force: ForceOpt = False,
          allow_outside_imports: OutsideOpt = False) -> None:
    """List architectures with their costs (enumeration order, or a seeded sample); --rejected: those the filters drop."""
    outs = [_output(as_json, "--json", "json-lines")]
    _check_outputs(outs, _spec_inputs(file), force)

    if limit is not None and limit < 0:
        raise NflcError(f"--limit must be non-negative, got {limit}")
    if sample is not None and sample < 0:
        raise NflcError(f"--sample must be non-negative, got {sample}")
    if rejected and sample is not None:
        raise NflcError("--rejected lists in enumeration order; it does not take --sample", hint="use --limit N")
    sp = load_space(file, space, allow_outside_imports)
    _check_outputs(outs, _spec_inputs(file, sp), force)
    if sample is None and limit is None and sp.raw_count() > 100_000:
        raise NflcError(f"space '{sp.name}' has {sp.raw_count():.3e} architectures; listing all of them is not useful",
                        hint="add --limit N" + ("" if rejected else " or --sample K"))
    if rejected:
        rows = ({"index": r.index, "id": sp.architecture(r.index).id, "reason": r.reason}
                for r in sp.rejections(limit))
    else:
        archs: Iterable[Architecture]
        if sample is not None:
            archs = sp.sample(sample, seed=seed)
        else:
            archs = itertools.islice(sp, limit) if limit is not None else iter(sp)
        rows = (_arch_row(a) for a in archs)
    if as_json is not None:
        _json_lines(rows, as_json)
        return
    table = Table(title=f"{sp.name}" + (": rejected by its filters" if rejected else ""))
    first = next(rows, None)
    if first is None:
        out.print("no rejected architectures" if rejected else "no architectures")
        return
    for k in first:
        if k == "id":
            id_column(table)
        else:
            table.add_column(k, justify="left" if k == "reason" else "right")
    for r in itertools.chain([first], rows):
        table.add_row(*(f"{v:,}" if isinstance(v, int) and k != "index" else str(v) for k, v in r.items()))
    print_table(table)


@app.command()
@user_errors
def graph(file: FileArg, arch_id: Annotated[str, typer.Argument(metavar="ID", help="Architecture id or index.")],
          space: SpaceOpt = None,
          fmt: Annotated[str, typer.Option("--format", "-f", help="dot, graphml, json, or a picture: svg, png.")] = "dot",
          network: Annotated[bool, typer.Option("--network", help="The whole network, not just the cell.")] = False,
          out_path: Annotated[Optional[Path], typer.Option(
              "--out", metavar="PATH", help="Write to PATH instead of standard output.")] = None,
          layout: Annotated[str, typer.Option(
              help="svg/png layout: auto (Graphviz's dot when installed, else networkx), graphviz, networkx.")] = "auto",
          force: ForceOpt = False, allow_outside_imports: OutsideOpt = False) -> None:
    """Print an architecture's graph (the cell DAG, or --network for the whole network), or draw it (svg, png)."""
    from nflc.space import graph as graphs  # lazy: loads lark and networkx and pydantic

    outs = [_output(out_path, "--out", "graph")]
    _check_outputs(outs, _spec_inputs(file), force)
    if fmt in ("svg", "png"):
        from nflc import drawing  # lazy: loads networkx and pydantic

        engine = drawing.layout_engine(layout)
        if fmt == "png" and out_path is None and sys.stdout.isatty():
            raise NflcError("a PNG is binary: not written to a terminal", hint="pass --out FILE.png or redirect standard output")
        sp = load_space(file, space, allow_outside_imports)
        _check_outputs(outs, _spec_inputs(file, sp), force)
        a = sp.architecture(arch_id)
        _flag_rejected(a)
        pic = drawing.draw(a, network=network, engine=engine)
        data = drawing.to_svg(pic).encode() if fmt == "svg" else drawing.to_png(pic)
        if out_path is not None:
            write_bytes(out_path, data)
            err.print(f"wrote {out_path} ({pic.engine} layout)", markup=False)
        else:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
        return
    sp = load_space(file, space, allow_outside_imports)
    _check_outputs(outs, _spec_inputs(file, sp), force)
    a = sp.architecture(arch_id)
    _flag_rejected(a)
    g = a.network_graph if network or len(sp.instances) != 1 else a.graph
    writers = {"dot": lambda: graphs.to_dot(g, sp.name), "graphml": lambda: graphs.to_graphml(g), "json": lambda: graphs.to_json(g)}
    if fmt not in writers:
        raise NflcError(f"unknown graph format '{fmt}'", hint="use dot, graphml, json, svg or png")
    if out_path is not None:
        write_text(out_path, writers[fmt]() + "\n")
        err.print(f"wrote {out_path}", markup=False)
        return
    sys.stdout.write(writers[fmt]() + "\n")


@app.command()
@user_errors
def ir(file: FileArg, space: SpaceOpt = None,
       text: Annotated[bool, typer.Option("--text", help="One line per node instead of JSON.")] = False,
       allow_outside_imports: OutsideOpt = False) -> None:
    """Print the checked IR of a space (JSON, or --text)."""
    sp = load_space(file, space, allow_outside_imports)
    sys.stdout.write((sp.ir.to_text() if text else sp.ir.model_dump_json(indent=2)) + "\n")


@app.command("ops")
@user_errors
def ops_(as_json: JsonLinesOpt = None, force: ForceOpt = False) -> None:
    """List the builtin and prelude ops with their parameters (defaults) and shape rules."""
    from nflc.ir.catalog import describe_ops  # lazy: loads lark and pydantic

    _check_outputs([_output(as_json, "--json", "json-lines")], force=force)
    rows = describe_ops()
    if as_json is not None:
        _json_lines(rows, as_json)
        return
    table = Table(title="ops (builtin and prelude)", title_justify="left")
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*r.values())
    out.print(table, markup=False)


@app.command("compile")
@user_errors
def compile_(file: FileArg, arch_id: Annotated[str, typer.Argument(metavar="ID", help="Architecture id or index.")],
             space: SpaceOpt = None,
             seed: Annotated[int, typer.Option(help="Initialisation seed.")] = 0,
             show: Annotated[bool, typer.Option("--print", help="Print the module.")] = False,
             out_path: Annotated[Optional[Path], typer.Option("--out", help="Save state dict + spec hash + id (.pt).")] = None,
             onnx_path: Annotated[Optional[Path], typer.Option("--onnx", help="Export ONNX (needs nflc[onnx]).")] = None,
             prune: Annotated[Optional[bool], typer.Option("--prune/--no-prune", help="Drop dead edges (default: the spec's).")] = None,
             allow_rejected: Annotated[bool, typer.Option(
                 "--allow-rejected", help="Compile an architecture the space's filters drop.")] = False,
             force: ForceOpt = False, allow_outside_imports: OutsideOpt = False) -> None:
    """Compile one architecture to a torch module (print, save, export)."""
    check_seed(seed)
    outs = [_output(out_path, "--out", "checkpoint"), _output(onnx_path, "--onnx", "onnx")]
    _check_outputs(outs, _spec_inputs(file), force)
    import torch  # torch: loaded only when a network is built or trained

    from nflc.backends.export import export_onnx, save_checkpoint  # lazy: loads numpy and torch

    sp = load_space(file, space, allow_outside_imports)
    _check_outputs(outs, _spec_inputs(file, sp), force)
    arch = sp.architecture(arch_id)
    if arch.rejection is not None:
        if not allow_rejected:
            from nflc.space.select import rejected_error  # lazy: loads networkx (loaded already with the space)

            raise rejected_error(arch, "not compiled", "--allow-rejected compiles it anyway")
        _flag_rejected(arch)
    if prune is not None:
        arch = sp.with_options(prune=prune).architecture(arch.index)
    module = arch.to_module(seed=seed)
    n = sum(p.numel() for p in module.parameters())
    out.print(f"{sp.name} #{arch.index} {arch.id}: {n:,} parameters", markup=False)
    if show:
        out.print(str(module), markup=False)
    if out_path is not None:
        save_checkpoint(arch, module, out_path, seed)
        out.print(f"saved {out_path} (in Python: arch, module = nflc.load_checkpoint({str(out_path)!r}, "
                  f"nflc.load({str(file)!r}{f', space={sp.name!r}' if space else ''})))", markup=False)
    if onnx_path is not None:
        example = torch.randn(2, *sp.ir.input_shape, generator=torch.Generator().manual_seed(seed))
        diff = export_onnx(module, onnx_path, example, doc=f"nflc: {sp.name} {arch.id}")
        check = "onnxruntime not installed" if diff is None else f"onnxruntime vs torch max |diff| = {diff:.2e}"
        out.print(f"exported {onnx_path} (onnx.checker ok; {check})")


def print_verdict(winners: dict, pareto_front: list, verdict: str, *, measured: bool, note: str = "",
                  winner_groups: dict | None = None, pareto_groups: int | None = None,
                  missing: tuple | list = (), notes: tuple | list = ()) -> None:
    """The no-free-lunch reading shared by ``analyze`` (predicted) and ``report`` (measured):
    each aspect's winner (ties counted, and with ``winner_groups`` the distinct computing
    graphs among them), the Pareto front's size, the verdict."""
    from nflc.analysis.report import ASPECTS  # lazy: loads numpy and scipy

    prefix = "measured " if measured else ""
    for asp in ASPECTS:
        w = winners[asp]
        if asp in missing:
            out.print(f"{prefix}winner {asp}: not computed", markup=False)
            continue
        tied = ""
        if len(w) > 1:
            g = (winner_groups or {}).get(asp)
            tied = f" (+{len(w) - 1} tied" + (f"; {g} distinct computing graph(s)" if g is not None else "") + ")"
        out.print(f"{prefix}winner {asp}: {w[0] if w else '-'}{tied}", markup=False)
    if not missing:
        groups = f" ({pareto_groups} distinct computing graph(s))" if pareto_groups is not None else ""
        out.print(f"Pareto front{' (measured)' if measured else ''}: {len(pareto_front)} architectures{groups}{note}")
    out.print(f"[bold]{verdict}[/]")
    for line in notes:
        out.print(f"[yellow]note:[/] {line}", highlight=False)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN: not computed
            return "-"
        return f"{v:.4g}"
    return str(v)


def _plot_target(plot: Path, default_name: str) -> Path:
    """``--plot DIR``: the PNG's path in DIR (created); a path ending in .png is the file itself
    (the older form, still accepted)."""
    if plot.suffix.lower() == ".png" and not plot.is_dir():
        return plot
    _plot_directory(plot)
    return plot / default_name


def _plot_directory(plot: Path) -> None:
    if plot.is_symlink() and not plot.exists():
        raise NflcError(f"--plot {plot} is a symbolic link to a directory that does not exist",
                        hint="pass the directory itself, or create it first")
    try:
        plot.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NflcError(f"cannot create plot directory {plot}: {exc.strerror or exc}",
                        hint="pass a directory you can write to") from None


def _analyze_options(dataset: Optional[str], data: Optional[str], seed: int, samples: int, measure: str,
                     precision: str, threads: Optional[int], top: int) -> Optional[str]:
    """``nflc analyze``'s options checked before anything is read; the dataset asked for."""
    if data is not None:
        if dataset is not None and dataset != data:
            raise NflcError(f"--dataset {dataset} and --data {data} disagree",
                            hint="--data is the old name of --dataset; give only --dataset")
        err.print("note: --data is deprecated; use --dataset", markup=False)
        dataset = data
    if dataset is not None:
        check_dataset_name(dataset)  # an empty --dataset is a mistake, not the default
    check_seed(seed)
    check_samples(samples)
    if measure not in ("auto", "finite", "none"):
        raise NflcError(f"unknown --measure '{measure}'", hint="auto, finite or none")
    if precision not in ("float32", "float64"):
        raise NflcError(f"unknown --precision '{precision}'", hint="float32 or float64")
    check_threads(threads)
    if top < 0:
        raise NflcError(f"--top must be non-negative, got {top}")
    return dataset


def _analysis_plan(sp: Space, dataset: str, samples: int, seed: int, measure: str, width: Optional[int],
                   archs: Optional[str]) -> tuple[Optional[int], Optional[list[Architecture]], int]:
    """What ``nflc analyze`` will do, checked before any work: ``(width, the architectures
    chosen (None: all), how many)``."""
    from nflc.analysis.analyze import check_kernel_memory  # lazy: loads numpy and scipy

    check_kernel_memory(sp, samples, dataset, measure)  # before any input is made
    if dataset != "none":  # a data file that is wrong or does not fit: said now, before any work
        from nflc.analysis.analyze import analysis_inputs  # lazy: loads numpy and scipy

        analysis_inputs(sp, dataset, samples, seed)
    if width is not None:
        from nflc.verify.config import resolve_width  # lazy: loads numpy and torch

        width = resolve_width(sp, width)
    chosen = sp.select(archs, seed)
    total = len(chosen) if chosen is not None else sp.count()
    from nflc.analysis.groups import check_count  # lazy: loads numpy

    check_count(sp.name, total)
    check_kernel_memory(sp, samples, dataset, measure)
    return width, chosen, total


def _print_analysis(sp: Space, result: Any, seconds: float, n_threads: int, json_path: Optional[Path],
                    csv_path: Optional[Path], plot_file: Optional[Path], html: Optional[Path], collector: Any,
                    seed: int) -> None:
    """``nflc analyze``'s output: the header, the best of each aspect, the taus, the
    verdict, and the files written."""
    from nflc.analysis.report import ASPECTS  # lazy: loads numpy and scipy

    rep, head = result.report, result.header
    out.print(f"[bold]{sp.name}[/]: {head.architectures} architectures ({head.groups} distinct computing graphs), "
              f"data {head.data.name} (N = {head.data.samples}), {n_threads} thread{'s' if n_threads > 1 else ''}, "
              f"{seconds:.1f} s")
    if head.exact_note:
        out.print(f"[yellow]note:[/] {head.exact_note}")
    else:
        out.print("kernels: exact infinite-width NNGP and NTK (float64)")
    for asp in ASPECTS:
        if asp in rep.missing:
            out.print(f"best {asp}: not computed (--measure none)", markup=False)
            continue
        table = Table(title=f"best {asp}", title_justify="left",
                      caption="archs: architectures computing this function (they differ only in dead edges or in the "
                              "numbering of intermediate nodes); id: the one with the fewest parameters",
                      caption_justify="left")
        id_column(table)
        for col in ("archs", "P", "mean depth", "params", "expressivity", "convergence", "generalization"):
            table.add_column(col, justify="right")
        for a in result.top[asp]:
            table.add_row(a.id, str(a.group_size), str(a.paths), f"{a.mean_depth:.3g}", f"{a.params:,}",
                          *(_fmt(a.scores[x]) for x in ASPECTS))
        print_table(table)
    kt = Table(title="Kendall tau of each predicted score with topology (paper Fig. 4)", title_justify="left")
    for col in ("aspect", "tau with P", "tau with mean depth"):
        kt.add_column(col)
    for asp in ASPECTS:
        k = rep.kendall.get(asp, {})
        kt.add_row(asp, *(_fmt(k[c].tau) if c in k and k[c].tau is not None else "n/a" for c in ("paths", "mean_depth")))
    out.print(kt)
    print_verdict(rep.winners, rep.pareto_front, rep.verdict, measured=False,
                  note=f"; left out (no input-output path): {len(rep.left_out)}", winner_groups=rep.winner_groups,
                  pareto_groups=rep.pareto_groups, missing=rep.missing, notes=rep.notes)
    for path in (json_path, csv_path):
        if path is not None:
            out.print(f"wrote {path}")
    if plot_file is not None and result.columns is not None:
        from nflc.analysis.plots import topology_panels  # lazy: loads numpy

        c = result.columns
        topology_panels(plot_file, c["paths"].tolist(), c["mean_depth"].tolist(), {asp: c[asp].tolist() for asp in ASPECTS},
                        f"{sp.name}: predicted scores ({head.data.name}, N = {head.data.samples})")
        out.print(f"wrote {plot_file}")
    if html is not None and collector is not None:
        from nflc.pages import write as write_page  # lazy: loads numpy
        from nflc.pages.analyze import analyze_page  # lazy: loads numpy and scipy

        size = write_page(analyze_page(sp, result, collector, seed=seed), html)
        out.print(f"wrote {html} ({size / 2**20:.1f} MiB, opens offline)", markup=False)


AnalyzeDatasetOpt = Annotated[Optional[str], typer.Option(
    help=("A shipped dataset (mnist5k, digits, mnist1d, gaussian, mnist5k_rgb32), a path (an .npz file with "
    "arrays x and y, or a CIFAR-10 folder), or none (data-free). Default: the shipped dataset whose "
    "inputs fit the space."), show_default=False)]
AnalyzeMeasureOpt = Annotated[str, typer.Option(
    help=("auto (exact kernels when they apply, else finite-width), finite, none (no finite-width "
    "measurements: no convergence or generalization score outside the exact family)."))]
AnalyzeWidthOpt = Annotated[Optional[int], typer.Option(
    help=("Build the finite-width modules at this width (the space's 'width' constant; default: the "
    "space's own). Exact kernels and the closed-form curvature do not depend on it."),
    show_default=False)]
AnalyzePrecisionOpt = Annotated[str, typer.Option(
    help="float32 or float64: the finite-width modules' arithmetic (Grams always sum in float64).")]
AnalyzeMemoryOpt = Annotated[str, typer.Option(
    help="Working memory of one finite-width measurement (e.g. 512M, 2G): inputs are streamed within it.")]
AnalyzeThreadsOpt = Annotated[Optional[int], typer.Option(
    help=("CPU threads for BLAS and torch (default: the cores other jobs leave free, at most one per 256 "
    "inputs; NFLC_THREADS or OMP_NUM_THREADS override it)."), show_default=False)]
AnalyzeJsonPathOpt = Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Write the full analysis as JSON (as it goes).")]
AnalyzeCsvPathOpt = Annotated[Optional[Path], typer.Option("--csv", metavar="PATH", help="Write one row per architecture (as it goes).")]
AnalyzePlotOpt = Annotated[Optional[Path], typer.Option(
    metavar="DIR", help=("Directory for PNG figures (created if missing): predicted_topology.png, the paper's Fig. 4 "
    "panels."))]


@app.command()
@user_errors
def analyze(file: FileArg, space: SpaceOpt = None,
            dataset: AnalyzeDatasetOpt = None,
            data: Annotated[Optional[str], typer.Option("--data", hidden=True, help="Deprecated name of --dataset.")] = None,
            samples: Annotated[int, typer.Option(help="Inputs N in the kernels.")] = 256,
            seed: Annotated[int, typer.Option(help="Seed of the data sample and of any finite-width module.")] = 0,
            archs: Annotated[Optional[str], typer.Option(help="all, sample:K, or comma-separated ids/indices.")] = None,
            measure: AnalyzeMeasureOpt = "auto",
            width: AnalyzeWidthOpt = None,
            precision: AnalyzePrecisionOpt = "float32",
            memory: AnalyzeMemoryOpt = "512M",
            threads: AnalyzeThreadsOpt = None,
            json_path: AnalyzeJsonPathOpt = None,
            csv_path: AnalyzeCsvPathOpt = None,
            top: Annotated[int, typer.Option(help="Rows of each table: the best K computing graphs by each aspect.")] = 5,
            plot: AnalyzePlotOpt = None,
            html: HtmlOpt = None, force: ForceOpt = False,
            allow_outside_imports: OutsideOpt = False) -> None:
    """Predict expressivity, convergence and generalization of every architecture, and
    report the space's no-free-lunch trade-off."""
    from nflc.analysis.threads import choose_threads, limit_threads  # lazy: loads numpy
    started = time.perf_counter()  # the header's time is the whole run's: loading, data and sampling too
    dataset = _analyze_options(dataset, data, seed, samples, measure, precision, threads, top)
    budget = memory_size(memory)
    plot_file = _plot_target(plot, "predicted_topology.png") if plot is not None else None
    outs = [_output(json_path, "--json", "analyze-json"), _output(csv_path, "--csv", "analyze-csv"),
            _output(html, "--html", "html"), _output(plot_file, "--plot", "png")]
    _check_outputs(outs, _spec_inputs(file), force)
    n_threads, why = choose_threads(threads, rows=samples)
    sp = load_space(file, space, allow_outside_imports)
    _check_outputs(outs, _spec_inputs(file, sp), force)
    dataset = _dataset_for(sp, dataset)
    width, chosen, total = _analysis_plan(sp, dataset, samples, seed, measure, width, archs)
    progress = AnalysisProgress(err, total)
    writer = None
    try:  # a Ctrl-C from the first progress line on closes it as stopped
        if total >= progress.EARLY_ARCHS:
            progress.update(0, total, "grouping")  # a large space's first line now, before scipy and torch load
        from nflc.analysis.analyze import FiniteSettings, StreamWriter, analyze_stream  # lazy: loads numpy and scipy

        finite = FiniteSettings(precision=precision, memory=budget, width=width)  # type: ignore[arg-type]
        writer = stream = StreamWriter(json_path, csv_path)
        collector = None
        if html is not None:
            from nflc.pages.analyze import AnalyzeCollector  # lazy: loads numpy and scipy

            collector = AnalyzeCollector(total, seed=seed)

        def on_rows(rows: Any) -> None:
            stream.rows(rows)
            if collector is not None:
                collector.rows(rows)

        with limit_threads(n_threads):
            result = analyze_stream(sp, data=dataset, samples=samples, seed=seed, archs=chosen, measure=measure,  # type: ignore[arg-type]
                                    progress=progress.update, warn=progress.warn, on_header=stream.header,
                                    on_rows=on_rows, top=top, keep_columns=plot_file is not None or html is not None,
                                    finite=finite)
        stream.finish(result)
    except KeyboardInterrupt:
        progress.close()
        kept = ""
        if writer is not None:
            writer.close()
            kept = "; ".join(f"{p} is unchanged, the rows so far are in {p}.partial" for p in writer.partial_paths())
        _say_interrupted("interrupted" + (f": {kept}" if kept else ""))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    _print_analysis(sp, result, time.perf_counter() - started, n_threads, json_path, csv_path, plot_file, html,
                    collector, seed)


RankBenchmarkOpt = Annotated[Path, typer.Option(help=(
    "Results file: {'architectures': [{<encoding>, 'val_accuracy', proxies...}]}; the encoding is 'arch_str', "
    "'matrix'/'ops', 'genotype', a NASLib column or an nflc 'id' (docs/LANGUAGE.md, \"Encodings\")."))]
RankScoreOpt = Annotated[str, typer.Option(help=(
    "nflc (the default: expressivity), expressivity, convergence, generalization, flops, params, aggregate, "
    "convergence_nngp, generalization_bound, paths, mean_depth; several joined by commas, or all "
    "(docs/ANALYZE.md, \"Ranking components\")."))]
RankKernelWidthOpt = Annotated[int, typer.Option(help=(
    "Measure conv networks with their channels scaled down so the first cell reads at most this many "
    "(0: the space's own width)."))]
RankMemoryOpt = Annotated[str, typer.Option(help=(
    "Memory one network's kernels may take (e.g. 1G); a network over it is named and ranked last."))]
RankCacheOpt = Annotated[Optional[Path], typer.Option(help=(
    "SQLite file of measured kernels, reused by later runs (default: $NFLC_CACHE, else "
    "~/.cache/nflc/kernels.sqlite)."))]
RankBenchmarkDatasetOpt = Annotated[Optional[str], typer.Option(
    help=("With NAS-Bench-Suite-Zero's JSON (results of several datasets): which one (default cifar10)."),
    show_default=False)]
RankJsonPathOpt = Annotated[Optional[Path], typer.Option(
    "--json", help="Write the summary and per architecture its entry, nflc id, params and scores.")]


@app.command()
@user_errors
def rank(file: FileArg,
         benchmark: RankBenchmarkOpt,
         space: SpaceOpt = None,
         score: RankScoreOpt = "nflc",
         jobs: Annotated[int, typer.Option(help="Processes measuring kernels at once (one thread each).")] = 1,
         samples: Annotated[int, typer.Option(help="Data-free inputs the kernels are measured on.")] = 16,
         seed: Annotated[int, typer.Option(help="Seed of the inputs and of the networks' initialisation.")] = 0,
         kernel_width: RankKernelWidthOpt = 16,
         memory: RankMemoryOpt = "1G",
         cache: RankCacheOpt = None,
         no_cache: Annotated[bool, typer.Option("--no-cache", help="Measure everything again; store nothing.")] = False,
         bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals (0: none).")] = 1000,
         benchmark_dataset: RankBenchmarkDatasetOpt = None,
         json_path: RankJsonPathOpt = None,
         html: HtmlOpt = None, force: ForceOpt = False,
         allow_outside_imports: OutsideOpt = False) -> None:
    """Rank a benchmark's architectures without training; compare with its zero-cost proxies."""
    from nflc.analysis.rank_components import KERNEL_COMPONENTS, KernelSettings  # lazy: loads numpy and scipy
    from nflc.rank import rank as run_rank  # lazy: loads numpy and scipy
    from nflc.rank import read_benchmark, score_names  # lazy: loads numpy and scipy

    names = score_names(score)  # an unknown name fails before any work
    if jobs < 1:
        raise NflcError(f"--jobs must be at least 1, got {jobs}", hint="--jobs 1 measures in this process")
    if samples < 2:
        raise NflcError(f"--samples must be at least 2, got {samples}")
    if kernel_width < 0:
        raise NflcError(f"--kernel-width must be at least 0, got {kernel_width}", hint="0 measures at the space's own width")
    if bootstrap < 0:
        raise NflcError(f"--bootstrap must be at least 0, got {bootstrap}")
    check_seed(seed)
    settings = KernelSettings(samples=samples, seed=seed, width=kernel_width or None, memory=memory_size(memory))
    outs = [_output(json_path, "--json", "rank-json"), _output(html, "--html", "html")]
    inputs = [Input(benchmark, "--benchmark"), *([Input(cache, "--cache")] if cache is not None else []),
              *_spec_inputs(file)]
    _check_outputs(outs, inputs, force)
    sp = load_space(file, space, allow_outside_imports)
    _check_outputs(outs, [*inputs, *_spec_inputs(None, sp)], force)
    kernels = any(n in ("aggregate", *KERNEL_COMPONENTS) for n in names)
    # the file is read (and checked) first: the progress display counts its architectures
    progress = AnalysisProgress(err, len(read_benchmark(benchmark, benchmark_dataset)) if kernels else 0)
    store = None if no_cache or not kernels else _open_cache(cache)  # graph scores never touch the cache

    def on_progress(done: int, total: int) -> None:
        if total:
            progress.update(done, total)

    try:
        res = run_rank(sp, benchmark, ",".join(names), benchmark_dataset, settings=settings, jobs=jobs, cache=store,
                       progress=on_progress, resamples=bootstrap, seed=seed)
    finally:
        progress.close()
        if store is not None:
            store.close()
    if store is not None and store.error is not None:
        err.print(f"warning: the kernel cache {store.path} failed ({store.error}); what it could not store will be "
                  "measured again next time", markup=False)
    _print_rank(res, sp.name)
    if json_path is not None:
        write_text(json_path, json.dumps(res.model_dump(), indent=1))
        out.print(f"wrote {json_path}")
    if html is not None:
        from nflc.pages import write as write_page  # lazy: loads numpy
        from nflc.pages.rank import rank_page  # lazy: loads numpy

        size = write_page(rank_page(sp, res, read_benchmark(benchmark, benchmark_dataset)), html)
        out.print(f"wrote {html} ({size / 2**20:.1f} MiB, opens offline)", markup=False)


def _open_cache(path: Optional[Path]) -> Any:
    """The kernel cache at ``path`` (default: the user's cache folder); None, with a warning,
    when it cannot be opened (the run then measures without it)."""
    from nflc.analysis.score_cache import KernelCache, default_cache_path  # lazy: loads numpy and scipy

    target = path or default_cache_path()
    try:
        return KernelCache(target)
    except (OSError, sqlite3.Error) as exc:
        if path is not None:
            raise NflcError(f"--cache {path}: cannot use it as an SQLite file: {exc}",
                            hint="pass another path, or --no-cache") from None
        err.print(f"warning: the kernel cache {target} cannot be used ({exc}); measuring without it", markup=False)
        return None


def _print_rank(res: Any, space_name: str) -> None:
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731

    def ci(iv: Any) -> str:
        return "" if iv is None or iv.low != iv.low else f"[{iv.low:.2f}, {iv.high:.2f}]"

    table = Table(title=f"{res.n} architectures of {space_name} ranked against val_accuracy", title_justify="left")
    cols = ["score", "Kendall tau", "95% CI", "Spearman rho", "95% CI ", "top-5% precision", "rank of best",
            "seconds / arch"]
    for col in cols:
        table.add_column(col, justify="left" if col == "score" else "right")
    for r in sorted(res.table, key=lambda r: -(r.kendall_tau if r.kendall_tau is not None else -9)):
        style = "bold" if r.name.startswith("nflc:") else None
        table.add_row(r.name, fmt(r.kendall_tau, ".3f"), ci(r.tau_interval), fmt(r.spearman_rho, ".3f"),
                      ci(r.rho_interval), fmt(r.top5_precision, ".2f"), fmt(r.best_rank, ".1f"),
                      fmt(r.seconds_per_arch, ".2g"), style=style)
    out.print(table)
    if res.resamples:
        out.print(f"intervals: {res.resamples} bootstrap resamples of the architectures (percentile, 95%)")
    for ld in res.leads:
        verb = "leads" if ld.difference >= 0 else "trails"
        where = ("the interval excludes 0: a real difference" if ld.beyond
                 else "the interval includes 0: not a real difference")
        out.print(f"{ld.score} {verb} the best proxy column, {ld.other}, by {abs(ld.difference):.3f} in Kendall tau "
                  f"(paired bootstrap 95% CI of the difference [{ld.interval.low:+.3f}, {ld.interval.high:+.3f}]: {where})")
    k = res.kernels
    if k is not None:
        out.print(f"kernels: {k.measured} measured, {k.cached} from the cache, {k.shared} shared with an "
                  f"architecture of the same computing graph, {k.failed} failed, in {k.seconds:.1f} s "
                  f"(N = {k.settings['samples']} data-free inputs, seed {k.settings['seed']}, kernel width "
                  f"{k.settings['width'] or 'of the space'})")
    for f in res.failures:
        out.print(f"not measured: entry {f.entry} ({f.id}): {f.reason}; ranked last by the kernel scores", markup=False)
    out.print(f"nflc scored all {res.n} architectures in {res.nflc_seconds_total:.3f} s (no data, no training)")


@app.command()
@user_errors
def score(file: FileArg, space: SpaceOpt = None,
          archs: Annotated[Optional[str], typer.Option(help="all (default), sample:K, or comma-separated ids/indices.")] = None,
          from_file: Annotated[Optional[Path], typer.Option(
              "--from-file", metavar="PATH",
              help=("A JSON list of architectures (ids, indices, encodings such as NB201 op indices, NB101 (matrix, ops), "
                    "DARTS genotypes, or entry objects), or a benchmark file in nflc's or NAS-Bench-Suite-Zero's form."),
              show_default=False)] = None,
          benchmark_dataset: Annotated[Optional[str], typer.Option(
              help="With NAS-Bench-Suite-Zero's JSON in --from-file: which dataset's table (default cifar10).",
              show_default=False)] = None,
          seed: Annotated[int, typer.Option(help="Seed of --archs sample:K.")] = 0,
          kind: Annotated[str, typer.Option("--score", help=(
              "nflc (default), paths, mean_depth, params, flops, or any of nflc rank's scores (convergence, "
              "generalization, aggregate, ...: these measure each network's kernels)."))] = "nflc",
          json_path: Annotated[Optional[Path], typer.Option(
              "--json", metavar="PATH", help="Write the scores as JSON to PATH ('-': standard output) instead of a table.")] = None,
          force: ForceOpt = False, allow_outside_imports: OutsideOpt = False) -> None:
    """Score architectures without data, training or accuracies (higher = predicted better): what a search loop calls."""
    from nflc.rank import architectures_from_file, score_architectures  # lazy: loads numpy and scipy

    if archs is not None and from_file is not None:
        raise NflcError("--archs and --from-file both say which architectures to score; give one of them")
    if benchmark_dataset is not None and from_file is None:
        raise NflcError("--benchmark-dataset only applies with --from-file")
    check_seed(seed)
    outs = [None if json_path is None or str(json_path) == "-" else _output(json_path, "--json", "score-json")]
    inputs = [*([Input(from_file, "--from-file")] if from_file is not None else []), *_spec_inputs(file)]
    _check_outputs(outs, inputs, force)
    sp = load_space(file, space, allow_outside_imports)
    _check_outputs(outs, [*inputs, *_spec_inputs(None, sp)], force)
    if from_file is not None:
        chosen = architectures_from_file(sp, from_file, benchmark_dataset)
    else:
        selected = sp.select(archs, seed)
        if selected is None:  # all of them
            from nflc.analysis.groups import check_count  # lazy: loads numpy

            check_count(sp.name, sp.count())
            selected = list(sp)
        chosen = selected
    t0 = time.perf_counter()
    rows = score_architectures(chosen, kind)
    seconds = time.perf_counter() - t0
    if json_path is not None:
        doc = {"space": sp.name, "score": kind, "higher_is_better": True, "seconds": seconds,
               "architectures": [{**r.model_dump(), "score": r.score if r.score > float("-inf") else "-inf"} for r in rows]}
        text = json.dumps(doc, indent=1)
        if str(json_path) == "-":
            sys.stdout.write(text + "\n")
        else:
            write_text(json_path, text + "\n")
            err.print(f"wrote {json_path}", markup=False)
        return
    table = Table(title=f"{sp.name}: {len(rows)} architectures by the '{kind}' score (higher = predicted better; "
                        "no data, no training)", title_justify="left")
    for col in ("rank", "index"):
        table.add_column(col, justify="right")
    id_column(table)
    for col in ("params", "score"):
        table.add_column(col, justify="right")
    order = sorted(range(len(rows)), key=lambda i: -rows[i].score)
    for r, i in enumerate(order, 1):
        a = rows[i]
        table.add_row(str(r), str(a.index), a.id, f"{a.params:,}", "-inf (no path)" if a.score == float("-inf") else f"{a.score:.6g}")
    print_table(table)
    out.print(f"scored {len(rows)} architectures in {seconds:.3f} s")


@app.command()
@user_errors
def convert(file: FileArg,
            value: Annotated[str, typer.Argument(help=(
                "The architecture: an id or index, or JSON (or a Python literal, or DARTS's 'Genotype(...)'); - reads stdin."),
                show_default=False)],
            from_: Annotated[Optional[str], typer.Option("--from", help=(
                "id, op_indices, nb101, naslib_tuple, genotype or compact (default: told from the value's shape)."))] = None,
            to: Annotated[str, typer.Option(help="id, index, op_indices, nb101, naslib_tuple, genotype or compact.")] = "id",
            representative: Annotated[bool, typer.Option(
                "--representative", help="Convert the member of its isomorphism class the space keeps ('unique').")] = False,
            space: SpaceOpt = None, allow_outside_imports: OutsideOpt = False) -> None:
    """Convert an architecture between nflc ids and NAS-Bench-201/-101/DARTS encodings (checked in the space)."""
    text = sys.stdin.read(enc.MAX_VALUE_CHARS + 1) if value == "-" else value
    for name, fmt in (("--from", from_), ("--to", to)):
        allowed = [*enc.FORMATS, "index"] if name == "--to" else list(enc.FORMATS)
        if fmt is not None and fmt not in allowed:
            raise NflcError(f"{name} {fmt!r} is not a format", hint=f"one of {', '.join(allowed)}")
    if from_ in (None, "id"):
        try:
            data = enc.parse_value(text)
        except enc.UnreadableValue:
            raise
        except NflcError:
            data = text.strip()  # an id is not JSON
        fmt = from_ or enc.detect_format(data)
        if fmt == "id" and (isinstance(data, bool) or not isinstance(data, (str, int))):
            raise NflcError(f"--from id takes an id or an index, not {text.strip()!r}", hint="name its format with --from")
    else:
        fmt, data = from_, enc.parse_value(text)
    sp = load_space(file, space, allow_outside_imports)
    arch = enc.architecture_from(sp, data, fmt)
    why = enc.not_in_space(arch)
    if why is not None:
        err.print(f"note: {arch.id} is not in space '{sp.name}': {why}", markup=False)
    elif arch.rejection is not None:
        rep = enc.class_representative(arch)
        if representative:
            arch = rep
        else:
            err.print(f"note: {arch.id} is in space '{sp.name}' as a member of the isomorphism class of {rep.id} "
                      "(--representative converts that one)", markup=False)
    result = enc.value_in(arch, to)
    out.print(result if isinstance(result, (str, int)) else json.dumps(result), markup=False)


VerifyDatasetOpt = Annotated[Optional[str], typer.Option(
    help=("A shipped dataset (mnist5k, digits, mnist1d, gaussian, mnist5k_rgb32) or a path: an .npz file with "
    "arrays x and y, or a CIFAR-10 folder (default: the shipped dataset whose inputs fit the space)."),
    show_default=False)]
VerifyUntilConvergedOpt = Annotated[bool, typer.Option(
    "--until-converged", help=("Train each network until its training loss has converged (--stop-rule, "
    "--plateau-window, --plateau-tol), at most --max-epochs."))]
VerifyMaxEpochsOpt = Annotated[Optional[int], typer.Option(
    help="With --until-converged: the most epochs a network trains (default 3000, the paper's length).")]
VerifyStopRuleOpt = Annotated[Optional[str], typer.Option(
    help=("With --until-converged: slope (default: the log-loss slope fitted over the last half of the run "
    "predicts less than --plateau-tol decrease over the next window, at 2.5 standard errors) or window "
    "(two window means within --plateau-tol; nflc's earlier rule)."))]
VerifyMinEpochsOpt = Annotated[Optional[int], typer.Option(
    help="With --stop-rule slope: the first epoch at which a run may stop (default twice the window).")]
VerifyPlateauWindowOpt = Annotated[Optional[int], typer.Option(
    help=("With --until-converged: the rule's window in epochs (default 50 for slope, 20 for window); "
    "measured losses are means over it."))]
VerifyPlateauTolOpt = Annotated[Optional[float], typer.Option(
    help=("With --until-converged: the relative decrease per window below which the loss has converged "
    "(default 0.01)."))]
VerifyPopulationOpt = Annotated[Optional[bool], typer.Option(
    "--population/--no-population",
    help=("Train the MLP-cell family batched, or one at a time (default: batched where faster: always on a "
    "GPU, small networks on a CPU)."))]
VerifyThreadsOpt = Annotated[Optional[int], typer.Option(
    help=("CPU threads for torch and BLAS (default: the cores other jobs leave free; NFLC_THREADS or "
    "OMP_NUM_THREADS override it)."), show_default=False)]
VerifyExecutorOpt = Annotated[str, typer.Option(
    help="local (this process) or ray (Ray tasks: a local Ray instance, or the cluster at --address).")]
VerifyAddressOpt = Annotated[Optional[str], typer.Option(
    help="With --executor ray: the cluster's HOST:PORT (from 'ray start --head'), or auto.")]
VerifyGroupSizeOpt = Annotated[Optional[int], typer.Option(help="Architectures per population (default 1024 on CUDA, 64 on CPU).")]
VerifyWorkersOpt = Annotated[Optional[int], typer.Option(
    help=("With --executor ray: groups trained at once (default: the cluster's CPUs, or GPUs / "
    "--gpus-per-worker)."))]
VerifyGpusPerWorkerOpt = Annotated[Optional[float], typer.Option(
    help="With --executor ray: GPUs per worker (a fraction shares a GPU between populations).")]


@app.command()
@user_errors
def verify(file: FileArg, space: SpaceOpt = None,
           archs: Annotated[str, typer.Option(help="all, sample:K, or comma-separated ids/indices.")] = "all",
           dataset: VerifyDatasetOpt = None,
           samples: Annotated[Optional[int], typer.Option(help="Use a class-stratified subset of N samples (quick runs).")] = None,
           test_fraction: Annotated[float, typer.Option(help="Share of the samples held out for testing.")] = 0.2,
           epochs: Annotated[Optional[int], typer.Option(help="Epochs per architecture (default 100).")] = None,
           until_converged: VerifyUntilConvergedOpt = False,
           max_epochs: VerifyMaxEpochsOpt = None,
           stop_rule: VerifyStopRuleOpt = None,
           min_epochs: VerifyMinEpochsOpt = None,
           plateau_window: VerifyPlateauWindowOpt = None,
           plateau_tol: VerifyPlateauTolOpt = None,
           lr: Annotated[float, typer.Option(help="Constant SGD learning rate (no momentum, no weight decay).")] = 0.1,
           batch: Annotated[int, typer.Option(help="Minibatch size.")] = 128,
           width: Annotated[Optional[int], typer.Option(help="Override the space's width constant.")] = None,
           threshold: Annotated[float, typer.Option(help="Training accuracy that counts as converged.")] = 0.5,
           device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")] = "auto",
           db: Annotated[Path, typer.Option(help="Results database (SQLite); rerunning resumes it.")] = Path("results.sqlite"),
           seed: Annotated[int, typer.Option(help="Seed of --archs sample:K, the data split, weights and minibatch order.")] = 0,
           population: VerifyPopulationOpt = None,
           group_size: VerifyGroupSizeOpt = None,
           checkpoint_every: Annotated[int, typer.Option(help="Save resumable state every N epochs.")] = 1,
           lock_timeout: Annotated[float, typer.Option(help="Seconds to wait for another process's lock on --db.")] = 30.0,
           threads: VerifyThreadsOpt = None,
           executor: VerifyExecutorOpt = "local",
           address: VerifyAddressOpt = None,
           workers: VerifyWorkersOpt = None,
           gpus_per_worker: VerifyGpusPerWorkerOpt = None,
           quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
           allow_outside_imports: OutsideOpt = False) -> None:
    """Train architectures with the paper's protocol and record the measured aspects
    (expressivity, convergence, generalization) in --db; rerunning resumes."""
    from nflc.analysis.threads import choose_threads, limit_threads  # lazy: loads numpy
    from nflc.verify.config import MAX_EPOCHS, make_config, stopping_rule  # lazy: loads numpy and torch
    from nflc.verify.run import recorded_threads  # lazy: loads numpy and torch
    from nflc.verify.run import verify as run_verify  # lazy: loads numpy and torch

    check_threads(threads)
    # as analyze does: on a machine whose cores other jobs use, torch's one thread per core
    # waits at barriers for cores it does not get (3x slower on a busy 2-core machine);
    # a resumed run keeps the count it was created with (conv sums depend on it in the last bits)
    n_threads, why = choose_threads(threads)
    if why != "--threads" and not why.startswith("from the environment"):
        n_threads = recorded_threads(db) or n_threads
    runner = _executor(executor, address, workers, gpus_per_worker)
    plateau = stopping_rule(until_converged, epochs, max_epochs, plateau_window, plateau_tol, stop_rule, min_epochs)
    # None means the default; 0 is a mistake (make_config says so), never the default
    if plateau is not None:
        epochs = MAX_EPOCHS if max_epochs is None else max_epochs
    elif epochs is None:
        epochs = 100
    sp = load_space(file, space, allow_outside_imports)
    chosen = sp.select(archs, seed)
    dataset = _dataset_for(sp, dataset)
    config = make_config(sp, dataset=dataset, samples=samples, test_fraction=test_fraction, width=width,
                         epochs=epochs, lr=lr, batch=batch, seed=seed, device=device, threshold=threshold,
                         plateau=plateau)
    progress, close = (None, lambda: None) if quiet else sweep_progress(epochs, err)
    try:
        with limit_threads(n_threads):
            res = run_verify(sp, chosen, config, db, progress=progress, population=population, group_size=group_size,
                             checkpoint_every=checkpoint_every, lock_timeout=lock_timeout, spec_file=str(file),
                             executor=runner, threads=n_threads)
    except KeyboardInterrupt:
        _say_interrupted(f"interrupted: finished architectures and the last checkpoints are in {db}; "
                         "rerun the same command to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        close()
    _print_verify(sp, res, config, plateau, epochs, lr, batch, db, n_threads, runner is None)


def _print_verify(sp: Space, res: Any, config: Any, plateau: Any, epochs: int, lr: float, batch: int, db: Path,
                  n_threads: int, local: bool) -> None:
    """``nflc verify``'s summary of a run (``local``: trained in this process)."""
    from nflc.verify.config import solves_width  # lazy: loads torch

    width_text = "solved per architecture for the budget" if solves_width(sp) else config.width
    length = (f"until converged ({getattr(plateau, 'rule', 'window')} rule, window {plateau.window}, tol {plateau.tol:g}), "
              f"at most {epochs} epochs" if plateau is not None else f"{epochs} epochs")
    out.print(f"[bold]{sp.name}[/]: {res.architectures} architectures, {config.data.dataset} ({res.train_size} train / "
              f"{res.test_size} test), width {width_text}, {length}, lr {lr:g}, batch {batch}")
    if res.extended is not None:
        before, after, n = res.extended
        out.print(f"extended the run in {db} from {before} to {after} epochs: {n} finished network(s) continued from "
                  f"their final state", markup=False)
    if plateau is not None:
        out.print(f"converged {res.converged} of {len(res.trained)} trained in this call; the others stopped at {epochs} epochs")
    out.print(f"trained {len(res.trained)} ({res.batched} in populations, {res.alone} one at a time), "
              f"already done {len(res.skipped)}, diverged {len(res.diverged)}; {res.seconds:.1f} s"
              + (f", {n_threads} thread{'s' if n_threads > 1 else ''}" if local else ""))
    out.print(f"results in {db}; next: nflc report --db {db} [--analysis analysis.json]", markup=False)


def _dataset_for(sp: Space, dataset: Optional[str]) -> str:
    """``--dataset``, or the shipped dataset whose inputs fit the space (said on stderr when
    it is not mnist5k)."""
    from nflc.data import DATASETS, DEFAULT_DATASET, default_dataset  # lazy: loads numpy and torch

    if dataset is not None:
        return dataset
    chosen = default_dataset(sp.ir.input_shape)
    if chosen != DEFAULT_DATASET:
        err.print(f"note: --dataset not given: using {chosen} ({DATASETS[chosen].description}), the shipped dataset "
                  f"whose inputs fit {list(sp.ir.input_shape)}", markup=False)
    return chosen


def _executor(name: str, address: Optional[str], workers: Optional[int], gpus_per_worker: Optional[float]) -> Any:
    """The executor of ``--executor`` (None: in this process); Ray options only with ray."""
    if address is not None and not address.strip():
        raise NflcError("--address is empty", hint="pass HOST:PORT, or auto (the cluster this machine is part of)")
    if name == "local":
        given = [o for o, v in (("--address", address), ("--workers", workers), ("--gpus-per-worker", gpus_per_worker))
                 if v is not None]
        if given:
            raise NflcError(f"{', '.join(given)} only applies with --executor ray", hint="add --executor ray")
        return None
    if name != "ray":
        raise NflcError(f"--executor {name}: expected local or ray")
    from nflc.verify.ray_executor import RayExecutor  # lazy: loads numpy and torch

    return RayExecutor(address=address, workers=workers, gpus_per_worker=gpus_per_worker or 0.0)


ReportSpecOpt = Annotated[Optional[Path], typer.Option(help="With --html: the spec the run trained, to draw each architecture.")]


@app.command()
@user_errors
def report(db: Annotated[Path, typer.Option(help="Results database written by 'nflc verify'.")],
           analysis: Annotated[Optional[Path], typer.Option(help="'nflc analyze --json' file: compare its predictions.")] = None,
           plot: Annotated[Optional[Path], typer.Option(help="Directory for PNG figures.")] = None,
           json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON.")] = None,
           bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 1000,
           seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
           top: Annotated[int, typer.Option(help="Rows of the table (best by each measured aspect).")] = 5,
           html: HtmlOpt = None,
           spec: ReportSpecOpt = None,
           space: SpaceOpt = None, force: ForceOpt = False, allow_outside_imports: OutsideOpt = False) -> None:
    """Report a verification run: measured aspects, Kendall tau with topology and with the
    predictions, and the no-free-lunch verdict on measured data."""
    from nflc.verify.report import PLOT_FILES, best_by_aspect, build_report, to_json_dict, write_plots  # lazy: loads torch

    if bootstrap < 0:
        raise NflcError(f"--bootstrap must be >= 0, got {bootstrap}")
    if top < 0:
        raise NflcError(f"--top must be non-negative, got {top}")
    check_seed(seed)
    if spec is not None and html is None:
        raise NflcError("--spec only serves --html (to draw the architectures)", hint="add --html PATH")
    if plot is not None:
        _plot_directory(plot)
    figures = [] if plot is None else [plot / name for name in PLOT_FILES[:1 if analysis is None else None]]
    outs = [_output(json_path, "--json", "report-json"), _output(html, "--html", "html"),
            *(_output(f, "--plot", "png") for f in figures)]
    inputs = [*database_files(db), *([Input(analysis, "--analysis")] if analysis is not None else []),
              *_spec_inputs(spec)]
    _check_outputs(outs, inputs, force)
    drawn = load_space(spec, space, allow_outside_imports) if spec is not None else None
    if drawn is not None:
        _check_outputs(outs, [*inputs, *_spec_inputs(None, drawn)], force)
    rep = build_report(db, analysis, bootstrap=bootstrap, seed=seed)
    if drawn is not None and drawn.spec_hash != rep.spec_hash:
        raise NflcError(f"--spec {spec}: space '{drawn.name}' is not the one {db} was trained on (its spec hash differs)",
                        hint="pass the spec file (and --space) given to 'nflc verify'")
    c, tc = rep.counts, rep.config.get("train", {})
    rule = rep.plateau
    length = (f"until converged ({rule.get('rule')} rule, window {rule.get('window')}, tol {rule.get('tol'):g}), at most "
              f"{tc.get('epochs')} epochs" if rule.get("source") == "--until-converged" else f"{tc.get('epochs')} epochs")
    judged = [a for a in rep.architectures if a.converged is not None]
    out.print(f"[bold]{rep.space}[/]: {c['finished']} of {c['registered']} architectures finished "
              f"({c['diverged']} diverged); {rep.config.get('data', {}).get('dataset')}, width "
              f"{'solved per architecture for the budget' if rep.width_solved else rep.config.get('width')}, "
              f"{length}, lr {tc.get('lr')}; losses are means of the last {rule.get('measure_window')} epochs; "
              f"training loss converged ({rule.get('rule')} rule) in {sum(bool(a.converged) for a in judged)} of {len(judged)}")
    for note in rep.notes:
        out.print(f"[yellow]note:[/] {note}")
    _print_measured_tables(rep, best_by_aspect(rep, top), top)
    if rep.nfl is not None:
        print_verdict(rep.nfl.winners, rep.nfl.pareto_front, rep.nfl.verdict, measured=True, notes=rep.nfl.notes)
    if json_path is not None:
        write_text(json_path, json.dumps(to_json_dict(rep), indent=1))
        out.print(f"wrote {json_path}")
    if plot is not None:
        for path in write_plots(rep, plot):
            out.print(f"wrote {path}")
    if html is not None:
        from nflc.pages import write as write_page  # lazy: loads numpy
        from nflc.pages.report import report_page  # lazy: loads numpy and scipy

        size = write_page(report_page(rep, drawn, seed=seed), html)
        out.print(f"wrote {html} ({size / 2**20:.1f} MiB, opens offline)", markup=False)


def _print_measured_tables(rep: Any, best: dict[str, list[Any]], top: int) -> None:
    """``nflc report``'s tables: the best by each aspect, and the taus with topology and
    with the predictions."""
    from nflc.analysis.report import ASPECTS  # lazy: loads numpy and scipy

    if best[ASPECTS[0]] and top > 0:
        table = Table(title=f"measured: the best {top} by each aspect", title_justify="left")
        table.add_column("best in")
        id_column(table)
        for col in ("P", "mean depth", "train loss", "epochs to threshold", "test - train loss", "test acc",
                    "log-loss slope / epoch"):
            table.add_column(col, justify="right")
        for asp in ASPECTS:
            for a in best[asp]:
                loss = (_fmt(a.expressivity) + ("" if a.converged else " (not converged)")
                        + (" (never left chance)" if a.left_chance is False else ""))
                table.add_row(asp, a.id, str(a.paths), _fmt(a.mean_depth), "diverged" if a.diverged else loss,
                              "never" if a.convergence is None else str(a.convergence),
                              "diverged" if a.diverged else _fmt(a.generalization), _fmt(a.test_acc),
                              "-" if a.final_slope is None else f"{a.final_slope:.2e}")
        print_table(table)
    if rep.measured_vs_topology:
        kt = Table(title="Kendall tau of each measured quantity with topology (paper Fig. 3)", title_justify="left")
        for col in ("aspect", "measured as", "tau with P", "paper", "tau with mean depth", "paper"):
            kt.add_column(col)
        for asp in ASPECTS:
            k, p = rep.measured_vs_topology[asp], rep.paper_fig3[asp]
            kt.add_row(asp, rep.measured_as[asp].split(" (")[0], _fmt(k["paths"].tau) if k["paths"].tau is not None else "n/a",
                       _fmt(p["paths"]) if p["paths"] is not None else "-",
                       _fmt(k["mean_depth"].tau) if k["mean_depth"].tau is not None else "n/a", _fmt(p["mean_depth"]))
        out.print(kt)
    if rep.predicted_vs_measured:
        pt = Table(title=f"Kendall tau of each predicted score with its measured aspect (both higher = better; "
                         f"{(rep.analysis or {}).get('matched')} architectures)", title_justify="left")
        for col in ("aspect", "tau", "95% CI (bootstrap)", "p-value"):
            pt.add_column(col)
        for asp in ASPECTS:
            t = rep.predicted_vs_measured[asp]
            pt.add_row(asp, "n/a" if t.tau is None else f"{t.tau:.3f}",
                       "-" if t.ci_low is None else f"[{t.ci_low:.3f}, {t.ci_high:.3f}]",
                       "-" if t.p_value is None else f"{t.p_value:.2g}")
        out.print(pt)


def main() -> None:
    # typer/click report their own usage errors with exit code 2 already

    try:
        app()
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own handler (while printing, exiting): a message and
        # exit 130, never a traceback
        _say_interrupted("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        # the command has finished: a late Ctrl-C (atexit handlers, interpreter shutdown)
        # has nothing left to interrupt
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise


if __name__ == "__main__":
    main()
