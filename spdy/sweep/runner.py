"""run_sweep: dense training, then prune -> retrain -> measure, one level at a time.

Reproducibility: every random choice of level L (batch order, random scores, reinit
weights, gradient samples) draws from generators seeded by (config.seed, L, purpose),
never from global RNG state carried between levels. Level L's result is therefore a
function of the saved state of level L-1 alone, which is what lets an interrupted sweep
resume from its last finished level and still match an uninterrupted run exactly.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from spdy.sweep import masks as M
from spdy.sweep import state as S
from spdy.sweep.config import SweepConfig, SweepConfigError, validate
from spdy.sweep.datasets import SHAPES, Data, load_dataset
from spdy.sweep.metrics import learning_distance, sparsity
from spdy.sweep.models import build_model, prunable_modules
from spdy.sweep.noise import add_label_noise
from spdy.sweep.summary import summarize
from spdy.sweep.train import evaluate, gradient_of_loss, train

_PURPOSE = {"init": 1, "shuffle": 2, "random": 3, "reinit": 4, "grad": 5}


def derived_seed(seed: int, level: int, purpose: str) -> int:
    return int(np.random.SeedSequence([seed, level, _PURPOSE[purpose]]).generate_state(1)[0])


def _gen(seed: int, level: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, level, purpose))


@dataclass
class SweepResult:
    """All finished levels (dicts as in results.json) and where the files are."""

    config: SweepConfig
    out_dir: Path
    levels: list[dict] = field(default_factory=list)

    @property
    def best(self) -> dict:
        return max(self.levels, key=lambda r: r["test_acc"])

    def to_json(self) -> dict:
        dense = self.levels[0]["test_acc"] if self.levels else None
        return {"config": self.config.to_json(), "levels": self.levels,
                "dense_test_acc": dense, "best": self.best if self.levels else None,
                "summary": summarize(self.levels)}


def _check_out_dir(cfg: SweepConfig, out: Path) -> None:
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = SweepConfig.from_json(S.read_json(cfg_path))
        if old.identity() != cfg.identity():
            raise SweepConfigError(
                f"{out} holds a sweep with a different configuration; use a new output "
                "directory (only --levels may change when resuming)"
            )
    S.write_json(cfg_path, cfg.to_json())


def _labels(cfg: SweepConfig, data: Data, out: Path) -> torch.Tensor:
    """Noisy training labels: saved on first run, reloaded (not regenerated) afterwards."""
    path = out / "labels.safetensors"
    if path.is_file():
        saved = S.read_tensors(path)
        if not torch.equal(saved["true"], data.y_train):
            raise SweepConfigError(f"{path} was made for different training data")
        return saved["noisy"]
    noisy = add_label_noise(data.y_train, cfg.noise, cfg.noise_rate, data.num_classes, cfg.seed)
    S.write_tensors(path, {"noisy": noisy, "true": data.y_train})
    return noisy


def _weights(modules) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().clone() for n, m in modules.items()}


class _Sweep:
    def __init__(self, cfg: SweepConfig, out: Path, progress: bool):
        self.cfg, self.out, self.progress = cfg, out, progress
        shape, classes = SHAPES[cfg.dataset]
        self.shape, self.classes = shape, classes
        self.model = self._fresh_model(derived_seed(cfg.seed, 0, "init"))
        self.modules = prunable_modules(self.model, cfg.exclude)
        M.attach_masks(self.modules)
        self.rewind: dict[str, torch.Tensor] | None = None

    def _fresh_model(self, seed: int):
        return build_model(self.cfg.model, self.shape, self.classes, seed)

    def load_data(self) -> None:
        self.data = load_dataset(self.cfg.dataset, self.cfg.train_subset)
        self.noisy = _labels(self.cfg, self.data, self.out)

    # -- one level ---------------------------------------------------------------
    def _train(self, level: int, epochs: int, snapshot: bool) -> None:
        cfg = self.cfg

        def on_epoch_end(e: int) -> None:
            if snapshot and e == cfg.rewind_epoch:
                self.rewind = {k: v.clone() for k, v in self.model.state_dict().items()
                               if not k.endswith(M.MASK)}

        train(self.model, self.modules, self.data.x_train, self.noisy, epochs=epochs,
              lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
              batch_size=cfg.batch_size, gen=_gen(cfg.seed, level, "shuffle"),
              progress=self.progress, desc=f"level {level}", on_epoch_end=on_epoch_end)

    def _prune(self, level: int) -> dict[str, int]:
        cfg = self.cfg
        grads = None
        if cfg.criterion == "gradient":
            grads = gradient_of_loss(self.model, self.modules, self.data.x_train, self.noisy,
                                     cfg.gradient_samples, _gen(cfg.seed, level, "grad"))
        scores = M.scores_for(cfg.criterion, self.modules, grads, _gen(cfg.seed, level, "random"))
        return M.prune_step(self.modules, scores, cfg.prune_fraction,
                            per_layer=cfg.criterion == "magnitude-layer")

    @torch.no_grad()
    def _reset_weights(self, level: int) -> None:
        """Set the kept weights where retraining starts (finetune keeps the trained ones)."""
        if self.cfg.retrain == "finetune":
            return
        if self.cfg.retrain == "rewind":
            source = self.rewind
        else:
            source = self._fresh_model(derived_seed(self.cfg.seed, level, "reinit")).state_dict()
        own = self.model.state_dict()
        for k, v in source.items():
            if not k.endswith(M.MASK):
                own[k].copy_(v)
        M.apply_masks(self.modules)

    def run_level(self, level: int) -> dict:
        t0 = time.perf_counter()
        cfg = self.cfg
        removed = {}
        if level == 0:
            epochs = cfg.epochs_dense
        else:
            removed = self._prune(level)
            self._reset_weights(level)
            epochs = cfg.epochs_per_level
        start = _weights(self.modules)
        self._train(level, epochs, snapshot=level == 0)
        masks = M.get_masks(self.modules)
        sp, kept, total = sparsity(masks)
        (tr_noisy, tr_loss), (tr_true, _) = evaluate(
            self.model, self.data.x_train, [self.noisy, self.data.y_train])
        [(te_acc, te_loss)] = evaluate(self.model, self.data.x_test, [self.data.y_test])
        return {
            "level": level, "sparsity": sp, "kept": kept, "total": total,
            "removed": sum(removed.values()), "removed_per_layer": removed,
            "layer_density": {n: float(m.mean()) for n, m in masks.items()},
            "train_acc_noisy": tr_noisy, "train_loss_noisy": tr_loss,
            "train_acc_true": tr_true, "test_acc": te_acc, "test_loss": te_loss,
            "learning_distance": learning_distance(start, _weights(self.modules), masks),
            "epochs": epochs, "seconds": time.perf_counter() - t0,
        }

    # -- checkpoints ---------------------------------------------------------------
    def save(self, level: int, record: dict) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if level == 0 and self.rewind is not None:
            tensors.update({f"rewind.{k}": v for k, v in self.rewind.items()})
        st, js = S.level_paths(self.out, level)
        S.write_tensors(st, tensors)
        S.write_json(js, record)

    def restore(self, level: int) -> None:
        st, _ = S.level_paths(self.out, level)
        saved = S.read_tensors(st)
        self.model.load_state_dict({k[6:]: v for k, v in saved.items() if k.startswith("model.")})
        if self.cfg.retrain == "rewind":
            first = saved if level == 0 else S.read_tensors(S.level_paths(self.out, 0)[0])
            self.rewind = {k[7:]: v for k, v in first.items() if k.startswith("rewind.")}


def run_sweep(config: SweepConfig, out_dir, progress: bool = True,
              stop_after_level: int | None = None) -> SweepResult:
    """Run (or resume) a sparse double descent sweep into `out_dir`; see the package doc.

    stop_after_level: stop once that level is finished (used to test resuming).
    """
    from spdy.sweep.plots import plot_all

    validate(config)
    out = Path(out_dir)
    sweep = _Sweep(config, out, progress)  # builds the model: "nothing to prune" fails here
    out.mkdir(parents=True, exist_ok=True)
    _check_out_dir(config, out)
    sweep.load_data()

    S.remove_leftovers(out)  # a kill -9 mid-write leaves a temporary file
    done = min(S.last_finished_level(out), config.levels)
    result = SweepResult(config, out)
    for lv in range(done + 1):
        result.levels.append(S.read_json(S.level_paths(out, lv)[1]))
    if done >= 0:
        sweep.restore(done)
    last = config.levels if stop_after_level is None else min(config.levels, stop_after_level)
    bar = tqdm(range(done + 1, last + 1), desc="levels", disable=not progress, unit="lvl")
    for level in bar:
        record = sweep.run_level(level)
        sweep.save(level, record)
        result.levels.append(record)
        bar.set_postfix(sparsity=f"{record['sparsity']:.3f}", test=f"{record['test_acc']:.4f}")
        S.write_json(out / "results.json", result.to_json())
    # Plots only at the end: matplotlib costs about a second per call, more than a tiny level.
    if result.levels:
        S.write_json(out / "results.json", result.to_json())
        plot_all(result.levels, out)
    return result
