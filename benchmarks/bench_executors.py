"""The executors of `nflc verify` side by side on one fixed sweep, in one run.

    python benchmarks/bench_executors.py [--archs 16] [--width 64] [--epochs 10] [--samples 1000] [--workers 2]

The sweep: a seeded sample of ``--archs`` nfl_h3 architectures at ``--width`` on a
stratified ``--samples`` subset of MNIST-5k, the paper's protocol. Executors:

- ``local``: one network at a time in this process (``--executor local --no-population``);
- ``population``: the family in populations in this process (``--population``);
- ``ray``: one network per Ray task on a local Ray instance of ``--workers`` workers
  (``--executor ray --no-population``), Ray's start-up included and also shown apart;
- ``ray population``: populations as Ray tasks (one group per worker).

Each writes its own results database; the table gives wall time, the speed-up over
``local`` and whether its epochs equal ``local``'s (populations: to round-off, the
largest difference). Ray's overhead per group is (Ray's time without start-up - local's
time / workers) / groups: what scheduling, shipping modules and streaming epochs cost
when workers would otherwise be perfectly parallel. On a shared 2-core machine two
workers contend with everything else; on a cluster each worker has its own cores/GPUs.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import torch

import nflc
from nflc.verify.config import make_config
from nflc.verify.run import verify

SPEC = Path(__file__).resolve().parents[1] / "specs" / "nfl_h3.nfl"


def epochs(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT arch_id, epoch, train_loss, test_loss FROM epochs ORDER BY arch_id, epoch").fetchall()
    finally:
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=16)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread per worker everywhere: the comparison is of executors

    import ray

    from nflc.verify.ray_executor import RayExecutor

    space = nflc.load(SPEC)
    archs = space.sample(args.archs, seed=0)
    config = make_config(space, samples=args.samples, width=args.width, epochs=args.epochs, seed=0, device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="nflc-bench-"))
    rows = []

    def timed(name, executor=None, population=False):
        db = tmp / f"{name.replace(' ', '_')}.sqlite"
        t0 = time.perf_counter()
        verify(space, archs, config, db, population=population, executor=executor,
               group_size=max(1, -(-len(archs) // args.workers)) if population else None)
        return name, time.perf_counter() - t0, db

    rows.append(timed("local"))
    rows.append(timed("population", population=True))
    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    startup = time.perf_counter() - t0
    rows.append(timed("ray", RayExecutor(workers=args.workers)))
    rows.append(timed("ray population", RayExecutor(workers=args.workers), population=True))
    ray.shutdown()

    reference = epochs(rows[0][2])
    base = rows[0][1]
    print(f"{len(archs)} nfl_h3 networks at width {args.width}, {args.samples} MNIST-5k samples, {args.epochs} epochs; "
          f"{args.workers} Ray workers, 1 torch thread each")
    print(f"{'executor':<16}{'seconds':>9}{'speed-up':>10}  epochs vs local")
    for name, seconds, db in rows:
        got = epochs(db)
        same = got == reference
        diff = max(max(abs(a[2] - b[2]), abs(a[3] - b[3])) for a, b in zip(got, reference, strict=True))
        print(f"{name:<16}{seconds:>9.1f}{base / seconds:>9.2f}x  {'identical' if same else f'max |diff| {diff:.1e}'}")
    print(f"Ray start-up (not in the rows above): {startup:.1f} s")
    ray_seconds = rows[2][1]
    overhead = (ray_seconds - base / args.workers) / len(archs)
    print(f"Ray overhead per group (one network per group): {overhead:.2f} s "
          f"= ({ray_seconds:.1f} s - {base:.1f} s / {args.workers} workers) / {len(archs)} groups")


if __name__ == "__main__":
    main()
