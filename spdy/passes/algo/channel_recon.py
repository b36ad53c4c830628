"""Channel selection, calibration error and least-squares reconstruction for channel pruning.

Removing channel c of a coupling group changes nothing upstream: the kept channels are still
computed exactly. The loss appears at the group's *consumers* (the layers that read those
channels). For a consumer with weight W [out, K] (K = im2col columns of a conv, features of
a linear) and calibration inputs X with Gram H = X^T X / n, keeping columns S and re-fitting
the weights on them by least squares (He et al. 2017; the "next layer" reconstruction of
DESIGN 4.7) gives

    W_S' = W H[:, S] H[S, S]^-1,
    relative error = 1 - tr(W H[:, S] H[S, S]^-1 H[S, :] W^T) / tr(W H W^T),

so one Gram per consumer, collected once on the dense model, prices every (group, width)
and gives the re-fit weights. Channels are chosen by CSS leverage scores of the group's
producer filters (CHEX Algorithm 2), the same selection whatever the consumer.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from spdy.errors import CalibrationError
from spdy.ir.groups import ChannelGroup
from spdy.passes.algo.css import top_k
from spdy.passes.algo.group_scores import css_importance
from spdy.passes.algo.reconstruct import conv_inputs_to_X


def select_channels(model: nn.Module, group: ChannelGroup, width: int, importance=None) -> list[int]:
    """The `width` channels of `group` to keep (sorted), by CSS leverage scores by default."""
    if width >= group.size:
        return list(range(group.size))
    fn = importance or css_importance
    return top_k(fn(model, group, width), width).tolist()


def _consumer_columns(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features
    return module.in_channels * int(np.prod(module.kernel_size))


def _is_consumer(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.Conv2d) and module.groups == 1


@torch.no_grad()
def collect_grams(model: nn.Module, qualnames: Iterable[str], batches: Sequence, *,
                  max_rows: int = 16384, seed: int = 0) -> dict[str, torch.Tensor]:
    """Input Gram X^T X / n (float64) of each named Conv2d/Linear over the calibration batches.

    Conv inputs are unfolded (im2col); at most `max_rows` rows per layer are kept (a seeded
    random subset of each batch's rows), which bounds the cost on big images.
    """
    modules = dict(model.named_modules())
    names = [q for q in qualnames if q in modules and _is_consumer(modules[q])]
    sums = {q: torch.zeros(_consumer_columns(modules[q]), _consumer_columns(modules[q]), dtype=torch.float64)
            for q in names}
    counts = dict.fromkeys(names, 0)
    per_batch = max(1, max_rows // max(1, len(batches)))
    gen = torch.Generator().manual_seed(seed)

    def hook_for(q, mod):
        def hook(m, inp, out):
            x = inp[0].detach().float()
            if isinstance(mod, nn.Linear):
                X = x.reshape(-1, mod.in_features)
            else:
                X = conv_inputs_to_X(x, mod.kernel_size, mod.stride, mod.padding, mod.dilation)
            if X.shape[0] > per_batch:
                X = X[torch.randperm(X.shape[0], generator=gen)[:per_batch]]
            X = X.double()
            sums[q].addmm_(X.T, X)
            counts[q] += X.shape[0]
        return hook

    handles = [modules[q].register_forward_hook(hook_for(q, modules[q])) for q in names]
    was = model.training
    model.eval()
    try:
        for batch in batches:
            if isinstance(batch, dict):
                model(**batch)
            else:
                model(*(batch if isinstance(batch, (tuple, list)) else (batch,)))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    out = {}
    for q in names:
        if counts[q] == 0:
            raise CalibrationError(f"no calibration inputs reached layer {q}")
        out[q] = sums[q] / counts[q]
    return out


def columns_of(module: nn.Module, channels) -> np.ndarray:
    """Gram/weight columns of the given input channels (conv: each channel's kh*kw taps)."""
    ch = np.asarray(channels, dtype=np.int64)
    if isinstance(module, nn.Linear):
        return ch
    k = int(np.prod(module.kernel_size))
    return (ch[:, None] * k + np.arange(k)[None, :]).reshape(-1)


def _weight2d(module: nn.Module) -> torch.Tensor:
    w = module.weight.detach().double()
    return w.reshape(w.shape[0], -1)


def _solve(H: torch.Tensor, S: torch.Tensor, W: torch.Tensor, damp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A = H[S,:] W^T, X = (H[S,S] + damp*mean(diag) I)^-1 A)."""
    HS = H[S][:, S]
    lam = damp * float(torch.diagonal(HS).mean()) + 1e-12
    A = H[S] @ W.T
    HS = HS + lam * torch.eye(len(S), dtype=HS.dtype)
    try:
        L = torch.linalg.cholesky(HS)
        X = torch.cholesky_solve(A, L)
    except RuntimeError:
        X = torch.linalg.lstsq(HS, A).solution
    return A, X


def relative_error(module: nn.Module, H: torch.Tensor, kept_cols: np.ndarray, damp: float = 1e-4) -> float:
    """Relative output error of `module` after keeping `kept_cols` and re-fitting (see module doc)."""
    W = _weight2d(module)
    total = float((W @ H * W).sum())
    if total <= 0:
        return 0.0
    if len(kept_cols) == 0:
        return 1.0
    S = torch.as_tensor(kept_cols, dtype=torch.long)
    if len(S) == H.shape[0]:
        return 0.0
    A, X = _solve(H, S, W, damp)
    explained = float((A * X).sum())
    return float(min(1.0, max(0.0, 1.0 - explained / total)))


def refit(module: nn.Module, H: torch.Tensor, kept_cols: np.ndarray, damp: float = 1e-4) -> torch.Tensor:
    """Least-squares weights [out, len(kept_cols)] on the kept columns (float64)."""
    W = _weight2d(module)
    S = torch.as_tensor(kept_cols, dtype=torch.long)
    _, X = _solve(H, S, W, damp)
    return X.T


def group_errors(model: nn.Module, group: ChannelGroup, widths: Sequence[int], grams: dict[str, torch.Tensor],
                 importance=None, damp: float = 1e-4) -> list[float]:
    """Error of keeping each width of `group`: the summed relative error of its consumers.

    A group no consumer reads (rare: its channels only reach pinned ops) is priced by the
    fraction of channels removed, so the DP still prefers wider.
    """
    modules = dict(model.named_modules())
    consumers = [m for m in group.members if m.kind == "in" and m.qualname in grams]
    errs = []
    for w in widths:
        if w >= group.size:
            errs.append(0.0)
            continue
        if not consumers:
            errs.append(1.0 - w / group.size)
            continue
        kept = select_channels(model, group, w, importance)
        dropped = np.setdiff1d(np.arange(group.size), kept)
        e = 0.0
        for m in consumers:
            mod = modules[m.qualname]
            n_in = mod.in_features if isinstance(mod, nn.Linear) else mod.in_channels
            gone = m.indices(dropped)
            keep_in = np.setdiff1d(np.arange(n_in), gone)
            e += relative_error(mod, grams[m.qualname], columns_of(mod, keep_in), damp)
        errs.append(e)
    return errs


def refit_consumers(pruned: nn.Module, dense: nn.Module, history: list, grams: dict[str, torch.Tensor],
                    damp: float = 1e-4) -> list[str]:
    """Replace each pruned consumer's weights by the least-squares fit on its kept inputs.

    `history` is the surgery history that turned `dense` into `pruned`; the fit uses the
    dense layer's full weights and its dense-model Gram, then keeps the rows the surgery
    kept. Returns the qualnames re-fitted.
    """
    mods_d, mods_p = dict(dense.named_modules()), dict(pruned.named_modules())
    kept_in = {q: kept for q, dim, kept in history if dim == 1}
    kept_out = {q: kept for q, dim, kept in history if dim == 0}
    done = []
    for q, kept in kept_in.items():
        if q not in grams or not _is_consumer(mods_d[q]):
            continue
        dm, pm = mods_d[q], mods_p[q]
        W = refit(dm, grams[q], columns_of(dm, kept), damp)
        if q in kept_out:
            W = W[torch.as_tensor(kept_out[q], dtype=torch.long)]
        w = W.reshape(pm.weight.shape).to(pm.weight.dtype)
        pm.weight = nn.Parameter(w.contiguous(), requires_grad=pm.weight.requires_grad)
        done.append(q)
    return done
