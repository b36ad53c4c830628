"""Sparse double descent study tool (He et al., ICML'22): `spdy sweep` and `run_sweep`.

Train a model dense on a training set with label noise, then prune it iteratively
(20% of the remaining weights per level by default) and retrain after each level,
recording train/test accuracy and the learning distance per sparsity level, so the
four phases (light, critical, sweet, collapsed) can be seen and plotted.

    from spdy.sweep import run_sweep, preset
    result = run_sweep(preset("tiny"), "out/")
"""
from spdy.sweep.config import PRESETS, SweepConfig, SweepConfigError, preset, validate
from spdy.sweep.runner import SweepResult, run_sweep

__all__ = ["run_sweep", "SweepConfig", "SweepResult", "SweepConfigError", "PRESETS",
           "preset", "validate"]
