"""build-database: masks and re-fitted weights for every (layer, format, level) of the table.

int8 formats (spdy/formats.py) store weights on their int8 grid with the per-channel scales:
dense-int8 is GPTQ on the dense weights; a sparse int8 level is the SparseGPT reconstruction of
its mask (blocks of that format) quantized by GPTQ with the mask held fixed (OBC's compound
compression: prune first, then quantize what is kept). Errors are measured against the dense
weights, so every option of a layer compares on one scale.

Layer inputs are collected on the dense graph over the calibration set (an fx Interpreter
accumulates H = X^T X / n at every prunable layer), then each layer is reconstructed level by
level with progressive masks (spdy.passes.algo.reconstruct) and stored in the reconstruction
database: one safetensors file per (layer, level), keyed by the dense weights, method, format
and calibration set, so the build is incremental and resumes after an interrupt.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spdy.formats import DENSE, get as get_format
from spdy.ir.tensors import get_tensor
from spdy.passes.algo.calib import check_finite_weights, collect_calibration
from spdy.passes.algo.grid import level_bp
from spdy.passes.algo.gptq import gptq_quantize
from spdy.passes.algo.quantize import weight_scales
from spdy.passes.algo.reconstruct import ALGO_VERSION, Hessian, prepare, reconstruct_levels
from spdy.passes.base import Pass, PassResult
from spdy.passes.layer_inputs import layer_rows, visit_layer_inputs
from spdy.passes.registry import register
from spdy.store.recon_db import ReconDatabase, hash_calibration


def collect_hessians(gm, calib_inputs, layers) -> dict:
    """{qualname: Hessian of the layer's GEMM rows} over the calibration inputs; a grouped
    conv gets one Hessian per group (each group's outputs see only its own input channels)."""
    hessians = {}
    for layer in layers:
        k = 1
        for d in layer.weight_shape[1:]:
            k *= d
        hessians[layer.qualname] = [Hessian(k) for _ in range(layer.groups)] if layer.groups > 1 else Hessian(k)

    def add(name, node, x):
        h = hessians[name]
        if isinstance(h, list):
            for g, xg in enumerate(x.float().chunk(len(h), dim=1)):
                h[g].add(layer_rows(xg, node).double())
        else:
            h.add(layer_rows(x.float(), node).double())
    visit_layer_inputs(gm, calib_inputs, layers, add)
    return hessians


def quantize_int8(w: torch.Tensor, prepared, keep=None, w_ref=None):
    """(weight on its int8 grid, per-channel scales, layer error vs w_ref): GPTQ with MSE scales
    weighted by diag(H); `keep` holds a sparse reconstruction's mask fixed."""
    w2 = w.reshape(w.shape[0], -1)
    scale = weight_scales(w2, "mse", H_diag=prepared.H.diagonal())
    q = gptq_quantize(w, prepared, scale, keep=keep, W_ref=w_ref)
    return q.w_deq.reshape(w.shape), scale, q.err


def quantize_grouped(w: torch.Tensor, hessians: list, damp: float, threads: int):
    """dense int8 for a grouped/depthwise conv: GPTQ per group with that group's Hessian.
    Returns (weight on its grid, per-channel scales, layer error summed over the groups)."""
    parts, scales, err = [], [], 0.0
    for g, wg in enumerate(w.chunk(len(hessians), dim=0)):
        wq, sg, e = quantize_int8(wg, prepare(hessians[g], damp, threads=threads))
        parts.append(wq)
        scales.append(sg)
        err += e
    return torch.cat(parts), torch.cat(scales), err


QUANT_METHOD = "gptq-mse-joint-refine2-v2"   # part of an int8 entry's key: a changed quantizer never reuses old weights


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
            ctx.calib_source, ctx.inputs.args if ctx.inputs.args else ctx.inputs.kwargs,
            n_samples=self.n_samples, batch_size=self.batch_size)
        ctx.artifacts["calib"] = calib
        layers = {l.qualname: l for l in ctx.need("layers")}
        rows = [layers[n] for n in table.layers]
        check_finite_weights({l.qualname: get_tensor(gm, l.weight) for l in rows})
        calib_hash = hash_calibration(calib.inputs)
        db = ReconDatabase(ctx.caches.recon_dir or default_db_dir())
        hessians = collect_hessians(gm, calib.inputs, rows)
        built = skipped = 0
        progress = ctx.progress
        for i, layer in enumerate(rows):
            w = get_tensor(gm, layer.weight).detach().float()
            prepared = None  # factor H once per layer, only if some level is missing
            r = table.layers.index(layer.qualname)
            formats = sorted({o.format for j, o in enumerate(table.options)
                              if o.format != DENSE and np.isfinite(table.times[r, j])})
            for fmt in formats:
                fmt_opts = [o for o in table.options if o.format == fmt]
                int8 = get_format(fmt).int8
                db.bind(layer.qualname, w, method=self.method, fmt=fmt, calib=calib_hash,
                        options={"damp": self.damp, "refine_iters": self.refine_iters,
                                 **({"quant": QUANT_METHOD} if int8 else {})}, algo_version=ALGO_VERSION)
                missing = db.missing(layer.qualname, [o.bp for o in fmt_opts], fmt)
                skipped += len(fmt_opts) - len(missing)
                if not missing:
                    continue
                if layer.groups > 1:   # grouped convs: dense int8 only (no sparse kernel)
                    wq, scale, err = quantize_grouped(w, hessians[layer.qualname], self.damp, self.threads)
                    db.put(layer.qualname, 0, torch.ones_like(w, dtype=torch.bool), wq, fmt, err=err, scale=scale)
                    built += 1
                    continue
                if prepared is None:
                    prepared = prepare(hessians[layer.qualname], self.damp, threads=self.threads)
                if not get_format(fmt).sparse:   # dense int8
                    wq, scale, err = quantize_int8(w, prepared)
                    db.put(layer.qualname, 0, torch.ones_like(w, dtype=torch.bool), wq, fmt, err=err, scale=scale)
                    built += 1
                    continue
                sparsities = [0.0] + [o.sparsity for o in fmt_opts]
                for res in reconstruct_levels(w, prepared, sparsities, fmt, self.method, damp=self.damp,
                                              refine_iters=self.refine_iters, threads=self.threads):
                    if res.level == 0:
                        continue
                    bp = level_bp(sparsities[res.level])
                    if bp not in missing:
                        continue
                    if int8:
                        wq, scale, err = quantize_int8(res.weight, prepared, keep=res.mask, w_ref=w)
                        db.put(layer.qualname, bp, res.mask, wq, fmt, err=err, scale=scale)
                    else:
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
