"""The batch dimension of a model's inputs: which it is, and the same inputs at another size.

One artifact can hold a function per batch size (spdy.compile(..., batch_sizes=[1, 8, 32])).
spdy takes dimension 0 of every input as the batch, the convention of torchvision, Hugging
Face and torch.nn layers; the inputs at another size repeat the example's rows (a kernel's
time does not depend on the values, and repeated real rows keep calibration-like ranges).
"""
from __future__ import annotations

import torch

from spdy.errors import InputShapeError, OptionError
from spdy.ir.trace import ExampleInputs


def check_batch_sizes(sizes) -> tuple[int, ...] | None:
    """None, or the sizes as sorted unique positive ints; one line naming the fix otherwise."""
    if sizes is None:
        return None
    if isinstance(sizes, (int, str)) or not hasattr(sizes, "__iter__"):
        raise OptionError(f"batch_sizes must be a list of positive ints like [1, 8, 32], got {sizes!r}")
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise OptionError(f"batch_sizes must be positive ints like [1, 8, 32], got {s!r} in {list(sizes)!r}")
        out.append(s)
    if not out:
        raise OptionError("batch_sizes is empty; give the sizes like [1, 8, 32], or leave it out")
    return tuple(sorted(set(out)))


def batch_of(inputs: ExampleInputs) -> int:
    """The example's batch size: dimension 0, the same for every input."""
    sizes = {name: (t.shape[0] if t.dim() else None) for name, t in zip(inputs.names, inputs.flat)}
    scalars = [n for n, s in sizes.items() if s is None]
    if scalars:
        raise InputShapeError(f"input {scalars[0]!r} has no batch dimension (0-d); batch_sizes needs dimension 0 "
                              "of every input to be the batch")
    if len(set(sizes.values())) != 1:
        raise InputShapeError(f"the inputs disagree on dimension 0 ({sizes}); batch_sizes needs dimension 0 of "
                              "every input to be the batch")
    return next(iter(sizes.values()))


def with_batch(inputs: ExampleInputs, size: int) -> ExampleInputs:
    """The same inputs with `size` rows: the example's rows repeated (and cut) along dimension 0."""
    def resize(t: torch.Tensor) -> torch.Tensor:
        reps = -(-size // t.shape[0])
        return t.repeat(reps, *([1] * (t.dim() - 1)))[:size].contiguous()
    return ExampleInputs(tuple(resize(t) for t in inputs.args), {k: resize(v) for k, v in inputs.kwargs.items()})
