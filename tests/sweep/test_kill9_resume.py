"""A sweep killed with SIGKILL in a real process resumes to the same results as an
uninterrupted run, and leaves no temporary file behind (issue 21)."""
import time

import torch

from spdy.sweep import run_sweep
from spdy.sweep.state import level_paths, read_tensors
from tests.faults import kill9, spawn

VOLATILE = {"seconds"}

CHILD = """
    import sys, torch
    torch.set_num_threads(1)
    from spdy.sweep import SweepConfig, run_sweep
    cfg = SweepConfig.from_json(__import__("json").loads(sys.argv[2]))
    print("start", flush=True)
    run_sweep(cfg, sys.argv[1], progress=False)
"""


def _levels(result):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in result.levels]


def test_kill9_mid_sweep_resumes_to_the_uninterrupted_result(tmp_path, small_cfg):
    import json
    cfg = small_cfg.replace(levels=6)
    out = tmp_path / "killed"
    child = spawn(CHILD, out, json.dumps(cfg.to_json()))
    first = level_paths(out, 1)[1]
    deadline = time.monotonic() + 120
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert child.poll() is None, child.stderr.read()[-2000:]   # still mid-sweep
    kill9(child)
    (out / "levels" / "level_005.safetensorsab12.tmp").write_bytes(b"half")  # as a kill mid-write leaves
    resumed = run_sweep(cfg, out, progress=False)
    full = run_sweep(cfg, tmp_path / "full", progress=False)
    assert _levels(resumed) == _levels(full)
    a = read_tensors(level_paths(out, cfg.levels)[0])
    b = read_tensors(level_paths(tmp_path / "full", cfg.levels)[0])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(out.rglob("*.tmp"))
