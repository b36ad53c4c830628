"""Calibration of a layer's uint8 input quantization (spdy.qscheme): static or dynamic.

A static layer needs one ``(scale, zero_point)`` chosen ahead of time from calibration
inputs; the range it covers trades clipping (values beyond it) against rounding (a coarser
grid). ``ActObserver`` streams the inputs into a histogram and chooses the range by
"minmax" (nothing clipped), "percentile" (ignore the rarest tail), or "mse" (least
expected squared error, rounding + clipping, under the histogram: what onnxruntime's and
TensorRT's entropy/percentile calibrators approximate, simpler and robust).

The histogram has absolute, float-like bins: a positive float32 value's bin is its top
``1 + 8 + log2(bins_per_octave)`` bits (sign, exponent, leading mantissa bits), so every
bin spans the same *relative* width (1.1% with 64 per octave) and a bin never depends on
which values came before. Why: a linear histogram's range is set by the largest value, so
one outlier (common in transformer activations) squeezes all the others into its first
bins, and re-binning while the range grows smears counts. Here only a window of the top
``octaves`` octaves below the largest magnitude is kept (values below it fall into the
window's first bin, far under one quantization step): memory O(bins), and streaming over
batches gives exactly the histogram of one big batch. Positive and negative values have
one histogram each; exact zeros (ReLU outputs) are counted apart, since zero is exactly
representable and costs no error.

``static_error`` / ``dynamic_error`` give each mode's mean squared quantization error per
element, so the integrator can choose the mode per layer.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch

from spdy.errors import CalibrationError
from spdy.passes.algo.quantize import _FQ_ONE_THREAD, fake_quant_act_dynamic, fake_quant_act_static
from spdy.passes.algo.reconstruct import _one_thread
from spdy.qscheme import MODES, QMAX_A, QMIN_A, ActQuant

PARAM_METHODS = ("mse", "percentile", "minmax")
_MANT = 23  # float32 mantissa bits


def _params_from_range(lo: float, hi: float) -> tuple[float, int]:
    """``(scale, zp)`` covering ``[min(0, lo), max(0, hi)]``: qscheme's dynamic rule applied
    to one tensor, in float32 like ``dynamic_params_np``."""
    lo32 = np.minimum(np.float32(0), np.float32(lo))
    hi32 = np.maximum(np.float32(0), np.float32(hi))
    scale = np.float32((hi32 - lo32) / np.float32(QMAX_A))
    if not scale > 0:
        scale = np.float32(1)
    zp = int(np.clip(np.rint(-lo32 / scale), QMIN_A, QMAX_A))
    return float(scale), zp


class _SideHist:
    """Counts of one sign's magnitudes in the window of bins ``[bottom, bottom + n)``,
    where a bin id is a float32's bit pattern shifted right by ``shift``."""

    def __init__(self, n: int, shift: int):
        self.n, self.shift = n, shift
        self.counts = np.zeros(n, np.int64)
        self.top: int | None = None  # bin id of the largest magnitude seen

    @property
    def bottom(self) -> int:
        return self.top - self.n + 1

    def add(self, mag: torch.Tensor) -> None:
        """mag: positive float32 values."""
        if mag.numel() == 0:
            return
        ids = mag.view(torch.int32) >> self.shift
        top = int(ids.max())
        if self.top is None:
            self.top = top
        elif top > self.top:  # slide the window up: what falls out joins the first bin
            k = top - self.top
            if k >= self.n:
                total = self.counts.sum()
                self.counts[:] = 0
                self.counts[0] = total
            else:
                spill = self.counts[:k + 1].sum()
                self.counts[:-k] = self.counts[k:].copy()
                self.counts[-k:] = 0
                self.counts[0] = spill
            self.top = top
        idx = (ids - self.bottom).clamp_min_(0).to(torch.int64)
        self.counts += torch.bincount(idx, minlength=self.n).numpy()

    def bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower edges, upper edges, counts) of the non-empty bins, ascending, float64.

        The first bin also holds everything below the window: its lower edge is 0."""
        nz = np.nonzero(self.counts)[0]
        ids = (nz + self.bottom).astype(np.int64)
        lo = _id_value(ids, self.shift)
        hi = _id_value(ids + 1, self.shift)
        lo[nz == 0] = 0.0
        return lo, hi, self.counts[nz].astype(np.float64)


def _id_value(ids: np.ndarray, shift: int) -> np.ndarray:
    """Smallest float32 value of each bin id (float64); ids past float32's range clip to its max."""
    b = np.clip(ids << shift, 0, 0x7F7FFFFF).astype(np.int32)
    return b.view(np.float32).astype(np.float64)


class ActObserver:
    """Streaming statistics of one layer's input activations over calibration batches.

    ``update(x)`` per batch (any shape, float); then ``params(method)`` gives the static
    ``(scale, zero_point)`` and ``act_quant()`` an ``ActQuant`` in the observer's ``mode``.
    It also accumulates the exact error of dynamic per-row quantization (rows over the last
    axis: pass GEMM-shaped inputs, e.g. [tokens, features]) unless ``track_dynamic=False``,
    so one pass over the calibration set tells both modes' errors.
    """

    def __init__(self, mode: str = "static", bins_per_octave: int = 64, octaves: int = 24,
                 track_dynamic: bool = True):
        if mode not in MODES:
            raise ValueError(f"activation quantization mode must be one of {MODES}, got {mode!r}")
        if bins_per_octave < 1 or bins_per_octave & (bins_per_octave - 1) or bins_per_octave > 1 << 16:
            raise ValueError(f"bins_per_octave must be a power of two <= 65536, got {bins_per_octave}")
        if octaves < 1:
            raise ValueError(f"octaves must be >= 1, got {octaves}")
        self.mode = mode
        shift = _MANT - int(math.log2(bins_per_octave))
        n = octaves * bins_per_octave
        self._pos, self._neg = _SideHist(n, shift), _SideHist(n, shift)
        self.zeros = 0
        self.count = 0
        self.min, self.max = math.inf, -math.inf
        self.track_dynamic = track_dynamic
        self._dyn_sq = 0.0
        self._params: dict = {}  # (method, percentile) -> params, until the next update

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> "ActObserver":
        if not isinstance(x, torch.Tensor):
            raise CalibrationError(f"ActObserver.update takes a torch tensor, got {type(x).__name__}")
        x = x.detach().to(torch.float32)
        if x.numel() == 0:
            return self
        if not torch.isfinite(x).all():
            raise CalibrationError("layer inputs contain NaN or inf; calibrate on finite inputs")
        flat = x.reshape(-1)
        self._params.clear()
        with _one_thread(flat.numel() < _FQ_ONE_THREAD):
            mn, mx = torch.aminmax(flat)
            self.min, self.max = min(self.min, float(mn)), max(self.max, float(mx))
            self._pos.add(flat[flat > 0].contiguous())
            self._neg.add((-flat[flat < 0]).contiguous())
            self.zeros += int((flat == 0).sum())
            self.count += flat.numel()
            if self.track_dynamic:
                self._dyn_sq += _dynamic_sq(x)
        return self

    def _need_data(self) -> None:
        if self.count == 0:
            raise CalibrationError("no calibration inputs reached this layer's observer")

    def histogram(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower edges, upper edges, counts) of all non-empty bins over the real line,
        ascending; exact zeros are the bin [0, 0]."""
        self._need_data()
        nl, nh, nc = self._neg.bins() if self._neg.top is not None else (np.zeros(0),) * 3
        pl, ph, pc = self._pos.bins() if self._pos.top is not None else (np.zeros(0),) * 3
        lo = np.concatenate([-nh[::-1], [0.0], pl])
        hi = np.concatenate([-nl[::-1], [0.0], ph])
        c = np.concatenate([nc[::-1], [float(self.zeros)], pc])
        keep = c > 0
        return lo[keep], hi[keep], c[keep]

    def params(self, method: str = "mse", percentile: float = 99.99) -> tuple[float, int]:
        """Static ``(scale, zero_point)`` in the uint8 scheme; scale is a float32 value.

        Non-negative inputs always get zero point 0 (so all of 0..255 cover [0, hi]).
        "percentile": the range from the ``100 - p`` to the ``p`` percentile (bin edges,
        rounded outward, never beyond the observed min/max)."""
        self._need_data()
        key = (method, float(percentile) if method == "percentile" else None)
        if key not in self._params:
            self._params[key] = self._compute_params(method, percentile)
        return self._params[key]

    def _compute_params(self, method: str, percentile: float) -> tuple[float, int]:
        if method == "minmax":
            return _params_from_range(self.min, self.max)
        if method == "percentile":
            if not 0.0 < percentile <= 100.0:
                raise ValueError(f"percentile must be in (0, 100], got {percentile}")
            lo, hi = self._percentile_range(percentile)
            return _params_from_range(lo, hi)
        if method == "mse":
            return self._mse_params()
        raise ValueError(f"unknown calibration method {method!r}; choose one of {PARAM_METHODS}")

    def act_quant(self, mode: str | None = None, method: str = "mse",
                  percentile: float = 99.99) -> ActQuant:
        mode = self.mode if mode is None else mode
        if mode == "dynamic":
            return ActQuant("dynamic")
        scale, zp = self.params(method, percentile)
        return ActQuant("static", scale, zp)

    def _percentile_range(self, p: float) -> tuple[float, float]:
        lo_e, hi_e, c = self.histogram()
        tail = (1.0 - p / 100.0) * self.count
        above = np.cumsum(c[::-1])[::-1] - c  # count strictly above each bin
        below = np.cumsum(c) - c
        hi = hi_e[np.argmax(above <= tail)]  # first bin with at most `tail` values above it
        lo = lo_e[len(c) - 1 - np.argmax((below <= tail)[::-1])]
        return max(lo, self.min), min(hi, self.max)

    def expected_error(self, scale: float, zero_point: int) -> float:
        """Mean squared quantization error per element of static ``(scale, zero_point)``
        under the histogram (values uniform within a bin; exact zeros exact)."""
        self._need_data()
        s, zp = float(np.float32(scale)), int(zero_point)
        tot = 0.0
        for side, edge in ((self._pos, (QMAX_A - zp) * s), (self._neg, zp * s)):
            if side.top is not None:
                l, u, c = side.bins()
                tot += float(_side_errors(l, u, c, s, np.array([edge]))[0])
        return tot / self.count

    def _mse_params(self) -> tuple[float, int]:
        s_max, _ = _params_from_range(self.min, self.max)
        if self.min >= 0 or self.max <= 0:  # one-sided: one zero point uses every level
            zps = np.array([QMIN_A if self.min >= 0 else QMAX_A])
        else:
            zps = np.arange(QMIN_A, QMAX_A + 1)
        sides = [(side.bins() if side.top is not None else None) for side in (self._pos, self._neg)]

        def best_for(scales):
            """(scale, zp) of least error; ties go to the first (largest) scale."""
            errs, zp_of = [], []
            for s in scales:
                e = np.zeros(len(zps))
                for b, edge in ((sides[0], (QMAX_A - zps) * s), (sides[1], zps * s)):
                    if b is not None:
                        e += _side_errors(*b, s, edge)
                j = int(np.argmin(e))
                errs.append(e[j])
                zp_of.append(int(zps[j]))
            k = int(np.argmin(errs))
            return float(scales[k]), zp_of[k]

        # 12 octaves down from the minmax scale in 6% steps, then 1% steps around the best.
        # The error is not unimodal in the scale (the zero point moves with it): 12% coarse
        # steps missed a 2% better range on one MiniLM layer. Each candidate costs one pass
        # over the bins.
        s0, _ = best_for(s_max * 2.0 ** (-np.arange(0, 12 * 12 + 1) / 12))
        fine = s0 * 2.0 ** (np.arange(-6, 7) / 72)
        s1, zp1 = best_for(np.concatenate([[s0], fine[fine <= s_max]]))
        s32 = float(np.float32(s1))
        return (s32 if s32 > 0 else 1.0), zp1


def _round_integral(t: np.ndarray) -> np.ndarray:
    """``int_0^t (x - round(x))^2 dx`` (in grid units): 1/12 per whole step plus the part."""
    k = np.floor(t + 0.5)
    r = t - k
    return k / 12.0 + (r ** 3) / 3.0 + 1.0 / 24.0


def _side_errors(l: np.ndarray, u: np.ndarray, c: np.ndarray, s: float,
                 edges: np.ndarray) -> np.ndarray:
    """Total squared error of one sign's magnitudes (bins [l, u) with counts c, ascending)
    quantized on the grid ``s * Z`` and clipped at each of ``edges`` (>= 0): for every edge,
    rounding error of the part of each bin below it plus ``(v - edge)^2`` above it.

    Whole bins below / above an edge come from prefix / suffix sums (one O(bins) pass per
    scale, O(log bins) per edge); only the bin holding the edge is integrated apart.
    """
    w = u - l
    # rounding error of each whole bin: exact integral where the bin spans a visible part
    # of a step, centre value + width^2/12 where it is too narrow for the difference
    # of integrals to keep its digits
    narrow = w < s * 1e-3
    m = 0.5 * (l + u)
    dist = m / s - np.round(m / s)
    with np.errstate(divide="ignore", invalid="ignore"):
        wide_err = s ** 3 * (_round_integral(u / s) - _round_integral(l / s)) / np.where(w > 0, w, 1)
    rnd = c * np.where(narrow, s * s * (dist ** 2) + w * w / 12.0, wide_err)
    pre_r = np.concatenate([[0.0], np.cumsum(rnd)])  # rounding error of bins [0, j)
    c0 = np.concatenate([np.cumsum(c[::-1])[::-1], [0.0]])  # suffix sums from bin j on
    c1 = np.concatenate([np.cumsum((c * m)[::-1])[::-1], [0.0]])
    c2 = np.concatenate([np.cumsum((c * (m * m + w * w / 12.0))[::-1])[::-1], [0.0]])
    e = np.asarray(edges, np.float64)
    J = np.searchsorted(l, e, side="right") - 1  # bin whose lower edge is <= the edge
    valid = J >= 0
    Jc = np.maximum(J, 0)
    a, b = l[Jc], u[Jc]
    wj = np.where(b > a, b - a, 1.0)
    # the bin holding the edge: rounding below it, clipping above it (l[J] <= e by search)
    cut = c[Jc] * (s ** 3 * (_round_integral(e / s) - _round_integral(a / s))
                   + np.maximum(b - e, 0.0) ** 3 / 3.0) / wj
    part = np.where(e >= b, rnd[Jc], cut)
    si = np.where(valid, J + 1, 0)  # bins from si on lie wholly above the edge
    tail = c2[si] - 2 * e * c1[si] + e * e * c0[si]
    return np.where(valid, pre_r[Jc] + part, 0.0) + tail


def _dynamic_sq(x: torch.Tensor) -> float:
    """Sum of squared errors of dynamic per-row quantization (rows over the last axis)."""
    x = x.detach().to(torch.float32)
    if x.dim() == 0:
        x = x.reshape(1)
    return float(((fake_quant_act_dynamic(x) - x).double() ** 2).sum())


def static_error(obs: ActObserver, method: str = "mse", percentile: float = 99.99,
                 batches: Iterable[torch.Tensor] | None = None) -> float:
    """Mean squared error per element of static quantization with ``obs.params(method)``:
    exact on ``batches`` if given (the same calibration inputs), else the histogram's estimate."""
    scale, zp = obs.params(method, percentile)
    if batches is None:
        return obs.expected_error(scale, zp)
    tot, n = 0.0, 0
    with torch.no_grad():
        for x in batches:
            x = x.detach().to(torch.float32)
            tot += float(((fake_quant_act_static(x, scale, zp) - x).double() ** 2).sum())
            n += x.numel()
    if n == 0:
        raise CalibrationError("static_error got no calibration inputs")
    return tot / n


def dynamic_error(batches: Iterable[torch.Tensor] | ActObserver) -> float:
    """Mean squared error per element of dynamic per-row quantization (rows over the last
    axis) on the calibration inputs, or as an ``ActObserver`` accumulated it."""
    if isinstance(batches, ActObserver):
        if not batches.track_dynamic:
            raise ValueError("this observer did not track dynamic errors (track_dynamic=False)")
        batches._need_data()
        return batches._dyn_sq / batches.count
    tot, n = 0.0, 0
    for x in batches:
        if x.numel():
            tot += _dynamic_sq(x)
            n += x.numel()
    if n == 0:
        raise CalibrationError("dynamic_error got no calibration inputs")
    return tot / n
