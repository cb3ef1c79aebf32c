"""The prepared GPU check runs end to end (on the CPU, tiny), so a session that has a
device spends its minutes on measuring, not on fixing the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--scale", "0.05",
           "--full-archs", "9", "--out", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    assert out["equivalence"]["max_loss_diff"] < 1e-4 and out["equivalence"]["same_convergence_epochs"]
    assert out["speedup"]["archs"] == 5 and out["speedup"]["population_s"] > 0
    assert out["full_scale"]["archs"] == 9 and out["full_scale"]["diverged"] == 0
    assert out["full_scale"]["batched"] + out["full_scale"]["alone"] == 9
