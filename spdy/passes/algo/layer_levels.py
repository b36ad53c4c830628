"""Every missing database level of one layer, and a map of that over layers on worker processes.

A layer's levels depend only on its weight and its Hessian: no graph, no other layer. So the
database build hands whole layers to worker processes, one torch thread each. Why processes:
the per-level work is column sweeps (SparseGPT's OBS, GPTQ and its refinement) of many small
torch ops, which neither a second torch thread nor a Python thread (the GIL) speeds up; on
MiniLM-L6's 36 layers a cold build took 681 s on one core while the other sat idle.

Workers are forked, not spawned: a spawned child re-runs the user's main script, so a script
that calls spdy.compile without an `if __name__ == "__main__":` guard would compile again in
every worker. A forked child must not enter an OpenMP parallel region the parent's pool owned
(GNU libgomp can hang there), so each worker runs torch on one thread from its start, as
PyTorch's DataLoader workers do. Results come back to the parent, which alone writes the
database, in layer order. Without fork (Windows) the layers are built here, one by one.
"""
from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import torch

from spdy.formats import get as get_format
from spdy.passes.algo.gptq import gptq_quantize
from spdy.passes.algo.grid import level_bp
from spdy.passes.algo.quantize import weight_scales
from spdy.passes.algo.reconstruct import Hessian, prepare, reconstruct_levels


@dataclass(frozen=True)
class FormatLevels:
    fmt: str
    sparsities: tuple[float, ...]    # every level of the format in the table, ascending (the chain)
    missing: frozenset[int]          # the level_bp values to build (the others are in the database)


def format_levels(fmt: str, sparsities, missing) -> FormatLevels:
    return FormatLevels(fmt, tuple(sparsities), frozenset(missing))


@dataclass(frozen=True)
class LayerJob:
    name: str
    weight: torch.Tensor                    # dense fp32 weight
    hessian: Hessian | list[Hessian]        # one per group for a grouped conv
    formats: tuple[FormatLevels, ...]


class Level(NamedTuple):
    fmt: str
    bp: int
    mask: torch.Tensor
    weight: torch.Tensor
    err: float
    scale: torch.Tensor | None              # int8: per-output-channel weight scales


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


def build_layer_levels(job: LayerJob, method: str, damp: float, refine_iters: int, threads: int) -> list[Level]:
    """The job's missing levels: a sparse format's by progressive reconstruction over all its
    levels (each level's mask grows from the one before), int8 ones then quantized by GPTQ
    with the mask held fixed; dense int8 by GPTQ on the dense weights."""
    w = job.weight
    ones = torch.ones_like(w, dtype=torch.bool)
    out: list[Level] = []
    prepared = None   # factor H once per layer
    for f in job.formats:
        int8 = get_format(f.fmt).int8
        if isinstance(job.hessian, list):   # grouped convs: dense int8 only (no sparse kernel)
            wq, scale, err = quantize_grouped(w, job.hessian, damp, threads)
            out.append(Level(f.fmt, 0, ones, wq, err, scale))
            continue
        if prepared is None:
            prepared = prepare(job.hessian, damp, threads=threads)
        if not get_format(f.fmt).sparse:    # dense int8
            wq, scale, err = quantize_int8(w, prepared)
            out.append(Level(f.fmt, 0, ones, wq, err, scale))
            continue
        sparsities = [0.0, *f.sparsities]
        for res in reconstruct_levels(w, prepared, sparsities, f.fmt, method, damp=damp,
                                      refine_iters=refine_iters, threads=threads):
            bp = level_bp(sparsities[res.level])
            if res.level == 0 or bp not in f.missing:
                continue
            if int8:
                wq, scale, err = quantize_int8(res.weight, prepared, keep=res.mask, w_ref=w)
                out.append(Level(f.fmt, bp, res.mask, wq, err, scale))
            else:
                out.append(Level(f.fmt, bp, res.mask, res.weight, res.err, None))
    return out


# Below this much work (weights x levels to build) a build stays in this process: workers and the
# copies of weights and Hessians they need cost more than a unit test's tiny model takes to
# build. Measured on MiniLM-L6 (1 thread): 0.7-1 s per million weight-levels, so the bar is
# ~15 s of serial work.
MIN_PARALLEL_WORK = 20_000_000


def work_of(jobs: list[LayerJob]) -> int:
    """Weights times levels to build, over the jobs (dense int8 counts as one level)."""
    return sum(j.weight.numel() * sum(max(1, len(f.missing)) for f in j.formats) for j in jobs)


def default_workers(jobs: list[LayerJob], cores: int) -> int:
    """`cores` workers for a build worth them (MIN_PARALLEL_WORK), else 1."""
    return max(1, cores) if work_of(jobs) >= MIN_PARALLEL_WORK else 1


def _init_worker(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def _call(fn, payload: bytes) -> bytes:
    """fn on a job, both ways as plain pickled bytes: tensors travel by value, not as the
    shared-memory handles torch's multiprocessing pickler makes (hundreds of levels per layer
    would be hundreds of open file descriptors). Our own processes only: nothing a user loads."""
    return pickle.dumps(fn(pickle.loads(payload)), protocol=pickle.HIGHEST_PROTOCOL)


def processes_for(n_jobs: int, workers: int) -> int:
    """Worker processes map_layers runs: at most one per job; 1 (this process) for fewer than
    two jobs, workers <= 1, or a platform that does not fork."""
    if workers <= 1 or n_jobs < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(workers, n_jobs)


def map_layers(fn: Callable[[LayerJob], list[Level]], jobs: list[LayerJob], workers: int,
               threads: int = 1) -> Iterator[tuple[LayerJob, list[Level]]]:
    """(job, fn(job)) for every job, in job order; on `processes_for(len(jobs), workers)`
    forked processes, or in this process when that is 1."""
    n = processes_for(len(jobs), workers)
    if n == 1:
        for job in jobs:
            yield job, fn(job)
        return
    ctx = multiprocessing.get_context("fork")
    window = 2 * n   # jobs in flight: a copy of each one's Hessian waits in the pool (ResNet-50: up to 170 MB)

    def submit(job):
        return pool.submit(_call, fn, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [submit(job) for job in jobs[:window]]
        try:
            for i, job in enumerate(jobs):
                if i + window < len(jobs):
                    futures.append(submit(jobs[i + window]))
                yield job, pickle.loads(futures[i].result())
        finally:
            for fut in futures:
                fut.cancel()
