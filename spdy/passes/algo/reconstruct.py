"""Layer-wise pruning with reconstruction: the entries of SPDY's database (DESIGN.md 4.5).

For one layer with dense weights W [out, K] and calibration inputs X [n, K] (for a conv,
the im2col patches, see ``conv_inputs_to_X``), each level gets a mask and weights W_s
re-fit to minimise ``||X W^T - X W_s^T||^2``. Everything depends on X only through
``H = X^T X / n``, so inputs are streamed into a ``Hessian`` and never kept.

Masks are *progressive*: level i+1 prunes a superset of level i, chosen by the magnitude
(block formats: block L2 norm) of level i's reconstructed weights, so the stitched models
of neighbouring levels differ little and the search sees a smooth landscape.

Blocks are those of the format (spdy/formats.py, the one definition of block geometry:
bsr16x1 = 16 output rows x 1 input, int8 formats Rx4); "bsr1x1" is unstructured. Sparsity counts blocks:
``round(s * n_blocks)`` blocks are pruned (exact weight counts when BR divides ``out``).

Methods for the re-fit given a mask:
- ``"obs"`` (default): SparseGPT's column sweep with the Cholesky factor of the damped
  ``H^-1`` (OBS updates of the not-yet-visited weights of every row), then ``refine_iters``
  batched conjugate-gradient steps on the masked least squares (the sweep alone leaves
  weights left of a pruned column un-adapted; CG nearly reaches the exact optimum).
- ``"lstsq"``: exact least squares per row (per block group, whose rows share a mask) on
  the kept weights; O(rows * K^3), for small layers.
- ``"adaprune"``: a few Adam steps on the output MSE from the magnitude-pruned start,
  keeping the best iterate (so it is never worse than plain pruning).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from spdy.errors import CalibrationError
from spdy.formats import block_mask, get as get_format

METHODS = ("obs", "lstsq", "adaprune")
# Bump when the numbers reconstruct_levels produces change (masks, solver, defaults): the
# reconstruction database hashes it into every key, so old entries are never reused.
ALGO_VERSION = 2
_SMALL = 1 << 22  # elements (W + H) below which a layer runs on one thread by default


def conv_inputs_to_X(x: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1,
                     groups: int = 1) -> torch.Tensor:
    """Conv2d inputs [N, C, H, W] -> im2col rows [N * P, C * kh * kw].

    The column order matches ``weight.reshape(out, -1)``, so ``X @ W2d.T`` is the conv.
    """
    if groups != 1:
        raise ValueError(f"only groups == 1 convolutions are supported, got groups={groups}")
    if isinstance(padding, str):
        if padding != "valid":
            raise ValueError(f"padding={padding!r} is not supported; pass explicit padding")
        padding = 0
    if x.dim() != 4:
        raise ValueError(f"expected conv inputs [N, C, H, W], got shape {tuple(x.shape)}")
    u = F.unfold(x, kernel_size, dilation=dilation, padding=padding, stride=stride)
    return u.transpose(1, 2).reshape(-1, u.shape[1])


class Hessian:
    """Streaming ``H = X^T X / n`` in float64 (sums of many float32 products lose digits)."""

    def __init__(self, n_features: int):
        self.sum = torch.zeros(n_features, n_features, dtype=torch.float64)
        self.n = 0

    def add(self, X: torch.Tensor) -> None:
        X = X.detach().reshape(-1, self.sum.shape[0]).to(torch.float64)
        if not torch.isfinite(X).all():
            raise CalibrationError("layer inputs contain NaN or inf")
        self.sum.addmm_(X.T, X)
        self.n += X.shape[0]

    @property
    def H(self) -> torch.Tensor:
        if self.n == 0:
            raise CalibrationError("no calibration inputs reached this layer")
        return self.sum / self.n


def hessian(X: torch.Tensor) -> torch.Tensor:
    """``X^T X / n`` of a [n, K] input matrix."""
    h = Hessian(X.shape[-1])
    h.add(X)
    return h.H


def layer_error(W: torch.Tensor, W_s: torch.Tensor, H: torch.Tensor) -> float:
    """Mean over samples of the squared output error ``||x W^T - x W_s^T||^2``.

    The product runs in H's dtype (pass a float32 H for big layers: half the cost of the
    one [out,K]x[K,K] product), the final sum in float64.
    """
    D = W_s.reshape(W.shape[0], -1).to(torch.float64) - W.reshape(W.shape[0], -1)
    dt = H.dtype if H.is_floating_point() else torch.float64
    return float(((D.to(dt) @ H).to(torch.float64) * D).sum())


def _damped(H: torch.Tensor, damp: float) -> torch.Tensor:
    H = H.to(torch.float64)
    mean_diag = float(torch.diagonal(H).mean())
    lam = damp * mean_diag if mean_diag > 0 else 1.0
    return H + lam * torch.eye(H.shape[0], dtype=torch.float64)


def _inv_chol_upper(Hd: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factor of ``Hd^-1`` (SparseGPT's numerically stable OBS form)."""
    Hinv = torch.cholesky_inverse(torch.linalg.cholesky(Hd))
    return torch.linalg.cholesky(Hinv, upper=True)


@contextmanager
def _threads(n: int | None):
    """Run the body with ``n`` torch threads (None: leave the setting alone)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _one_thread(enable: bool = True):
    """Run small ops on one thread: splitting a 100k-element update over threads costs
    more in synchronisation than it saves, and on a busy machine 10-50x more (measured:
    a 512x2304 sweep took 0.3 s on 1 thread, 3-15 s on 2 with other jobs running)."""
    n = torch.get_num_threads()
    if enable:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _obs(W: torch.Tensor, keep: torch.Tensor, U: torch.Tensor, blocksize: int = 128
         ) -> torch.Tensor:
    """SparseGPT sweep for a fixed mask: zero pruned weights column by column and move
    their error onto the remaining columns with the OBS update ``-e * U[i, i:]``.

    Runs on the transpose (one contiguous row per input column) in U's dtype, with masks
    as 0/1 factors instead of boolean indexing (which costs ~0.5 ms per column).
    """
    dt = U.dtype
    Wt = W.T.to(dt).contiguous()  # [K, out]
    Pt = (~keep).T.to(dt).contiguous()  # 1 = pruned
    n = Wt.shape[0]
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        W1, P1 = Wt[i1:i2], Pt[i1:i2]  # views: updated in place
        U1 = U[i1:i2, i1:i2]
        E1 = torch.zeros_like(W1)
        active = P1.any(dim=1).tolist()
        diag = U1.diagonal().tolist()
        with _one_thread():
            for i in range(i2 - i1):
                if not active[i]:
                    continue
                e = E1[i]
                torch.mul(W1[i], P1[i], out=e)
                e.div_(diag[i])
                W1[i:].addr_(U1[i, i:], e, alpha=-1.0)
                W1[i].mul_(1.0 - P1[i])  # exactly zero, not a rounding residue
        if i2 < n:
            Wt[i2:].addmm_(U[i1:i2, i2:].T, E1, alpha=-1.0)
    return Wt.T * keep.to(dt)


def _cg_refine(W: torch.Tensor, V: torch.Tensor, keep: torch.Tensor, Hd: torch.Tensor,
               iters: int) -> torch.Tensor:
    """Batched conjugate gradient on every row's masked quadratic, from ``V``.

    Why: SparseGPT's sweep freezes each column once visited, so kept weights left of a
    pruned one never adapt; a few CG steps (one [out,K]x[K,K] product each) close most of
    the gap to the exact per-row least squares at a fraction of its cost.
    """
    dt = Hd.dtype
    Wd, V, m = W.to(dt), V.to(dt).clone(), keep.to(dt)
    R = ((Wd - V) @ Hd) * m
    P = R.clone()
    rr = (R * R).sum(dim=1)
    for _ in range(iters):
        if not bool((rr > 0).any()):
            break
        AP = (P @ Hd) * m
        den = (P * AP).sum(dim=1)
        a = torch.where(den > 0, rr / den.clamp_min(1e-300), torch.zeros_like(den))
        V.add_(a[:, None] * P)
        R.sub_(a[:, None] * AP)
        rr_new = (R * R).sum(dim=1)
        b = torch.where(rr > 0, rr_new / rr.clamp_min(1e-300), torch.zeros_like(rr))
        P = R + b[:, None] * P
        rr = rr_new
    return V * m


def _lstsq(W: torch.Tensor, keep: torch.Tensor, Hd: torch.Tensor) -> torch.Tensor:
    """Exact re-fit: for each distinct row mask, ``Hd[k,k] v = Hd[k,:] w`` (damped H pulls
    the solution slightly toward the dense weights, which keeps it well posed)."""
    Wd = W.to(torch.float64)
    out = torch.zeros_like(Wd)
    masks, inverse = torch.unique(keep, dim=0, return_inverse=True)
    rhs_all = Wd @ Hd  # [out, K]: row r is (Hd w_r)^T
    with _one_thread(Hd.numel() < _SMALL):
        _solve_groups(out, masks, inverse, rhs_all, Hd)
    return out


def _solve_groups(out, masks, inverse, rhs_all, Hd) -> None:
    for g in range(masks.shape[0]):
        rows = torch.nonzero(inverse == g).flatten()
        k = torch.nonzero(masks[g]).flatten()
        if len(k) == 0:
            continue
        A = Hd[k][:, k]
        sol = torch.cholesky_solve(rhs_all[rows][:, k].T, torch.linalg.cholesky(A))
        out[rows[:, None], k[None, :]] = sol.T


def _adaprune(W: torch.Tensor, start: torch.Tensor, keep: torch.Tensor, H: torch.Tensor,
              steps: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-12) -> torch.Tensor:
    """Adam on ``tr((V-W) H (V-W)^T)`` over the kept weights; returns the best iterate.

    The gradient ``2 (V-W) H`` is written out (no autograd): one [out,K]x[K,K] product per
    step gives both the loss of the current iterate and its gradient.
    """
    Wd, Hd, m = W.to(torch.float64), H.to(torch.float64), keep.to(torch.float64)
    V = start.to(torch.float64) * m
    if layer_error(Wd, Wd * m, Hd) < layer_error(Wd, V, Hd):
        V = Wd * m  # never start (so never end) worse than plain pruning
    step = lr * (float(Wd.abs().mean()) or 1.0)
    b1, b2 = betas
    M1, M2 = torch.zeros_like(V), torch.zeros_like(V)
    best, best_loss = V.clone(), float("inf")
    with _one_thread(Wd.numel() + Hd.numel() < _SMALL):
        for t in range(1, steps + 2):
            D = V - Wd
            DH = D @ Hd
            loss = float((DH * D).sum())
            if loss < best_loss:
                best, best_loss = V.clone(), loss
            if t > steps:
                break
            G = 2.0 * DH * m
            M1.mul_(b1).add_(G, alpha=1 - b1)
            M2.mul_(b2).addcmul_(G, G, value=1 - b2)
            denom = (M2 / (1 - b2 ** t)).sqrt_().add_(eps)
            V = V - step * (M1 / (1 - b1 ** t)) / denom * m
    return best


class Prepared(NamedTuple):
    """H with its damped form and OBS factor, computed once per layer (``prepare``)."""

    H: torch.Tensor  # float64, undamped
    damp: float
    Hd: torch.Tensor  # float64, damped
    U: torch.Tensor  # float32 upper Cholesky factor of Hd^-1
    Hd32: torch.Tensor


def prepare(H: torch.Tensor | Hessian, damp: float = 0.01, threads: int | None = None
            ) -> Prepared:
    """Factor a layer's Hessian once; pass the result as ``H`` to ``reconstruct_levels``
    for each format (the factorisation is the costliest step of a big layer's first level).
    """
    H = (H.H if isinstance(H, Hessian) else H).to(torch.float64)
    if threads is None and H.numel() < _SMALL:
        threads = 1
    with _threads(threads):
        Hd = _damped(H, damp)
        return Prepared(H, float(damp), Hd, _inv_chol_upper(Hd).to(torch.float32),
                        Hd.to(torch.float32))


def _factor(H: torch.Tensor, damp: float, method: str):
    """Damped H; for "obs" also the float32 upper Cholesky factor of its inverse."""
    Hd = _damped(H, damp)
    if method != "obs":
        return Hd, None, None
    return Hd, _inv_chol_upper(Hd).to(torch.float32), Hd.to(torch.float32)


class LevelResult(NamedTuple):
    level: int
    mask: torch.Tensor  # bool, True = kept, shape of W
    weight: torch.Tensor  # reconstructed, shape and dtype of W
    err: float  # layer_error against the dense weights


def reconstruct_levels(W: torch.Tensor, H: torch.Tensor | Hessian | Prepared | None,
                       sparsities: Sequence[float], fmt: str = "bsr1x1", method: str = "obs", *,
                       X: torch.Tensor | None = None, damp: float = 0.01, blocksize: int = 128,
                       refine_iters: int = 5, adaprune_steps: int = 50,
                       adaprune_lr: float = 1e-2, threads: int | None = None,
                       resume: tuple[int, torch.Tensor, torch.Tensor] | None = None,
                       ) -> Iterator[LevelResult]:
    """Yield ``(level, mask, weight, err)`` for every level of ``sparsities`` in order.

    ``fmt``: a sparse format of spdy.formats (block geometry); ``method``: "obs" | "lstsq" | "adaprune" (module doc).
    ``damp``: ridge ``damp * mean(diag H)`` added for the solves (not for ``err``).
    ``threads``: torch threads for the per-level work; default 1 for layers whose W + H
    hold < 4M elements (small ops lose to thread synchronisation, badly so on a busy
    machine: 6-10x measured here), torch's setting above.
    ``W``: [out, K] or a conv weight [out, C, kh, kw] (flattened to [out, C*kh*kw]).
    Give either ``H`` (``X^T X / n``, a ``Hessian``, or ``prepare(H, damp)``, whose damp
    then wins over ``damp=``) or ``X=``. ``sparsities`` must be
    non-decreasing (0.0 = dense, yielded unchanged). ``resume=(level, mask, weight)``
    skips levels up to ``level`` and continues the progressive chain from that entry,
    which is how an interrupted database build resumes.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    get_format(fmt)  # validates the name
    s = [float(x) for x in sparsities]
    if any(not (0.0 <= x < 1.0) for x in s):
        raise ValueError(f"sparsities must be in [0, 1): {s}")
    if any(b < a for a, b in zip(s, s[1:])):
        raise ValueError("sparsities must be non-decreasing (masks are progressive)")
    if X is not None:
        if H is not None:
            raise ValueError("give H or X, not both")
        H = hessian(X)
    prepared = H if isinstance(H, Prepared) else None
    if prepared is not None:
        H = prepared.H
    if isinstance(H, Hessian):
        H = H.H
    if H is None:
        raise ValueError("need H or X")
    shape, dtype = W.shape, W.dtype
    W2 = W.detach().reshape(shape[0], -1).to(torch.float64)
    K = W2.shape[1]
    if tuple(H.shape) != (K, K):
        raise ValueError(f"H must be [{K}, {K}] for a weight with {K} inputs, "
                         f"got {tuple(H.shape)}")
    H = H.to(torch.float64)
    if threads is None and W2.numel() + H.numel() < _SMALL:
        threads = 1
    # float64 for the factorisations; the O(out * K^2) sweep, CG (and the reported error
    # of big layers) run in float32 as in SparseGPT: 2x faster, and the errors they fit
    # are far above float32 rounding. 5 CG steps got within 1-3% of exact least squares
    # on post-ReLU-like Hessians (64x576, 50-95% sparsity), each step costing one
    # [out,K]x[K,K] product: ResNet-50's 42 levels are ~8 such products per layer-level.
    if prepared is not None:
        Hd, U, Hd32 = prepared.Hd, prepared.U, prepared.Hd32
    else:
        with _threads(threads):
            Hd, U, Hd32 = _factor(H, damp, method)

    keep, cur = None, W2
    start = 0
    if resume is not None:
        lvl, rmask, rw = resume
        keep = rmask.reshape(shape[0], -1).bool()
        cur = rw.detach().reshape(shape[0], -1).to(torch.float64)
        start = lvl + 1
    # arguments are checked above, when called; the work happens lazily, level by level
    return _iter_levels(W2, H, Hd, U, Hd32, s, fmt, method, start, keep, cur, shape, dtype,
                        blocksize, refine_iters, adaprune_steps, adaprune_lr, threads)


def _iter_levels(W2, H, Hd, U, Hd32, s, fmt, method, start, keep, cur, shape, dtype,
                 blocksize, refine_iters, adaprune_steps, adaprune_lr, threads):
    H_err = H if W2.numel() + H.numel() < _SMALL else H.to(torch.float32)
    for i in range(start, len(s)):
        with _threads(threads):
            if s[i] == 0.0 and keep is None:
                keep_i = torch.ones_like(W2, dtype=torch.bool)
                new = W2.clone()
            else:
                keep_i = block_mask(cur, fmt, s[i], shape, prev_keep=keep)
                if method == "obs":
                    new = _obs(W2, keep_i, U, blocksize)
                    if refine_iters > 0:
                        new = _cg_refine(W2, new, keep_i, Hd32, refine_iters)
                    new = new.to(torch.float64)
                elif method == "lstsq":
                    new = _lstsq(W2, keep_i, Hd)
                else:
                    new = _adaprune(W2, cur, keep_i, H, adaprune_steps, adaprune_lr)
                new = new * keep_i
            err = layer_error(W2, new, H_err)
        keep, cur = keep_i, new
        yield LevelResult(i, keep_i.reshape(shape), new.to(dtype).reshape(shape), err)
