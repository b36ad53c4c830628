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
and calibration set, so the build is incremental and resumes after an interrupt. Only layers
with a missing level get a Hessian, and those are built side by side on worker processes
(spdy.passes.algo.layer_levels); this process alone writes the database.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from spdy.formats import DENSE, get as get_format
from spdy.ir.tensors import get_tensor
from spdy.passes.algo.calib import check_finite_weights, collect_calibration
from spdy.passes.algo.layer_levels import (LayerJob, build_layer_levels, default_workers, format_levels,
                                             map_layers, processes_for)
from spdy.passes.algo.reconstruct import ALGO_VERSION, Hessian
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
    workers: int = 0              # layers built side by side in worker processes (0: the compile's
                                  # threads for a build big enough to pay for starting them, else 1)

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
        todo_of, skipped = {}, 0
        for layer in rows:
            w = get_tensor(gm, layer.weight).detach().float()
            r = table.layers.index(layer.qualname)
            formats = sorted({o.format for j, o in enumerate(table.options)
                              if o.format != DENSE and np.isfinite(table.times[r, j])})
            todo = []
            for fmt in formats:
                fmt_opts = sorted((o for o in table.options if o.format == fmt), key=lambda o: o.sparsity)
                db.bind(layer.qualname, w, method=self.method, fmt=fmt, calib=calib_hash,
                        options={"damp": self.damp, "refine_iters": self.refine_iters,
                                 **({"quant": QUANT_METHOD} if get_format(fmt).int8 else {})},
                        algo_version=ALGO_VERSION)
                missing = db.missing(layer.qualname, [o.bp for o in fmt_opts], fmt)
                skipped += len(fmt_opts) - len(missing)
                if missing:
                    todo.append(format_levels(fmt, [o.sparsity for o in fmt_opts], missing))
            if todo:
                todo_of[layer.qualname] = (w, tuple(todo))
        # Hessians only for the layers with levels to build: a warm compile runs no calibration pass here
        need = [l for l in rows if l.qualname in todo_of]
        hessians = collect_hessians(gm, calib.inputs, need) if need else {}
        jobs = [LayerJob(l.qualname, todo_of[l.qualname][0], hessians.pop(l.qualname), todo_of[l.qualname][1])
                for l in need]
        workers = self.workers or default_workers(jobs, ctx.num_threads or 1)
        build = partial(build_layer_levels, method=self.method, damp=self.damp,
                        refine_iters=self.refine_iters, threads=self.threads)
        built = 0
        progress = ctx.progress
        for i, (job, levels) in enumerate(map_layers(build, jobs, workers, self.threads)):
            db.put_many(job.name, [(lv.bp, lv.mask, lv.weight, lv.fmt, lv.err, lv.scale) for lv in levels])
            built += len(levels)
            if progress:
                progress("build-database", i + 1, len(jobs))
        ctx.artifacts["recon_db"] = db
        kept = db.prune()   # other models' entries stay until the directory outgrows its cap
        return PassResult(gm, False, {"layers": len(rows), "built": built, "reused": skipped,
                                      "workers": processes_for(len(jobs), workers),
                                      "db_mb": round(kept["size_bytes"] / 2**20, 1),
                                      "dropped_entries": kept["dropped"],
                                      "samples": calib.n_samples, "labels": calib.has_labels,
                                      "db": str(db.root)})
