"""How quickly nflc answers where a slow path once made it crawl: the times the test suite
used to assert, measured here instead (tests assert behaviour, never wall-clock time).

    python benchmarks/bench_responsiveness.py

It prints, each measured in a fresh process or loop on this machine:

- ``nflc count specs/darts.nfl``: the DARTS space's 1,076,746,950,455,072,400 architectures
  are a product of per-cell counts, never an enumeration (goal: a few seconds, interpreter
  start included; tests/frontend/test_darts.py checks the number);
- ``nflc count specs/nb101.nfl``: NAS-Bench-101's 423,624 unique graphs (goal: well under a
  minute; tests/frontend/test_nb101.py checks the number);
- 40,000 warnings added to a :class:`nflc.errors.DiagnosticBag` (plus a duplicate): each
  add must be constant time (a list scan per add took minutes; goal: well under 5 s;
  tests/frontend/test_issue11_regressions.py checks what is kept);
- ``nflc analyze`` on 1,048,576 MLP cells: seconds until its first progress line, interpreter
  start and imports included (about 0.5 s on an idle machine; goal: under 5 s;
  tests/analysis/test_streaming.py checks that the line comes before the grouping ends).
- issue #28's hangs, each once over 20 s of CPU: a 6-node node cell under `require
  in_degree <= 2` (2^15 edge sets, not 2.6M choices; tests/lang28/test_node_counts.py checks
  the count), a numeric choice of 2000 values under `unique` (each distinct filter effect
  walked once), and ``nflc list --rejected`` on DARTS (no filter: nothing to walk).

It asserts nothing; each row says the goal next to the measured time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

SPACE_1M = """
space cells1m {
    input   [16]
    classes 4
    width   16
    bias    false
    cell {
        nodes 5
        edge * : zero | skip | linear >> relu as linear | linear as lin
    }
    network = linear(width) >> relu >> cell >> linear(classes)
}
"""


def count(spec: str, expected: str) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nflc.cli", "count", str(ROOT / "specs" / spec)],
                         capture_output=True, text=True, env=ONE_THREAD, check=True).stdout
    took = time.perf_counter() - t0
    assert out.strip().splitlines()[-1] == expected, out
    return took


def diagnostics(n: int = 40_000) -> float:
    from nflc.errors import Diagnostic, DiagnosticBag, Span

    bag = DiagnosticBag()
    t0 = time.perf_counter()
    for i in range(n):
        bag.warning(f"constant 'c{i}' is defined but never used", Span("f", i + 1, 1))
    bag.add(Diagnostic("warning", "constant 'c0' is defined but never used", Span("f", 1, 1)))
    took = time.perf_counter() - t0
    assert len(bag.warnings) == n
    return took


def first_progress_line() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "cells1m.nfl"
        spec.write_text(SPACE_1M)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "nflc.cli", "analyze", str(spec), "--dataset", "none",
                                 "--samples", "4", "--measure", "none"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline().strip()
            took = time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()
    assert first == "grouping: 1,048,576 architectures", first
    return took


NODE6 = """space s { input [3, 8, 8] classes 3 bias false
    op c3 = conv2d(3) >> batchnorm >> relu
    op c1 = conv2d(1) >> batchnorm >> relu
    op mp = max_pool(3)
    cell m { nodes 6 channels 4 edge * : zero | skip  node * : c3 | c1 | mp }
    network = conv2d(3, 4) >> m >> global_avg_pool >> linear(classes)
    require in_degree <= 2 }"""
WIDTHS = """space s { input [12] classes 3 bias false w in {%s}
    cell { nodes 3  edge * : zero | skip | linear >> relu as lin }
    network = linear(w) >> relu >> cell >> linear(classes)
    unique }""" % ", ".join(map(str, range(1, 2001)))


def count_loaded(text: str, expected: int) -> float:
    import nflc

    t0 = time.perf_counter()
    n = nflc.loads(text).count()
    took = time.perf_counter() - t0
    assert n == expected, n
    return took


def rejected_darts() -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "nflc.cli", "list", str(ROOT / "specs" / "darts.nfl"), "--rejected",
                          "--limit", "5"], capture_output=True, text=True, env=ONE_THREAD, check=True).stdout
    assert "no rejected architectures" in out, out
    return time.perf_counter() - t0


def main() -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, 1-minute load {load:.1f}")
    rows = [("nflc count specs/darts.nfl (process)", count("darts.nfl", "1076746950455072400"), "a few s"),
            ("nflc count specs/nb101.nfl (process)", count("nb101.nfl", "423624"), "< 60 s"),
            ("40,000 diagnostics + a duplicate", diagnostics(), "< 5 s"),
            ("first progress line, 1,048,576 architectures (process)", first_progress_line(), "< 5 s"),
            ("6-node node cell, require in_degree <= 2", count_loaded(NODE6, 1524906), "< 5 s"),
            ("2000 numeric values under unique (load + count)", count_loaded(WIDTHS, 30000), "< 10 s"),
            ("nflc list specs/darts.nfl --rejected (process)", rejected_darts(), "a few s")]
    width = max(len(r[0]) for r in rows)
    for name, seconds, goal in rows:
        print(f"{name:<{width}}  {seconds:7.2f} s   (goal {goal})")


if __name__ == "__main__":
    main()
