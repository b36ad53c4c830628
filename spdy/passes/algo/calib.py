"""Validate and collect a calibration set before any long work starts.

A calibration set is any iterable (a DataLoader, a list, a generator) whose items are
model inputs, or ``(inputs, label)`` pairs. Inputs have the structure of the example
inputs: one tensor, a tuple/list of tensors, or a dict of tensors. Each tensor is either
a batch (same rank as the example, any batch size) or a single sample (rank one less).

Token inputs (integer or bool tensors of rank >= 2: input ids, attention masks) may be
shorter than the example along their last axis, as a loader with dynamic padding gives them
(each batch padded to its own longest sequence); an item's token inputs of one example length
must agree on theirs. Why: a transformer's padding positions cost as much as real tokens, and
with short sentences padded to a long example most of the calibration compute (activation
ranges, Hessians, every loss the search evaluates) went to padding. Items of different lengths
are never concatenated: each run of one length is re-batched on its own. The graph must accept
the shorter length (an fx graph of a model written for any length does); the first pass that
runs the set says so in one line when it does not.

Why up front: the database build and the search take minutes; a wrong shape or a NaN
found then wastes them and surfaces as an obscure error deep inside a hook. Here the
message names the item, the expected and the actual shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch

from spdy.errors import CalibrationError
from spdy.ir.trace import is_token_input

__all__ = ["CalibSet", "collect_calibration", "check_finite_weights"]


@dataclass
class CalibSet:
    """Validated calibration data, re-batched.

    ``inputs[b]``: the inputs of batch b with the example's structure (tensor, tuple or
    dict; a one-tensor tuple example gives plain tensors); ``labels[b]`` its labels, or
    ``labels is None`` when the set has none.
    """

    inputs: list[Any]
    labels: list[torch.Tensor] | None
    n_samples: int

    @property
    def has_labels(self) -> bool:
        return self.labels is not None


def _leaves(x, path="input"):
    """(path, tensor) for every tensor of a nested input, in a stable order."""
    if isinstance(x, torch.Tensor):
        return [(path, x)]
    if isinstance(x, Mapping):
        return [lv for k in sorted(x) for lv in _leaves(x[k], f"{path}[{k!r}]")]
    if isinstance(x, (tuple, list)):
        return [lv for i, y in enumerate(x) for lv in _leaves(y, f"{path}[{i}]")]
    return [(path, x)]


def _same_structure(item, example) -> bool:
    if isinstance(example, torch.Tensor):
        return isinstance(item, torch.Tensor)
    if isinstance(example, Mapping):
        return isinstance(item, Mapping) and set(item) == set(example) and all(
            _same_structure(item[k], example[k]) for k in example)
    if isinstance(example, (tuple, list)):
        return (isinstance(item, (tuple, list)) and len(item) == len(example)
                and all(_same_structure(a, b) for a, b in zip(item, example)))
    return False


def _rebuild(example, leaves):
    """Inverse of ``_leaves`` on the example's structure."""
    it = iter(leaves)

    def build(e):
        if isinstance(e, torch.Tensor):
            return next(it)
        if isinstance(e, Mapping):
            return {k: build(e[k]) for k in sorted(e)}
        return type(e)(build(y) for y in e) if isinstance(e, tuple) else [build(y) for y in e]

    return build(example)


def _split(item, example, idx):
    """(inputs, label or None) of one item, or CalibrationError."""
    if _same_structure(item, example):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2 and _same_structure(item[0], example):
        return item[0], item[1]
    kind = type(example).__name__
    raise CalibrationError(
        f"calibration item {idx}: expected inputs shaped like the example inputs ({kind}) "
        f"or an (inputs, label) pair, got {type(item).__name__}"
        + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""))


def _kind(t: torch.Tensor) -> str:
    return "float" if t.is_floating_point() else "bool" if t.dtype == torch.bool else "int"


def _shape_fits(shape: tuple, exp: tuple, token: bool) -> bool:
    """The example's trailing shape, or (token inputs) one shorter along the last axis."""
    if shape == exp:
        return True
    return token and len(shape) == len(exp) and shape[:-1] == exp[:-1] and 1 <= shape[-1] <= exp[-1]


def _check_tensor(t, ex: torch.Tensor, where: str, idx: int) -> torch.Tensor:
    """Batched tensor of the example's trailing shape and dtype (token inputs: possibly
    shorter along the last axis), or CalibrationError."""
    if not isinstance(t, torch.Tensor):
        raise CalibrationError(f"calibration item {idx}: {where} is {type(t).__name__}, "
                               f"expected a tensor")
    exp = tuple(ex.shape[1:])
    token = is_token_input(ex)
    if t.dim() == ex.dim() - 1 and _shape_fits(tuple(t.shape), exp, token):
        t = t.unsqueeze(0)
    if t.dim() != ex.dim() or not _shape_fits(tuple(t.shape[1:]), exp, token):
        raise CalibrationError(
            f"calibration item {idx}: {where} has shape {tuple(t.shape)}, expected "
            f"(batch, {', '.join(map(str, exp))}) or a single sample {exp} "
            f"like the example input {tuple(ex.shape)}"
            + (" (token inputs may be shorter along the last axis)" if token else ""))
    if _kind(t) != _kind(ex):
        raise CalibrationError(f"calibration item {idx}: {where} has dtype {t.dtype}, "
                               f"the example input has {ex.dtype}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise CalibrationError(f"calibration item {idx}: {where} contains NaN or inf")
    return t.to(ex.dtype).detach().cpu()


def collect_calibration(calib: Iterable, example_inputs, n_samples: int = 1024,
                        batch_size: int = 64) -> CalibSet:
    """Validate ``calib`` against ``example_inputs`` and collect up to ``n_samples``.

    Stops reading once ``n_samples`` are in (a huge loader is not exhausted). Raises
    ``CalibrationError`` for an empty set, a shape/dtype/structure mismatch, NaN/inf in
    inputs or float labels, labels on some items but not others, or label counts that
    differ from the batch size.
    """
    if calib is None:
        raise CalibrationError("no calibration set given (calib=None)")
    if n_samples < 1 or batch_size < 1:
        raise ValueError("n_samples and batch_size must be >= 1")
    example = example_inputs
    if isinstance(example, (tuple, list)) and len(example) == 1 and isinstance(
            example[0], torch.Tensor):
        example = example[0]  # (x,) is how a one-input model's example is often passed
    ex_leaves = [t for _, t in _leaves(example)]
    if not ex_leaves or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in ex_leaves):
        raise ValueError("example_inputs must be tensors with a batch dimension")
    try:
        iterator = iter(calib)
    except TypeError:
        raise CalibrationError(f"calibration set of type {type(calib).__name__} "
                               f"is not iterable") from None

    runs: list[tuple[tuple, list[list[torch.Tensor]], list[torch.Tensor]]] = []  # (shapes, cols, labels)
    with_labels = None
    n = 0
    for idx, item in enumerate(iterator):
        inp, lab = _split(item, example, idx)
        leaves = [_check_tensor(t, ex, p, idx)
                  for (p, t), ex in zip(_leaves(inp), ex_leaves)]
        bs = {t.shape[0] for t in leaves}
        if len(bs) != 1:
            raise CalibrationError(f"calibration item {idx}: inputs disagree on batch size {bs}")
        _check_lengths(leaves, ex_leaves, idx)
        b = bs.pop()
        if with_labels is None:
            with_labels = lab is not None
        elif with_labels != (lab is not None):
            raise CalibrationError(f"calibration item {idx}: some items have labels and "
                                   f"others do not")
        if lab is not None:
            lab = torch.as_tensor(lab).detach().cpu()
            if lab.dim() == 0:
                lab = lab.reshape(1)
            if lab.shape[0] != b:
                raise CalibrationError(f"calibration item {idx}: {lab.shape[0]} labels for "
                                       f"a batch of {b}")
            if lab.is_floating_point() and not torch.isfinite(lab).all():
                raise CalibrationError(f"calibration item {idx}: label contains NaN or inf")
        take = min(b, n_samples - n)
        shapes = tuple(tuple(t.shape[1:]) for t in leaves)
        if not runs or runs[-1][0] != shapes:
            runs.append((shapes, [[] for _ in ex_leaves], []))
        _, cols, labels = runs[-1]
        for c, t in zip(cols, leaves):
            c.append(t[:take])
        if lab is not None:
            labels.append(lab[:take])
        n += take
        if n >= n_samples:
            break
    if n == 0:
        raise CalibrationError("the calibration set is empty")

    inputs, out_labels = [], ([] if with_labels else None)
    for _, cols, labels in runs:
        flat = [torch.cat(c) for c in cols]
        lab_all = torch.cat(labels) if with_labels else None
        for s in range(0, flat[0].shape[0], batch_size):
            inputs.append(_rebuild(example, [t[s:s + batch_size] for t in flat]))
            if with_labels:
                out_labels.append(lab_all[s:s + batch_size])
    return CalibSet(inputs, out_labels, n)


def _check_lengths(leaves, ex_leaves, idx: int) -> None:
    """An item's token inputs that share an example length (ids and mask) share their length."""
    seen: dict[int, int] = {}
    for t, ex in zip(leaves, ex_leaves):
        if is_token_input(ex):
            if seen.setdefault(ex.shape[-1], t.shape[-1]) != t.shape[-1]:
                raise CalibrationError(
                    f"calibration item {idx}: token inputs disagree on their length "
                    f"({seen[ex.shape[-1]]} and {t.shape[-1]}); pad them to one length per batch")


def check_finite_weights(named_tensors) -> None:
    """CalibrationError naming every parameter/buffer holding NaN or inf.

    ``named_tensors``: a module (its parameters and buffers) or (name, tensor) pairs.
    Why here: NaN weights poison every calibration loss and the search silently returns
    nonsense; better to stop before the long phases.
    """
    if isinstance(named_tensors, torch.nn.Module):
        m = named_tensors
        pairs = list(m.named_parameters()) + list(m.named_buffers())
    elif isinstance(named_tensors, Mapping):
        pairs = list(named_tensors.items())
    else:
        pairs = list(named_tensors)
    bad = [name for name, t in pairs
           if isinstance(t, torch.Tensor) and t.is_floating_point()
           and not bool(torch.isfinite(t.detach()).all())]
    if bad:
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise CalibrationError(f"model weights contain NaN or inf: {', '.join(bad[:10])}{more}")
