"""Integer numpy reference of an int8 Linear layer (spdy/qscheme.py's scheme) and a kernel runner."""
from __future__ import annotations

import numpy as np

from spdy.ir.ops import ACTIVATION_FNS
from spdy.qscheme import ActQuant, dynamic_params_np, quantize_np, requant_epilogue_np

STATIC = ActQuant("static", 0.03, 131)
DYNAMIC = ActQuant("dynamic")


def quantized(x2d: np.ndarray, act: ActQuant):
    """(q uint8 [M, K], scale, zero point) as the layer quantizes x; scale/zp are [M, 1] when dynamic."""
    if act.mode == "static":
        return quantize_np(x2d, act.scale, act.zero_point), np.float32(act.scale), int(act.zero_point)
    s, z = dynamic_params_np(x2d)
    return quantize_np(x2d, s[:, None], z[:, None]), s[:, None], z[:, None]


def accumulator(x2d, w_q, act) -> np.ndarray:
    """acc[m, o] = sum_k q[m, k] * w_q[o, k], exact (int64)."""
    q, _, _ = quantized(x2d, act)
    return q.astype(np.int64) @ np.asarray(w_q, np.int64).T


def linear_ref(x2d, w_q, w_scale, act, bias=None, residual=None, activation="none") -> np.ndarray:
    """float32 y = act((acc - zp*wsum) * (x_scale*w_scale) + bias + residual)."""
    import torch
    _, s, z = quantized(x2d, act)
    y = requant_epilogue_np(accumulator(x2d, w_q, act), z, np.asarray(w_q, np.int64).sum(axis=1), s, w_scale)
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    if residual is not None:
        y = y + residual
    t = torch.tensor(np.asarray(y, np.float32))
    return (t if activation == "none" else ACTIVATION_FNS[activation](t)).numpy()


def assert_close(got, want):
    """float32 agreement to 1e-5 relative (of the output's scale: values near 0 cancel terms)."""
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def random_weight(rng, n, k, *, fmt="dense", density=0.4, zero_block_rows=0):
    """int8 [n, k] in [-127, 127]; sparse formats: random R x 4 blocks kept with `density`,
    the first `zero_block_rows` block rows empty."""
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    if fmt == "dense":
        return w
    from spdy.runtime.int8.sparse_linear import block_rows
    r = block_rows(fmt)
    nbr, k4 = -(-n // r), -(-k // 4)
    keep = rng.random((nbr, k4)) < density
    keep[:zero_block_rows] = False
    mask = np.repeat(np.repeat(keep, r, 0), 4, 1)[:n, :k]
    return (w * mask).astype(np.int8)


def target(mcpu: str | None = None):
    import tvm
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu or tvm.target.codegen.llvm_get_system_cpu(),
                              "num-cores": 2})


def host_has(cpuinfo_flag: str) -> bool:
    """Whether this machine's CPU has a /proc/cpuinfo flag (to run code built for another mcpu)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(ln.startswith("flags") and cpuinfo_flag in ln.split() for ln in f)
    except OSError:
        return False


def run(layer, params, x2d: np.ndarray, residual=None, tgt=None) -> np.ndarray:
    """Build the layer's kernel (no Relax) for tgt and run it on x2d."""
    import tvm
    k = layer.kernel(params, "main")
    args = [x2d, *k.consts] + ([residual] if residual is not None else [])
    out = tvm.runtime.tensor(np.zeros(k.out_shape, k.out_dtype))
    tvm.tirx.build(k.func, tgt or target())["main"](*[tvm.runtime.tensor(np.ascontiguousarray(a)) for a in args], out)
    return out.numpy()
