"""GPTQ: int8 weights re-fit to the layer's calibration inputs (Frantar et al., ICLR'23; OBQ).

Round-to-nearest treats every weight alone; GPTQ quantizes the columns (inputs) of W one by
one and moves each column's rounding error onto the columns not yet quantized, through the
upper Cholesky factor ``U`` of the damped ``H^-1`` (``H = X^T X / n``, the same matrix and
factor the SparseGPT reconstruction uses: ``reconstruct.prepare``). Row r's update after
quantizing column i is ``w[r, j] -= e[r] * U[i, j]`` for j > i, ``e[r] = (w[r, i] -
q[r, i]) / U[i, i]``: the OBS update that keeps the outputs as close as the not-yet-fixed
weights allow. Updates inside a block of ``blocksize`` columns are applied column by
column; the rest of the matrix gets one [out, B] x [B, K] product per block ("lazy
batching"), which is exact, only faster.

Sparse int8 (``keep`` given): the sparse weights from the reconstruction are quantized with
their mask held fixed, as OBC does for compound compression; pruned weights end exactly 0 and
kept ones on their channel's grid. Two ways for the sweep to treat pruned positions
(``sparse_update``):
- "joint" (default): SparseGPT's joint prune + quantize sweep: pruned positions receive
  updates like any free weight and are set back to 0 when their column comes, that error
  spread onward (the greedy OBS step with the later columns free, at every column);
- "masked": only kept weights receive updates, pruned ones stay 0 throughout.
Neither is the exact OBS update for a row's own support (that needs a factor of
``H[kept, kept]`` per distinct row mask, O(K^3) each). On MiniLM-L6 at 50% (1x1) the
joint sweep added 0.35x the error of rounding the sparse weights, the masked one 0.63x.

Refinement (``refine`` passes, default 2): coordinate descent on the integer grid against
the true objective ``||X W_ref^T - X Wq^T||^2`` (``_refine``). GPTQ is greedy; on MiniLM
the refinement took dense GPTQ's error from 0.162x to 0.146x RTN's. For sparse int8 it
matters more: measured against the *dense* weights it also recovers what the sparse fit left
(a few CG steps), so sparse int8 ends below the fp32 sparse weights' error (all 36 MiniLM
layers). Numbers: tools/bench/int8_quality.py, results/int8_quality*.json.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from spdy.passes.algo.quantize import _as_matrix, _check_scale, weight_scales
from spdy.passes.algo.reconstruct import (_SMALL, Hessian, Prepared, _inv_chol_upper,
                                          _one_thread, _threads, layer_error, prepare)
from spdy.qscheme import QMAX_W, QMIN_W

SPARSE_UPDATES = ("masked", "joint")


class GptqResult(NamedTuple):
    w_q: torch.Tensor  # int8, shape of W
    w_deq: torch.Tensor  # float32 w_q * scale (exact), shape of W
    err: float  # reconstruct.layer_error(W_ref, w_deq, H) with the undamped H


def _sweep(Wt: torch.Tensor, Mt: torch.Tensor | None, s: torch.Tensor, U: torch.Tensor,
           blocksize: int, joint: bool) -> torch.Tensor:
    """GPTQ's column sweep on the transpose ``Wt`` [K, out] (one contiguous row per input
    column, as ``reconstruct._obs``), in U's dtype. Returns the grid integers [K, out].

    ``Mt`` [K, out] is 1 for kept, 0 for pruned (None: dense). Wt is updated in place.
    """
    K = Wt.shape[0]
    Qt = torch.empty_like(Wt)
    for i1 in range(0, K, blocksize):
        i2 = min(i1 + blocksize, K)
        W1, Q1, U1 = Wt[i1:i2], Qt[i1:i2], U[i1:i2, i1:i2]
        E1 = torch.empty_like(W1)
        diag = U1.diagonal().tolist()
        with _one_thread():
            for i in range(i2 - i1):
                w, q, e = W1[i], Q1[i], E1[i]
                torch.div(w, s, out=q)
                q.round_().clamp_(QMIN_W, QMAX_W)
                if Mt is not None:
                    m = Mt[i1 + i]
                    q.mul_(m)
                    if not joint:  # a pruned weight carries no error of its own
                        w = w * m
                # e = (w - q * s) / d
                torch.addcmul(w, q, s, value=-1.0, out=e)
                e.div_(diag[i])
                if i + 1 < i2 - i1:
                    W1[i + 1:].addr_(U1[i, i + 1:], e, alpha=-1.0)
        if i2 < K:
            Wt[i2:].addmm_(U[i1:i2, i2:].T, E1, alpha=-1.0)
    return Qt


def _refine(Qt: torch.Tensor, Mt: torch.Tensor | None, s: torch.Tensor, Wref_t: torch.Tensor,
            H: torch.Tensor, passes: int, blocksize: int) -> None:
    """Coordinate descent on the int8 grid, in place on ``Qt`` [K, out] (grid integers).

    Minimises the true objective ``(s q - w_ref) H (s q - w_ref)^T`` of every row: column by
    column, each kept weight moves by the integer step that minimises it with all others
    fixed, ``d = -round(g / (s H_jj))`` with ``g`` the row's gradient at that column. Why:
    GPTQ is greedy and (with a mask) only approximately OBS; this local search fixes what it
    left, exactly respects the mask, and never increases the error. Gradients of the
    columns after the current block are brought up to date once per block (as GPTQ's lazy
    batch), and recomputed exactly at the start of each pass.
    """
    K = Qt.shape[0]
    hdiag = torch.diagonal(H).tolist()
    st = s[None, :]
    for _ in range(passes):
        Gt = H @ (Qt * st - Wref_t)  # [K, out]: row j is column j's gradient / 2 of every row
        changed = False
        for i1 in range(0, K, blocksize):
            i2 = min(i1 + blocksize, K)
            D1 = torch.zeros(i2 - i1, Qt.shape[1], dtype=Qt.dtype)
            with _one_thread():
                for i in range(i2 - i1):
                    j = i1 + i
                    if hdiag[j] <= 0.0:
                        continue  # a dead input: its weights do not change the outputs
                    d = D1[i]
                    torch.div(Gt[j], s, out=d)
                    d.div_(-hdiag[j]).round_()
                    q = Qt[j]
                    d.add_(q).clamp_(QMIN_W, QMAX_W).sub_(q)  # stay on the grid's range
                    if Mt is not None:
                        d.mul_(Mt[j])
                    if not bool(d.any()):
                        continue
                    changed = True
                    q.add_(d)
                    d.mul_(s)
                    if i + 1 < i2 - i1:
                        Gt[j + 1:i2].addr_(H[j, j + 1:i2], d)
            if i2 < K:
                Gt[i2:].addmm_(H[i1:i2, i2:].T, D1)
        if not changed:
            break


def gptq_quantize(W: torch.Tensor, H_or_prepared: torch.Tensor | Hessian | Prepared, scale,
                  keep: torch.Tensor | None = None, blocksize: int = 128, act_order: bool = False,
                  damp: float = 0.01, threads: int | None = None, W_ref: torch.Tensor | None = None,
                  sparse_update: str = "joint", refine: int = 2) -> GptqResult:
    """Quantize W [out, K] (or a conv weight [out, C, kh, kw]) to int8 with GPTQ.

    ``H_or_prepared``: ``X^T X / n`` [K, K], a ``Hessian``, or ``reconstruct.prepare(H)``
    (factor once, use for every option of the layer; its damp then wins over ``damp=``).
    ``scale``: per-output-channel scales [out] (``weight_scales``), or the name of a
    ``weight_scales`` method, computed here from W with ``diag(H)``.
    ``keep``: bool mask of W's shape: W is the sparse reconstruction of that mask; pruned
    weights come out exactly 0 and kept ones on their channel's grid (module doc).
    ``act_order``: quantize columns in order of decreasing ``diag(H)`` (GPTQ's option: the
    columns that matter most are quantized while the most freedom is left to compensate);
    results are returned in W's column order. It needs its own Cholesky factor (O(K^3)).
    ``W_ref``: the weights ``err`` is measured against (default W): pass the dense weights
    so options of one layer (dense int8, sparse int8 at each level) compare on one scale.
    ``refine``: passes of coordinate descent on the grid after the sweep (``_refine``),
    against ``W_ref``; each costs about one sweep. The result is the refined weights only if
    their error is not above the sweep's (float32 rounding could make a pass a hair worse).
    ``threads``: torch threads for the factorisation and error (default: 1 for small layers).
    """
    if sparse_update not in SPARSE_UPDATES:
        raise ValueError(f"unknown sparse_update {sparse_update!r}; choose one of {SPARSE_UPDATES}")
    if int(blocksize) < 1 or int(refine) < 0:
        raise ValueError(f"need blocksize >= 1 and refine >= 0, got {blocksize}, {refine}")
    W2 = _as_matrix(W)
    O, K = W2.shape
    prep = H_or_prepared.H if isinstance(H_or_prepared, Hessian) else H_or_prepared
    if not isinstance(prep, (Prepared, torch.Tensor)):
        raise ValueError("H_or_prepared must be H (a [K, K] tensor), a Hessian or a Prepared")
    H_shape = tuple((prep.H if isinstance(prep, Prepared) else prep).shape)
    if H_shape != (K, K):
        raise ValueError(f"H must be [{K}, {K}] for a weight with {K} inputs, got {H_shape}")
    ref = W2 if W_ref is None else _as_matrix(W_ref, "W_ref")
    if tuple(ref.shape) != (O, K):
        raise ValueError(f"W_ref must have W's shape {tuple(W.shape)}, got {tuple(W_ref.shape)}")
    m = None
    if keep is not None:
        if tuple(keep.shape) != tuple(W.shape):
            raise ValueError(f"keep must have W's shape {tuple(W.shape)}, got {tuple(keep.shape)}")
        m = keep.reshape(O, K).to(torch.bool)
    if threads is None and O * K + K * K < _SMALL:
        threads = 1
    with _threads(threads):
        if not isinstance(prep, Prepared):
            prep = prepare(prep, damp, threads)
        Wm = W2.to(torch.float32) if m is None else W2.to(torch.float32) * m
        if isinstance(scale, str):
            scale = weight_scales(Wm, scale, H_diag=torch.diagonal(prep.H))
        s = _check_scale(scale, O)
        Wt = Wm.T.contiguous()
        Mt = None if m is None else m.T.to(torch.float32).contiguous()
        if act_order:  # sweep a permuted copy, give the integers back in W's order
            perm = torch.argsort(torch.diagonal(prep.H), descending=True, stable=True)
            U = _inv_chol_upper(prep.Hd[perm][:, perm]).to(torch.float32)
            Pt = None if Mt is None else Mt[perm].contiguous()
            Qt = _sweep(Wt[perm].contiguous(), Pt, s, U, int(blocksize), sparse_update == "joint")
            Qt = Qt[torch.argsort(perm)]
        else:
            Qt = _sweep(Wt, Mt, s, prep.U.to(torch.float32), int(blocksize), sparse_update == "joint")
        ref64 = ref.to(torch.float64)
        H_err = prep.H if O * K + K * K < _SMALL else prep.H.to(torch.float32)
        q = Qt.T.contiguous()
        err = layer_error(ref64, q * s[:, None], H_err)
        if refine > 0:
            _refine(Qt, Mt, s, ref.to(torch.float32).T.contiguous(), prep.H.to(torch.float32),
                    int(refine), int(blocksize))
            qr = Qt.T.contiguous()
            err_r = layer_error(ref64, qr * s[:, None], H_err)
            if err_r <= err:
                q, err = qr, err_r
        w_deq = q * s[:, None]
    return GptqResult(q.to(torch.int8).reshape(W.shape), w_deq.reshape(W.shape), err)
