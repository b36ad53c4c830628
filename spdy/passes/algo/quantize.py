"""Round-to-nearest int8 quantization and the torch fake-quant of spdy's int8 scheme.

The scheme itself (ranges, rounding rule, dynamic per-row parameters) is defined once in
``spdy.qscheme``; this module is its torch side. Two consumers need it:
- weight reconstruction (GPTQ, ``gptq.py``) needs per-channel scales and a rounding that
  gives back exactly the integers the kernels will hold;
- the stitched calibration model must see activation quantization (DESIGN.md 4.9), or the
  search trusts int8 options more than it should. The fake-quant here therefore reproduces
  ``qscheme.quantize_np`` / ``dynamic_params_np`` bit for bit (tests check it on random
  inputs, exact ties, huge values and all-zero rows), so torch sees the integers the kernels see.
"""
from __future__ import annotations

import torch

from spdy.passes.algo.reconstruct import _SMALL, _one_thread
from spdy.qscheme import QMAX_A, QMAX_W, QMIN_A, QMIN_W

WEIGHT_SCALE_METHODS = ("absmax", "mse")
_F32_TINY = float(torch.finfo(torch.float32).tiny)
# below this many elements the element-wise passes run on one thread: measured on this 2-core
# machine with other jobs running, a [16, 4096] fake-quant took 32 ms on 2 threads, 3.5 on 1
_FQ_ONE_THREAD = 1 << 21


def _as_matrix(W: torch.Tensor, what: str = "W") -> torch.Tensor:
    if not isinstance(W, torch.Tensor) or W.dim() < 2:
        raise ValueError(f"{what} must be a weight tensor [out, ...] with at least 2 dims, "
                         f"got {getattr(W, 'shape', type(W))}")
    W2 = W.detach().reshape(W.shape[0], -1)
    if not torch.isfinite(W2).all():
        raise ValueError(f"{what} holds NaN or inf; quantize a finite weight")
    return W2


def _check_scale(scale, out: int) -> torch.Tensor:
    s = torch.as_tensor(scale).detach().to(torch.float32).reshape(-1)
    if s.numel() != out:
        raise ValueError(f"scale must have one entry per output channel ({out}), got {s.numel()}")
    if not (torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError("weight scales must be finite and > 0; compute them with weight_scales()")
    return s


def _round_w(W2: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Integer grid values (float32) of W2 [O, K] for per-row scales s [O]: the rule of
    ``qscheme.quantize_weight_np`` (divide, round half to even, clip)."""
    return torch.clamp(torch.round(W2.to(torch.float32) / s[:, None]), QMIN_W, QMAX_W)


def weight_scales(W2: torch.Tensor, method: str = "absmax", H_diag: torch.Tensor | None = None,
                  grid: int = 100, maxshrink: float = 0.2) -> torch.Tensor:
    """Symmetric per-output-channel scales [O] (float32) for int8 weights in [-127, 127].

    "absmax": ``max|w| / 127``: no weight is clipped.
    "mse": for each channel the shrink factor ``p = 1 - i / grid`` (i < maxshrink * grid) of
    absmax minimising ``sum_k h_k (w_k - q_k)^2`` (h = ``H_diag`` or 1), as GPTQ's
    ``Quantizer(mse=True)``: clipping a few large weights buys a finer grid for all others,
    and ``diag(H)`` (the input energy of each column) says which errors the outputs feel.
    Rows whose absmax is 0 (or so small that 1/scale would overflow float32) get scale 1:
    any positive scale represents them exactly (as 0), and 1 is safe in every epilogue.
    """
    if method not in WEIGHT_SCALE_METHODS:
        raise ValueError(f"unknown weight scale method {method!r}; choose one of {WEIGHT_SCALE_METHODS}")
    W2 = _as_matrix(W2, "W2")
    Wf = W2.to(torch.float32)
    O, K = Wf.shape
    amax = Wf.abs().amax(dim=1).to(torch.float64)

    def scales_for(p: float) -> torch.Tensor:
        s = (amax * p / QMAX_W).to(torch.float32)
        return torch.where(s >= _F32_TINY * QMAX_W, s, torch.ones_like(s))

    best_s = scales_for(1.0)
    if method == "absmax":
        return best_s
    if grid < 1 or not (0.0 <= maxshrink < 1.0):
        raise ValueError(f"need grid >= 1 and 0 <= maxshrink < 1, got grid={grid}, maxshrink={maxshrink}")
    if H_diag is None:
        h = torch.ones(K, dtype=torch.float32)
    else:
        h = torch.as_tensor(H_diag).detach().reshape(-1).to(torch.float32)
        if h.numel() != K:
            raise ValueError(f"H_diag must have one entry per input column ({K}), got {h.numel()}")
        h = h.clamp_min(0.0)

    buf = torch.empty_like(Wf)

    def error(s: torch.Tensor) -> torch.Tensor:
        # float32 passes over one buffer (the search's cost is these [O, K] sweeps); the
        # per-row sums are of non-negative terms, so float32 loses no comparison that matters
        torch.div(Wf, s[:, None], out=buf)
        buf.round_().clamp_(QMIN_W, QMAX_W).mul_(s[:, None]).sub_(Wf).square_()
        return buf @ h

    with _one_thread(Wf.numel() < _SMALL):
        best_err = error(best_s)
        for i in range(1, int(maxshrink * grid)):
            s = scales_for(1.0 - i / grid)
            e = error(s)
            better = e < best_err
            best_s = torch.where(better, s, best_s)
            best_err = torch.where(better, e, best_err)
    return best_s


def quantize_rtn(W: torch.Tensor, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """Round to nearest on the per-channel grid: ``(w_q int8, w_deq float32)``, shapes of W.

    ``w_deq == w_q * scale`` exactly in float32, so ``qscheme.quantize_weight_np(w_deq,
    scale)`` gives ``w_q`` back (|w_q| <= 127 keeps the division's error far below 1/2).
    """
    W2 = _as_matrix(W)
    s = _check_scale(scale, W2.shape[0])
    q = _round_w(W2, s)
    return q.to(torch.int8).reshape(W.shape), (q * s[:, None]).reshape(W.shape)


def _as_f32(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch tensor, got {type(x).__name__}")
    return x.detach().to(torch.float32)


def _small(x: torch.Tensor) -> bool:
    """Run x's element-wise passes on one thread? (Never decided inside a trace, where sizes
    are symbolic and the thread count does not enter the graph.)"""
    return not torch.jit.is_tracing() and x.numel() < _FQ_ONE_THREAD


def _fq_rows(x2: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
    """``(clip(rint(x * float32(1/scale)) + zp, 0, 255) - zp) * scale`` in float32, the
    operations of ``qscheme.quantize_np`` one by one (each is correctly rounded, so the
    results are the same bits). scale/zp broadcast against x2 (float32 tensors).

    Why not torch.fake_quantize_per_tensor_affine, which computes the same rule: its CPU
    kernel took 13.5 ms on a [256, 4096] tensor against 2.4 ms for these five passes."""
    inv = torch.ones_like(scale) / scale  # a true division (python `1 / t` is reciprocal * 1)
    with _one_thread(_small(x2)):
        return torch.mul(x2, inv).round_().add_(zp).clamp_(QMIN_A, QMAX_A).sub_(zp).mul_(scale)


@torch.no_grad()
def fake_quant_act_static(x: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    """``(q - zp) * scale`` (float32, shape of x) with ``q = qscheme.quantize_np(x, scale, zp)``,
    bit for bit, also for values whose product with 1/scale overflows. The scale is rounded
    to float32 first, as the kernels hold it."""
    s = torch.tensor(float(scale), dtype=torch.float32)
    if not (float(s) > 0 and torch.isfinite(s)):
        raise ValueError(f"activation scale must be a positive finite number, got {scale!r}")
    zp = int(zp)
    if not QMIN_A <= zp <= QMAX_A:
        raise ValueError(f"activation zero point must be in [0, 255], got {zp}")
    return _fq_rows(_as_f32(x), s, torch.tensor(float(zp), dtype=torch.float32))


@torch.no_grad()
def dynamic_params(x2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``(scale [M] float32, zero_point [M] int32)`` of x2d [M, K]: torch twin of
    ``qscheme.dynamic_params_np`` with the same float32 operations in the same order."""
    x2d = _as_f32(x2d)
    if not torch.jit.is_tracing() and x2d.shape[-1] == 0:
        raise ValueError("dynamic quantization needs rows with at least one element")
    with _one_thread(_small(x2d)):
        mn, mx = torch.aminmax(x2d, dim=-1)
    # python-number operands (exact in float32) rather than torch.tensor constants, so the
    # function traces cleanly into an exported graph
    lo, hi = mn.clamp(max=0.0), mx.clamp(min=0.0)
    scale = (hi - lo) / float(QMAX_A)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zp = torch.clamp(torch.round(-lo / scale), QMIN_A, QMAX_A).to(torch.int32)
    return scale, zp


@torch.no_grad()
def fake_quant_act_dynamic(x: torch.Tensor) -> torch.Tensor:
    """Dynamic per-row fake-quant over the last axis (a row = one GEMM input row, e.g. one
    token): each row's ``(q - zp) * scale`` with ``dynamic_params``; float32, shape of x."""
    x = _as_f32(x)
    if x.dim() == 0:
        raise ValueError("dynamic quantization needs at least a 1-d tensor (rows over the last axis)")
    x2 = x.reshape(-1, x.shape[-1])
    if not torch.jit.is_tracing() and x2.shape[0] == 0:
        return x.clone()
    scale, zp = dynamic_params(x2)
    return _fq_rows(x2, scale[:, None], zp.to(torch.float32)[:, None]).reshape(x.shape)
