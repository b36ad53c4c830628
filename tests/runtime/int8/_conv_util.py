"""Build and run one int8 conv layer's kernels directly (no Relax), for fast kernel tests."""
from __future__ import annotations

import numpy as np

from spdy.qscheme import ActQuant

from ._conv_ref import act_params, int8_conv_ref

STATIC = ActQuant("static", 0.05, 17)
DYNAMIC = ActQuant("dynamic")


def target(mcpu: str | None = None):
    import tvm
    return tvm.target.Target({"kind": "llvm", "mcpu": mcpu or tvm.target.codegen.llvm_get_system_cpu(),
                              "num-cores": 2})


def host_has(cpuinfo_flag: str) -> bool:
    """Whether this machine's CPU has a feature (Linux /proc/cpuinfo flag, e.g. "avx_vnni"): to
    run code built for another mcpu than the host's."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(ln.startswith("flags") and cpuinfo_flag in ln.split() for ln in f)
    except OSError:
        return False


_BUILT: dict = {}


def build(src: str, tgt):
    """The built "main" of a kernel source; pack and min/max kernels repeat across tests."""
    import tvm
    from spdy.runtime.int8.conv_emit import parse_kernel
    key = (src, str(tgt))
    if key not in _BUILT:
        _BUILT[key] = tvm.tirx.build(parse_kernel(src), tgt)
    return _BUILT[key]["main"]


def run_layer(layer, p, x: np.ndarray, residual: np.ndarray | None, tgt) -> np.ndarray:
    """Output of the layer's (min/max,) pack and conv kernels built for tgt, on input x."""
    import tvm
    from spdy.runtime.int8.conv_pack import qparams_source

    def t(a):
        return tvm.runtime.tensor(np.ascontiguousarray(a))
    g = layer.g
    pre = []
    if layer.act.mode == "dynamic":
        qp = t(np.zeros(3, np.float32))
        build(qparams_source(x.size), tgt)(t(x.reshape(-1)), qp)
        pre.append(qp)
    planes = t(np.zeros(g.plane_words, np.int32))
    build(layer.pack_source(), tgt)(t(x), *pre, planes)
    args = [planes, *pre, *[t(c) for c in layer.conv_consts(p)]]
    if residual is not None:
        args.append(t(residual))
    y = t(np.full((g.n, g.o, g.oh, g.ow), np.nan, np.float32))
    build(layer.conv_source(p), tgt)(*args, y)
    return y.numpy()


def random_layer(shape, w_shape, *, groups=1, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), bias=True,
                 residual=False, activation="none", act=STATIC, fmt="dense", sparsity=0.0, seed=0,
                 zero_rows=0, tgt=None, threads=1):
    """(layer, x, residual, reference output) for random data; the weight is masked to `fmt` at
    `sparsity` and its first `zero_rows` output channels zeroed (empty block rows); `threads`:
    the workers an AMX kernel splits its tasks over."""
    from spdy.runtime.int8.conv_blocks import block_mask_np
    from spdy.runtime.int8.conv_emit import int8_conv_layer
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    w_q = rng.integers(-127, 128, w_shape).astype(np.int8)
    if fmt != "dense" and sparsity > 0:
        w_q = (w_q * block_mask_np(w_q, fmt, sparsity)).astype(np.int8)
    w_q[:zero_rows] = 0
    w_scale = (rng.random(w_shape[0]) * 0.01 + 0.005).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    layer = int8_conv_layer(shape, w_q, w_scale, b, stride=stride, padding=padding, dilation=dilation,
                            groups=groups, act=act, fmt=fmt, activation=activation, has_residual=residual,
                            target=tgt if tgt is not None else target(), num_threads=threads)
    g = layer.g
    r = rng.standard_normal((g.n, g.o, g.oh, g.ow)).astype(np.float32) if residual else None
    ref = int8_conv_ref(x, w_q, w_scale, b, r, act, stride=g.stride, padding=g.padding, dilation=g.dilation,
                        groups=groups, activation=activation)
    return layer, x, r, ref


def assert_close(got: np.ndarray, ref: np.ndarray, layer, x: np.ndarray) -> None:
    """Equal up to the fp32 epilogue's rounding, and closer than a quarter of one accumulator
    unit (x_scale * w_scale[o]) everywhere: an integer off by one fails."""
    assert got.shape == ref.shape
    assert not np.isnan(got).any(), "some outputs were never written"
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    unit = np.float32(act_params(x, layer.act)[0]) * layer.w_scale
    assert np.all(np.abs(got - ref) < 0.25 * unit[None, :, None, None])
