"""One artifact, a function per batch size: dispatch on dimension 0, pad up, cut back.

A service that batches requests sees every batch size up to its limit. TVM's kernels are
specialized to their shapes, so the artifact holds one built library per size the user listed
(model.so for the size the compile searched at, model.b<N>.so for the others). A call with N
rows runs the smallest size >= N: the inputs are padded with copies of their last row (real
values, so no layer sees a range it never saw) and every output whose dimension 0 is that size
is cut back to N rows. Rows must not interact (true of eval-mode models: batch norm uses its
running statistics). A call larger than the largest size is refused with the sizes there are.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from spdy.errors import InputShapeError
from spdy.runtime.arrays import is_torch, to_numpy

PRIMARY_LIBRARY = "model.so"


def library_name(batch: int, primary: int) -> str:
    return PRIMARY_LIBRARY if batch == primary else f"model.b{batch}.so"


def bucket_manifest(manifests: dict[int, dict], primary: int) -> dict:
    """The primary size's manifest plus "batch_buckets": each size's library and signature."""
    return dict(manifests[primary], batch_buckets=[
        {"batch": b, "library": library_name(b, primary), "inputs": m["inputs"], "outputs": m["outputs"]}
        for b, m in sorted(manifests.items())])


@dataclass
class BucketedBuilt:
    """What CompiledModel holds for a bucketed compile: the executables by library file name,
    the manifest that lists them, and a runner that dispatches on the batch size."""
    builts: dict            # batch size -> spdy.runtime.build.Built
    primary: int            # the size the compile searched and verified at

    @cached_property
    def manifest(self) -> dict:
        return bucket_manifest({b: x.manifest for b, x in self.builts.items()}, self.primary)

    @property
    def executable(self) -> dict:
        return {library_name(b, self.primary): x.executable for b, x in self.builts.items()}

    @cached_property   # CompiledModel reads it on every call: one runner, made once (as Built's)
    def runner(self) -> "BucketedRunner":
        return BucketedRunner({b: x.runner for b, x in self.builts.items()}, self.primary, self.manifest)


class BucketedRunner:
    """Runs a call on the smallest compiled batch size that holds it (see the module doc).
    Everything else (timing, default inputs, the VM) is the primary size's runner."""

    def __init__(self, runners: dict, primary: int, manifest: dict):   # batch size -> ArtifactRunner
        self.runners = dict(sorted(runners.items()))
        self.primary = primary
        self.manifest = manifest

    def __getattr__(self, name):
        return getattr(self.runners[self.primary], name)

    @property
    def batch_sizes(self) -> list[int]:
        return list(self.runners)

    def bucket_for(self, n: int) -> int:
        for b in self.runners:
            if b >= n:
                return b
        raise InputShapeError(f"batch size {n} is larger than the largest size this artifact was compiled for "
                              f"({', '.join(map(str, self.runners))}); split the batch or recompile with "
                              f"batch_sizes including {n}")

    def __call__(self, *args, **kwargs):
        values = list(args) + list(kwargs.values())
        if not values:
            return self.runners[self.primary]()
        shape = getattr(values[0], "shape", None)
        if not shape:
            raise InputShapeError("the first input has no batch dimension; give arrays with the batch first")
        n = int(shape[0])
        b = self.bucket_for(n)
        run = self.runners[b]
        if b == n:
            return run(*args, **kwargs)
        out = run(*[pad_rows(v, b) for v in args], **{k: pad_rows(v, b) for k, v in kwargs.items()})
        sizes = [o["shape"][0] if o["shape"] else None for o in run.manifest["outputs"]]
        if not isinstance(out, tuple):
            return out[:n] if sizes[0] == b else out
        return tuple(o[:n] if s == b else o for o, s in zip(out, sizes))


def pad_rows(v, size: int):
    """`v` (numpy or torch) with its last row repeated up to `size` rows, as numpy."""
    arr = to_numpy(v)
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InputShapeError("an input has no rows to pad; give arrays with the batch first")
    extra = np.repeat(arr[-1:], size - arr.shape[0], axis=0)
    padded = np.concatenate([arr, extra], axis=0)
    if is_torch(v):
        import torch
        return torch.from_numpy(padded)
    return padded
