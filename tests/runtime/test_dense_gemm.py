"""The GEMM template directly, over schedule parameters: every candidate the tuner may pick
must compute the same thing (tails in M, N and the k-unroll remainder)."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.runtime.kernels.gemm import (GemmParams, GemmSpec, buffer_shapes, candidate_params,
                                       effective_params, make_gemm, pack_a, pack_b)


def _run(spec, params):
    import tvm
    from ._dense_util import target
    p = effective_params(spec, params)
    rng = np.random.default_rng(0)
    G, M, N, K, Bt = spec.groups, spec.M, spec.N, spec.K, spec.batch
    a = rng.standard_normal((Bt, M, K) if spec.a == "act" else (G * M, K)).astype("float32")
    b = rng.standard_normal((Bt, G * K, N) if spec.b in ("act", "panel") else (K, N)).astype("float32")
    bias = rng.standard_normal(G * M if spec.bias == "m" else N).astype("float32")
    ref = np.zeros((Bt, G * M, N), "float32")
    for bi in range(Bt):
        for g in range(G):
            A = a[bi] if spec.a == "act" else a[g * M:(g + 1) * M]
            B = b[bi, g * K:(g + 1) * K] if spec.b in ("act", "panel") else b
            ref[bi, g * M:(g + 1) * M] = A @ B
    if spec.b == "panel":  # (Bt, G*K, N) -> (Bt, NB, G*K, NR), as im2col writes it
        nb = -(-N // p.nr)
        bp = np.zeros((Bt, G * K, nb * p.nr), "float32")
        bp[:, :, :N] = b
        bp = np.ascontiguousarray(bp.reshape(Bt, G * K, nb, p.nr).transpose(0, 2, 1, 3))
    else:
        bp = b if spec.b == "act" else pack_b(b[None], 1, p.nr)
    args = [a if spec.a == "act" else pack_a(a, G, p.mr), bp]
    if spec.bias != "none":
        args.append(bias)
        ref = ref + (bias[None, :, None] if spec.bias == "m" else bias[None, None, :])
    if spec.residual:
        r = rng.standard_normal(ref.shape).astype("float32")
        args.append(r)
        ref = ref + r
    if spec.activation == "relu":
        ref = np.maximum(ref, 0)
    out = np.zeros(buffer_shapes(spec, p)["C"], "float32")
    lib = tvm.tirx.build(make_gemm(spec, p, "main"), target())
    ts = [tvm.runtime.tensor(x) for x in args + [out]]
    lib["main"](*ts)
    return ts[-1].numpy(), ref


@pytest.mark.parametrize("spec", [
    GemmSpec(M=11, N=45, K=19, a="act", b="packed", bias="n", residual=True, activation="relu"),
    GemmSpec(M=9, N=23, K=7, groups=3, batch=2, a="const", b="act", bias="m"),
    GemmSpec(M=5, N=40, K=17, batch=3, a="act", b="act"),
    GemmSpec(M=6, N=37, K=9, groups=2, batch=2, a="const", b="panel", bias="m", activation="relu"),
    GemmSpec(M=48, N=23, K=13, groups=2, a="const", b="act", bias="m", residual=True, activation="relu"),
])
def test_all_candidates_agree(spec):
    cands = candidate_params(spec)[:3] + [GemmParams(mr=3, nr=16, ku=4), GemmParams(mr=2, nr=8, order="mn", ku=3),
                                          GemmParams(mr=4, nr=3, vec="m")]
    for p in cands:
        got, ref = _run(spec, p)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4, err_msg=str(p))


def test_signature_is_stable_and_distinct():
    a = GemmSpec(M=4, N=8, K=16)
    assert a.signature() == GemmSpec(M=4, N=8, K=16).signature()
    assert a.signature() != GemmSpec(M=4, N=8, K=16, activation="relu").signature()


def test_defaults_take_channel_lanes_for_wide_conv_weights():
    """Whole 16-lane vectors of output channels per group: channels as vector lanes,
    weights-block-major order; depthwise (1 per group) and 24 channels keep pixel lanes."""
    conv = (64, 3, 3, 1, 1, 56, 56, 58, 58, 1, 1)
    wide = candidate_params(GemmSpec(M=64, N=56 * 56, K=576, a="const", b="direct", conv=conv))[0]
    assert (wide.vec, wide.order, wide.mr, wide.nr) == ("m", "mn", 32, 7)
    dw = candidate_params(GemmSpec(M=1, N=56 * 56, K=9, groups=64, a="const", b="direct",
                                   conv=(1,) + conv[1:]))[0]
    assert dw.vec == "n"
    few = candidate_params(GemmSpec(M=16, N=49, K=512, a="const", b="act"))[0]
    assert (few.vec, few.mr, few.nr) == ("m", 16, 7)
    odd = candidate_params(GemmSpec(M=24, N=28 * 28, K=216, a="const", b="direct", conv=(24, 3, 3, 1, 1, 28, 28, 30, 30, 1, 1)))
    assert all(p.vec == "n" for p in odd)
    mid = candidate_params(GemmSpec(M=48, N=49, K=512, a="const", b="act"))[0]
    assert (mid.vec, mid.mr) == ("m", 16)
