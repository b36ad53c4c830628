"""solve-sparsity: the per-layer profile that meets the time budget with the least loss.

The search itself is a method of spdy.passes.search_methods (SPDY Algorithm 4, its
baselines uniform and GMP, the dp-only ablation, or any registered one); this pass builds
the problem it solves: the latency table, the budget, the error model's levels and the
loss of a profile, which is the model stitched from the reconstruction database run on the
calibration set (cross-entropy with labels; KL to the dense outputs without).
The budget is base/speedup - fixed (DESIGN 4.2), scaled by `budget_scale` when
verify-speedup found the artifact slower than predicted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spdy.formats import DENSE, entry, get as get_format
from spdy.ir.quant import set_quant
from spdy.ir.tensors import get_tensor, set_tensor
from spdy.passes.algo.dp import budget_for
from spdy.passes.algo.error_levels import effective_levels
from spdy.passes.algo.grid import level_index
from spdy.passes.algo.insitu_calibration import predicted_time as profile_time
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.passes.search_methods import METHODS, SearchProblem, get_method  # noqa: F401  (METHODS: the CLI's choices)


class Stitcher:
    """Evaluates the calibration loss of a profile by swapping reconstructed weights in place.

    An int8 option also switches the layer's stub on (spdy/ir/quant.py), so the loss sees its
    activation quantization as the artifact will run it, not just its rounded weights.
    Loaded (layer, option) weights are cached so each is read from disk once; the graph is
    never re-traced between evaluations.
    """

    def __init__(self, gm, table, layers, db, calib, act_quant=None):
        self.gm, self.table, self.db, self.calib = gm, table, db, calib
        self.layers = [layers[n] for n in table.layers]
        self.paths = [l.weight for l in self.layers]
        self.act_quant = act_quant or {}
        self.dense = [get_tensor(gm, p).detach().clone() for p in self.paths]
        self.cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        with torch.no_grad():
            self.targets = [self._forward(b) for b in calib.inputs]

    def _forward(self, batch):
        return forward_first(self.gm, batch)

    def option(self, l: int, o: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, int8 weight scales or None) of layer l under option o."""
        opt = self.table.options[o]
        if opt.format == DENSE:
            return self.dense[l], None
        key = (l, o)
        if key not in self.cache:
            name = self.table.layers[l]
            _, w = self.db.get(name, opt.bp, opt.format)
            scale = self.db.get_scale(name, opt.bp, opt.format) if get_format(opt.format).int8 else None
            self.cache[key] = (w.to(self.dense[l].dtype), scale)
        return self.cache[key]

    def weight(self, l: int, o: int) -> torch.Tensor:
        return self.option(l, o)[0]

    def stored(self, l: int, o: int) -> dict:
        """What apply-profile writes for layer l under option o: mask, weight[, scale, act]."""
        opt = self.table.options[o]
        name = self.table.layers[l]
        mask, w = self.db.get(name, opt.bp, opt.format)
        out = {"mask": mask, "weight": w}
        if get_format(opt.format).int8:
            out.update(scale=self.db.get_scale(name, opt.bp, opt.format), act=self.act_quant[name])
        return out

    def apply(self, choice) -> None:
        for l, o in enumerate(choice):
            w, scale = self.option(l, o)
            set_tensor(self.gm, self.paths[l], w)
            if scale is not None:
                set_quant(self.gm, self.layers[l], self.act_quant[self.layers[l].qualname], scale)

    def restore(self) -> None:
        for l, (p, w) in enumerate(zip(self.paths, self.dense)):
            set_tensor(self.gm, p, w)
            if self.act_quant:
                set_quant(self.gm, self.layers[l], None)

    def loss(self, choice, batches: list[int] | None = None) -> float:
        """Mean calibration loss of a profile, over all batches or the given batch indices."""
        self.apply(choice)
        total, n = 0.0, 0
        with torch.no_grad():
            for b in (range(len(self.calib.inputs)) if batches is None else batches):
                s, k = batch_loss(self._forward(self.calib.inputs[b]), self.targets[b], self.calib, b)
                total, n = total + float(s), n + k
        self.restore()
        return total / max(n, 1)

    def subset(self, samples: int) -> list[int] | None:
        """Batch indices holding about `samples` samples, spread over the set (None: all)."""
        sizes = [_batch_size(b) for b in self.calib.inputs]
        if samples <= 0 or samples >= sum(sizes):
            return None
        per = max(1, round(len(sizes) * samples / sum(sizes)))
        return sorted({int(i) for i in np.linspace(0, len(sizes) - 1, per).round()})


def _batch_size(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return _batch_size(first)


def forward_first(gm, batch):
    """The graph's first output for one calibration batch (a tensor or a tuple of inputs)."""
    args = batch if isinstance(batch, (tuple, list)) else (batch,)
    out = gm(*args)
    return out[0] if isinstance(out, (tuple, list)) else out


def batch_loss(out, target, calib, b: int) -> tuple[torch.Tensor, int]:
    """(summed loss, count) of one batch: cross-entropy with labels, else KL to the dense output."""
    if calib.has_labels:
        return (F.cross_entropy(out.flatten(0, -2) if out.dim() > 2 else out, calib.labels[b].flatten(),
                                reduction="sum"), calib.labels[b].numel())
    logp, logq = (F.log_softmax(t.flatten(0, -2).float(), -1) for t in (target, out))
    return F.kl_div(logq, logp, log_target=True, reduction="sum"), logp.shape[0]


def profile_from_choice(table, choice) -> dict:
    prof = {name: entry(table.options[o].format, table.options[o].sparsity) for name, o in zip(table.layers, choice)}
    for name in table.frozen:
        prof[name] = entry(DENSE, 0.0)
    return prof


def option_errors(table, db, weight_sq: dict, act_err: dict) -> np.ndarray:
    """[L, S] layer errors from the reconstruction database (nan where unknown); an int8
    option adds its activation noise: the input's quantization MSE per element times the
    squared weight norm it meets (white noise through W: E||e W^T||^2 = mse * ||W||_F^2, the
    norm scaled by the option's density). weight_sq: {layer: ||W_dense||_F^2}."""
    E = np.full(table.times.shape, np.nan)
    E[:, 0] = 0.0
    for r, name in enumerate(table.layers):
        per_fmt = {}
        for j, o in enumerate(table.options):
            if o.format == DENSE or not np.isfinite(table.times[r, j]):
                continue
            if o.format not in per_fmt:
                try:
                    per_fmt[o.format] = db.errors(name, o.format)
                except (KeyError, ValueError):
                    per_fmt[o.format] = {}
            e = per_fmt[o.format].get(o.bp)
            if e is None:
                continue
            if get_format(o.format).int8:
                e += act_err.get(name, 0.0) * weight_sq[name] * (1.0 - o.sparsity)
            E[r, j] = e
    return E


@register
@dataclass(frozen=True)
class SolveSparsityPass(Pass):
    name = "solve-sparsity"
    requires = ("latency_table", "recon_db", "calib")
    provides = ("profile", "calib_targets", "choice", "profile_weights", "predicted_speedup", "calib_loss")
    method: str = "spdy"
    seed: int = 0
    n_random: int = 100
    n_local: int = 100
    max_evals: int = 0            # 0 = no cap
    buckets: int = 10000
    search_samples: int = 128     # the search compares profiles on this many samples (0: all) ...
    confirm: int = 4              # ... and its best `confirm` profiles are compared again on all
    patience: int = 25            # tries without improvement that end a step size of the local search

    def run(self, gm, ctx) -> PassResult:
        method = get_method(self.method)
        table = ctx.need("latency_table")
        layers = {l.qualname: l for l in ctx.need("layers")}
        scale = ctx.artifacts.get("budget_scale", 1.0)
        budget = budget_for(table.base, table.fixed, ctx.options.speedup) * scale
        lv = level_index(table.options)
        db = ctx.need("recon_db")
        n_levels = int(lv.max()) + 1
        lv_model = self._model_levels(gm, table, layers, db, ctx.artifacts.get("act_quant_error") or {}, lv, n_levels)
        stats = {"method": self.method, "budget_ms": round(budget * 1e3, 4), "budget_scale": round(scale, 4)}
        calib = ctx.need("calib")
        stitcher = Stitcher(gm, table, layers, db, calib, ctx.artifacts.get("act_quant"))
        progress = ctx.progress
        problem = SearchProblem(
            times=table.times, budget=budget, base=table.base, fixed=table.fixed, levels=lv, model_levels=lv_model,
            n_levels=n_levels, sparsities=sorted({o.sparsity for o in table.options}),
            weights={n: get_tensor(gm, layers[n].weight) for n in table.layers}, loss=stitcher.loss,
            subset=stitcher.subset, n_batches=len(calib.inputs),
            progress=(lambda s, n, b: progress("solve-sparsity", s, n)) if progress else None)
        result = method(problem, self)
        choice = result.choice
        stats.update(result.stats)
        loss = stitcher.loss(choice)
        ctx.artifacts["calib_targets"] = stitcher.targets  # the dense outputs, for global-adaprune
        predicted_time = profile_time(table.times, choice, table.fixed)
        ctx.artifacts["profile"] = profile_from_choice(table, choice)
        ctx.artifacts["choice"] = [int(j) for j in choice]
        ctx.artifacts["profile_weights"] = {
            name: stitcher.stored(r, o) for r, (name, o) in enumerate(zip(table.layers, choice))
            if table.options[o].format != DENSE}
        ctx.artifacts["predicted_speedup"] = table.base / predicted_time
        ctx.artifacts["calib_loss"] = loss
        stats.update(calib_loss=float(f"{loss:.6g}"), predicted_ms=round(predicted_time * 1e3, 4),
                     predicted_speedup=round(table.base / predicted_time, 4))
        return PassResult(gm, False, stats)

    @staticmethod
    def _model_levels(gm, table, layers, db, act_err, lv, n_levels):
        """Level index per (layer, option) for the error model: raw for fp32 sparsity levels,
        effective (algo/error_levels.py) for int8 options, which have no index of their own."""
        if not any(get_format(o.format).int8 for o in table.options):
            return lv
        weight_sq = {n: float(get_tensor(gm, layers[n].weight).detach().double().pow(2).sum()) for n in table.layers}
        fp32_sparse = np.array([get_format(o.format).sparse and not get_format(o.format).int8 for o in table.options])
        ref = fp32_sparse if fp32_sparse.any() else np.array([get_format(o.format).sparse for o in table.options])
        return effective_levels(lv, option_errors(table, db, weight_sq, act_err), ref, n_levels)
