"""The int8 quantization scheme every int8 kernel, reference and fake-quant agrees on.

Weights: symmetric int8 per output channel, ``w_q`` in [-127, 127] and ``w_scale[o] > 0``
(float32), ``W ~= w_q * w_scale[:, None]``.
Activations: uint8, asymmetric.
  - "static": one (scale, zero_point) per tensor, calibrated ahead of time;
  - "dynamic": one (scale, zero_point) per row of the GEMM's activation matrix (a token of a
    transformer), computed at run time like onnxruntime's DynamicQuantizeLinear, per row:
    ``lo = min(0, min x)``, ``hi = max(0, max x)``, ``scale = (hi - lo) / 255`` (1 if 0),
    ``zp = clip(rint(-lo / scale), 0, 255)``.
Quantize: ``q = clip(rint(x * (1 / scale)) + zp, 0, 255)`` with ``1 / scale`` rounded to
float32 and rint rounding half to even: exactly torch.fake_quantize_per_tensor_affine, so the
torch model's fake-quant and the kernels see the same integers.
A layer: ``acc[m, o] = sum_k q[m, k] * w_q[o, k]`` (int32, exact: |acc| < 2^31 for K < 66000),
``y = (acc - zp * wsum[o]) * (x_scale * w_scale[o]) + bias[o] (+ residual)`` then the
activation; ``wsum[o] = sum_k w_q[o, k]`` is a compile-time constant (the zero point folded
into one correction per output channel). Padding of a conv input is the real value 0, i.e.
the zero point in the quantized domain.

Why u8 x s8: AVX-512 VNNI's ``vpdpbusd`` multiplies unsigned by signed bytes and sums 4
adjacent products into each int32 lane without saturation. The reduction therefore always
runs over groups of 4 consecutive inputs: weights are packed so that 4 inputs of one output
lie in one 32-bit lane, and sparse int8 blocks span 4 input columns (``bsrRx4``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QMIN_W, QMAX_W = -127, 127
QMIN_A, QMAX_A = 0, 255
MODES = ("static", "dynamic")


@dataclass(frozen=True)
class ActQuant:
    """How a layer quantizes its input activation."""
    mode: str = "static"          # "static" | "dynamic"
    scale: float = 1.0            # static only
    zero_point: int = 0           # static only

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"activation quantization mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "static":
            if not (np.isfinite(self.scale) and self.scale > 0):
                raise ValueError(f"activation scale must be a positive number, got {self.scale!r}")
            if not QMIN_A <= int(self.zero_point) <= QMAX_A:
                raise ValueError(f"activation zero point must be in [0, 255], got {self.zero_point!r}")

    def to_json(self) -> dict:
        return {"mode": self.mode, "scale": float(self.scale), "zero_point": int(self.zero_point)}

    @staticmethod
    def from_json(d: dict) -> "ActQuant":
        return ActQuant(d.get("mode", "static"), float(d.get("scale", 1.0)), int(d.get("zero_point", 0)))


def inv_scale(scale) -> np.ndarray:
    """float32(1 / scale), the factor quantization multiplies by (as torch's fake-quant does)."""
    return (np.float32(1.0) / np.asarray(scale, np.float32)).astype(np.float32)


def quantize_np(x: np.ndarray, scale, zero_point) -> np.ndarray:
    """uint8 q of x (float32) for a scale and zero point that broadcast against x."""
    x = np.asarray(x, np.float32)
    q = np.rint(x * inv_scale(scale)) + np.asarray(zero_point, np.float32)
    return np.clip(q, QMIN_A, QMAX_A).astype(np.uint8)


def dynamic_params_np(x2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale [M] float32, zero_point [M] int32) per row of x2d [M, K] (module doc)."""
    x2d = np.asarray(x2d, np.float32)
    lo = np.minimum(np.float32(0), x2d.min(axis=1))
    hi = np.maximum(np.float32(0), x2d.max(axis=1))
    scale = ((hi - lo) / np.float32(255)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    zp = np.clip(np.rint(-lo / scale), QMIN_A, QMAX_A).astype(np.int32)
    return scale, zp


def quantize_weight_np(w: np.ndarray, w_scale: np.ndarray) -> np.ndarray:
    """int8 w_q of a float weight [O, ...] that already lies on its grid (w = q * scale)."""
    w = np.asarray(w, np.float32)
    s = np.asarray(w_scale, np.float32).reshape((-1,) + (1,) * (w.ndim - 1))
    return np.clip(np.rint(w / s), QMIN_W, QMAX_W).astype(np.int8)


def requant_epilogue_np(acc: np.ndarray, zp, wsum: np.ndarray, x_scale, w_scale: np.ndarray) -> np.ndarray:
    """float32 ``(acc - zp * wsum) * (x_scale * w_scale)`` with the output channel last in acc.

    zp and x_scale are scalars (static) or [M, 1] columns (dynamic)."""
    corr = acc.astype(np.int64) - np.asarray(zp, np.int64) * wsum.astype(np.int64)
    return (corr.astype(np.float32) * (np.asarray(x_scale, np.float32) * np.asarray(w_scale, np.float32))
            ).astype(np.float32)

