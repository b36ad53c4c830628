"""build-database: masks and re-fitted weights for every (layer, format, level) of the table.

Layer inputs are collected on the dense graph over the calibration set (an fx Interpreter
accumulates H = X^T X / n at every prunable layer), then each layer is reconstructed level by
level with progressive masks (spdy.passes.algo.reconstruct) and stored in the reconstruction
database: one safetensors file per (layer, level), keyed by the dense weights, method, format
and calibration set, so the build is incremental and resumes after an interrupt.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from spdy.formats import DENSE
from spdy.ir.ops import CONV2D, LINEAR
from spdy.ir.tensors import get_tensor
from spdy.passes.algo.calib import check_finite_weights, collect_calibration
from spdy.passes.algo.grid import level_bp
from spdy.passes.algo.reconstruct import ALGO_VERSION, Hessian, conv_inputs_to_X, prepare, reconstruct_levels
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.store.recon_db import ReconDatabase, hash_calibration


def layer_rows(x: torch.Tensor, node) -> torch.Tensor:
    """The GEMM rows X of a layer's input ([n, K]; im2col patches for a conv)."""
    if node.target is LINEAR:
        return x.reshape(-1, x.shape[-1])
    w = node.args[1]
    stride, padding, dilation = node.args[4], node.args[5], node.args[6]
    top, left, bottom, right = padding
    x = F.pad(x, (left, right, top, bottom))
    kshape = w.meta["tensor_meta"].shape[2:] if "tensor_meta" in w.meta else None
    return conv_inputs_to_X(x, tuple(kshape), stride=tuple(stride), padding=0, dilation=tuple(dilation))


class _Collector(torch.fx.Interpreter):
    """Runs the graph and feeds each watched layer's input rows into its Hessian."""

    def __init__(self, gm, watched: dict):
        super().__init__(gm)
        self.watched = watched  # node name -> Hessian

    def call_function(self, target, args, kwargs):
        node = self.current_node  # set by Interpreter.run_node
        if target in (CONV2D, LINEAR) and node.name in self.watched:
            self.watched[node.name].add(layer_rows(args[0].detach().float(), node).double())
        return super().call_function(target, args, kwargs)

    def run_node(self, n):
        self.current_node = n
        return super().run_node(n)


def collect_hessians(gm, calib_inputs, layers) -> dict:
    watched = {}
    for layer in layers:
        k = 1
        for d in layer.weight_shape[1:]:
            k *= d
        watched[layer.node] = Hessian(k)
    col = _Collector(gm, watched)
    with torch.no_grad():
        for batch in calib_inputs:
            args = batch if isinstance(batch, (tuple, list)) else (batch,)
            col.run(*args)
    return {l.qualname: watched[l.node] for l in layers}


def default_db_dir() -> Path:
    from spdy.cache import cache_root
    return cache_root() / "recon"


@register
@dataclass(frozen=True)
class BuildDatabasePass(Pass):
    name = "build-database"
    requires = ("latency_table",)
    provides = ("recon_db", "calib")
    method: str = "obs"
    n_samples: int = 1024
    batch_size: int = 64
    damp: float = 0.01
    refine_iters: int = 5
    threads: int = 1              # per-layer solves are small: 1 thread beats 2 on a busy machine

    def run(self, gm, ctx) -> PassResult:
        table = ctx.need("latency_table")
        calib = ctx.artifacts.get("calib") or collect_calibration(
            ctx.options.get("calib"), ctx.inputs.args if ctx.inputs.args else ctx.inputs.kwargs,
            n_samples=self.n_samples, batch_size=self.batch_size)
        ctx.artifacts["calib"] = calib
        layers = {l.qualname: l for l in ctx.need("layers")}
        rows = [layers[n] for n in table.layers]
        check_finite_weights({l.qualname: get_tensor(gm, l.weight) for l in rows})
        calib_hash = hash_calibration(calib.inputs)
        db = ReconDatabase(ctx.options.get("recon_dir") or default_db_dir())
        hessians = collect_hessians(gm, calib.inputs, rows)
        built = skipped = 0
        progress = ctx.options.get("progress")
        formats = sorted({o.format for o in table.options if o.format != DENSE})
        for i, layer in enumerate(rows):
            w = get_tensor(gm, layer.weight).detach().float()
            prepared = None  # factor H once per layer, only if some level is missing
            for fmt in formats:
                fmt_opts = [o for o in table.options if o.format == fmt]
                db.bind(layer.qualname, w, method=self.method, fmt=fmt, calib=calib_hash,
                        options={"damp": self.damp, "refine_iters": self.refine_iters}, algo_version=ALGO_VERSION)
                missing = db.missing(layer.qualname, [o.bp for o in fmt_opts], fmt)
                skipped += len(fmt_opts) - len(missing)
                if not missing:
                    continue
                sparsities = [0.0] + [o.sparsity for o in fmt_opts]
                if prepared is None:
                    prepared = prepare(hessians[layer.qualname], self.damp, threads=self.threads)
                for res in reconstruct_levels(w, prepared, sparsities, fmt, self.method, damp=self.damp,
                                              refine_iters=self.refine_iters, threads=self.threads):
                    if res.level == 0:
                        continue
                    bp = level_bp(sparsities[res.level])
                    if bp in missing:
                        db.put(layer.qualname, bp, res.mask, res.weight, fmt, err=res.err)
                        built += 1
            if progress:
                progress("build-database", i + 1, len(rows))
        ctx.artifacts["recon_db"] = db
        kept = db.prune()   # other models' entries stay until the directory outgrows its cap
        return PassResult(gm, False, {"layers": len(rows), "built": built, "reused": skipped,
                                      "db_mb": round(kept["size_bytes"] / 2**20, 1),
                                      "dropped_entries": kept["dropped"],
                                      "samples": calib.n_samples, "labels": calib.has_labels,
                                      "db": str(db.root)})
