"""A layer's database levels are the same built here or on worker processes, in job order."""
from functools import partial

import pytest
import torch

from spdy import formats
from spdy.formats import Format
from spdy.passes.algo.grid import level_bp
from spdy.passes.algo.layer_levels import (MIN_PARALLEL_WORK, LayerJob, build_layer_levels, default_workers,
                                           format_levels, map_layers, work_of)
from spdy.passes.algo.reconstruct import Hessian

SP = (0.5, 0.75, 0.9)


def job(name, out=8, k=16, seed=0, fmts=(("bsr4x1", SP), ("bsr4x4-int8", SP), ("dense-int8", (0.0,)))):
    g = torch.Generator().manual_seed(seed)
    h = Hessian(k)
    h.add(torch.randn(64, k, generator=g))
    w = torch.randn(out, k, generator=g)
    return LayerJob(name, w, h, tuple(format_levels(f, sp, {level_bp(s) for s in sp}) for f, sp in fmts))


BUILD = partial(build_layer_levels, method="obs", damp=0.01, refine_iters=2, threads=1)


def test_only_the_missing_levels_are_built_int8_ones_with_scales():
    j = job("a", fmts=(("bsr4x1", SP), ("bsr4x4-int8", SP), ("dense-int8", (0.0,))))
    j = LayerJob(j.name, j.weight, j.hessian, (format_levels("bsr4x1", SP, {level_bp(0.75)}), *j.formats[1:]))
    levels = BUILD(j)
    assert [(lv.fmt, lv.bp) for lv in levels] == [("bsr4x1", 7500), ("bsr4x4-int8", 5000), ("bsr4x4-int8", 7500),
                                                  ("bsr4x4-int8", 9000), ("dense-int8", 0)]
    for lv in levels:
        assert (lv.scale is not None) == formats.get(lv.fmt).int8
        assert lv.weight.shape == j.weight.shape and lv.err >= 0
        assert torch.equal(lv.weight[~lv.mask], torch.zeros_like(lv.weight[~lv.mask]))
    kept = [lv.mask.float().mean().item() for lv in levels if lv.fmt == "bsr4x4-int8"]
    assert kept == sorted(kept, reverse=True)


def test_workers_give_the_same_levels_in_job_order_and_know_a_format_added_at_run_time():
    toy = Format("bsr2x1", block_rows=2)
    formats.register(toy)
    try:
        jobs = [job("a", seed=1, fmts=(("bsr2x1", SP), ("dense-int8", (0.0,)))), job("b", out=16, seed=2)]
        jobs += [job(f"c{i}", seed=10 + i) for i in range(4)]   # more jobs than the 4 in flight
        here = list(map_layers(BUILD, jobs, workers=1))
        there = list(map_layers(BUILD, jobs, workers=2))
    finally:
        formats.unregister(toy.name)
    assert [j.name for j, _ in there] == ["a", "b", "c0", "c1", "c2", "c3"]
    for (_, a), (_, b) in zip(here, there):
        assert [(x.fmt, x.bp) for x in a] == [(y.fmt, y.bp) for y in b]
        for x, y in zip(a, b):
            assert torch.equal(x.mask, y.mask) and torch.allclose(x.weight, y.weight) and x.err == pytest.approx(y.err)


def test_small_builds_stay_in_this_process():
    jobs = [job("a"), job("b")]
    assert work_of(jobs) < MIN_PARALLEL_WORK and default_workers(jobs, 2) == 1
    big = [LayerJob("c", torch.zeros(1024, 1024), None, jobs[0].formats)] * 3
    assert default_workers(big, 2) == 2 and default_workers(big, 1) == 1


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """Workers must not re-run the user's script (a spawned child would: a second compile)."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    script = tmp_path / "user_script.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_layer_levels import BUILD, job\n"
        "from spdy.passes.algo.layer_levels import map_layers\n"
        "print('RUN', flush=True)\n"
        "out = list(map_layers(BUILD, [job('a'), job('b', seed=3)], workers=2))\n"
        "print('DONE', len(out), flush=True)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["RUN", "DONE", "2"]
