"""An interrupted sweep resumes from its last finished level and matches an uninterrupted run."""
import json

import pytest
import torch

from spdy.sweep import run_sweep
from spdy.sweep.state import level_paths, read_tensors

VOLATILE = {"seconds"}


def _levels(result):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in result.levels]


@pytest.mark.parametrize("retrain,criterion", [("rewind", "magnitude-global"),
                                               ("reinit", "random"),
                                               ("finetune", "gradient")])
def test_resume_equals_uninterrupted(tmp_path, small_cfg, retrain, criterion):
    cfg = small_cfg.replace(retrain=retrain, criterion=criterion)
    full = run_sweep(cfg, tmp_path / "full", progress=False)
    part = run_sweep(cfg, tmp_path / "part", progress=False, stop_after_level=1)
    assert len(part.levels) == 2
    resumed = run_sweep(cfg, tmp_path / "part", progress=False)
    assert _levels(resumed) == _levels(full)
    a = read_tensors(level_paths(tmp_path / "full", cfg.levels)[0])
    b = read_tensors(level_paths(tmp_path / "part", cfg.levels)[0])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_more_levels_and_outputs(tmp_path, small_cfg):
    out = tmp_path / "o"
    run_sweep(small_cfg.replace(levels=1), out, progress=False)
    r = run_sweep(small_cfg, out, progress=False)  # extend 1 -> 3 levels
    assert [x["level"] for x in r.levels] == [0, 1, 2, 3]
    data = json.loads((out / "results.json").read_text())
    assert len(data["levels"]) == 4 and data["best"]["test_acc"] == r.best["test_acc"]
    assert (out / "accuracy.png").stat().st_size > 1000
    assert (out / "learning_distance.png").stat().st_size > 1000
    labels = read_tensors(out / "labels.safetensors")
    changed = int((labels["noisy"] != labels["true"]).sum())
    assert changed > 0.18 * len(labels["true"])
    sp = [x["sparsity"] for x in r.levels]
    assert sp == sorted(sp) and abs(sp[1] - 0.2) < 1e-3


def test_resume_refuses_other_config(tmp_path, small_cfg):
    from spdy.sweep import SweepConfigError

    run_sweep(small_cfg.replace(levels=0), tmp_path, progress=False)
    with pytest.raises(SweepConfigError, match="different configuration"):
        run_sweep(small_cfg.replace(levels=0, seed=99), tmp_path, progress=False)


def test_masks_shrink_across_saved_levels(tmp_path, small_cfg):
    run_sweep(small_cfg, tmp_path, progress=False)
    prev = None
    for lv in range(small_cfg.levels + 1):
        t = read_tensors(level_paths(tmp_path, lv)[0])
        masks = {k: v for k, v in t.items() if k.endswith("weight_mask")}
        if prev is not None:
            assert all(torch.all(masks[k] <= prev[k]) for k in masks)
        prev = masks
