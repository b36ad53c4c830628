"""relax_pipeline: ops from TVM's torch frontend get real schedules, batched matmul goes to
our GEMM, numerics match torch, and the serial-loop check fails the build naming the op."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ._dense_util import target


class Attention(nn.Module):
    def __init__(self, d=24, h=3):
        super().__init__()
        self.h, self.ln = h, nn.LayerNorm(d)

    def forward(self, q, k, v):
        B, S, D = q.shape
        sh = lambda t: t.reshape(B, S, self.h, D // self.h).permute(0, 2, 1, 3)  # noqa: E731
        att = torch.softmax(sh(q) @ sh(k).transpose(-1, -2) * 0.25, dim=-1)
        o = (att @ sh(v)).permute(0, 2, 1, 3).reshape(B, S, D)
        return nn.functional.gelu(self.ln(o + q)) * 2.0


class Pools(nn.Module):
    def forward(self, x):
        a = nn.functional.max_pool2d(x, 3, 2, 1)
        b = nn.functional.avg_pool2d(x, 2, 2)
        c = nn.functional.adaptive_avg_pool2d(torch.relu(x), 1)
        return a.sum() + b.mean() + c.flatten(1)


def _build(model, inputs, serial_limit=None):
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.kernels import relax_pipeline
    tgt = target()
    ep = torch.export.export(model, inputs)
    mod = from_exported_program(ep, run_ep_decomposition=False)
    ctx = EmitContext(target=tgt)
    kw = {} if serial_limit is None else {"serial_limit": serial_limit}
    ex = tvm.compile(mod, tgt, relax_pipeline=relax_pipeline(tgt, ctx, **kw))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(i.numpy()) for i in inputs])
    return (out[0] if not hasattr(out, "numpy") else out).numpy(), ctx


def test_attention_block_matches_torch_and_uses_our_matmul():
    torch.manual_seed(0)
    m = Attention().eval()
    inputs = tuple(torch.randn(2, 10, 24) for _ in range(3))
    got, ctx = _build(m, inputs)
    with torch.no_grad():
        ref = m(*inputs).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert ctx.stats.get("matmul.dense") == 2


class SeqFirstProjection(nn.Module):
    """x[S, B, D] @ W^T with W a parameter, the way nn.MultiheadAttention projects: TVM's
    importer spells it matmul(x, permute_dims(W)) with a batch of S on the left."""

    def __init__(self, d=24, n=40):
        super().__init__()
        self.w, self.v = nn.Parameter(torch.randn(n, d)), nn.Parameter(torch.randn(n, n))

    def forward(self, x):
        return nn.functional.linear(x, self.w) @ self.v


def test_matmul_with_unbatched_weight_folds_batch_into_m():
    """The weight is packed once, never broadcast to the batch (FoldConstant would materialize
    a batch-sized copy of it: 1.4 GB per ViT-B/16 attention block)."""
    import tvm
    from tvm.ir.instrument import pass_instrument
    torch.manual_seed(0)
    m = SeqFirstProjection().eval()
    x = torch.randn(50, 1, 24)
    biggest = []

    @pass_instrument
    class LargestConstant:
        def run_after_pass(self, mod, info):
            if info.name == "FoldConstant":
                sizes = []
                tvm.relax.analysis.post_order_visit(
                    mod["main"], lambda e: sizes.append(int(np.prod(e.value.shape)))
                    if isinstance(getattr(e, "value", None), tvm.runtime.Tensor) else None)
                biggest.append(max(sizes, default=0))

    with tvm.transform.PassContext(instruments=[LargestConstant()]):
        got, ctx = _build(m, (x,))
    with torch.no_grad():
        np.testing.assert_allclose(got, m(x).numpy(), rtol=1e-4, atol=1e-3)
    assert ctx.stats.get("matmul.dense") == 2
    assert biggest and max(biggest) <= 40 * 40 + 64 * 40   # the weights (packed), not 50 copies


def test_pooling_and_reductions_match_torch():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 13, 11)
    got, _ = _build(Pools().eval(), (x,))
    np.testing.assert_allclose(got, Pools()(x).numpy(), rtol=1e-4, atol=1e-4)


def test_generic_schedule_parallelizes_and_vectorizes():
    import tvm
    from tvm import relax, tirx
    from spdy.runtime.kernels.check import serial_work
    from spdy.runtime.kernels.generic import schedule_generic
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([64, 256], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.nn.softmax(relax.op.add(x, x), axis=-1)))
        bb.emit_func_output(out)
    mod = relax.transform.LegalizeOps()(bb.get())
    funcs = [f for f in mod.functions.values() if isinstance(f, tirx.PrimFunc)]
    assert any(serial_work(f.body) > 1 << 14 for f in funcs)  # TVM's legalization: serial
    for f in funcs:
        assert serial_work(schedule_generic(f).body) <= 64


def test_check_fails_build_naming_unscheduled_op():
    """A kernel the generic scheduler leaves alone (marked as ours) but written serially."""
    from spdy.runtime.kernels import UnscheduledOpError
    from spdy.runtime.kernels.relax_util import call_kernel
    from spdy.runtime.kernels.tvmscript import parse_prim_func
    from ._dense_util import build_and_run
    serial = parse_prim_func('''
@T.prim_func
def main(X: T.Buffer((256, 256), "float32"), Y: T.Buffer((256, 256), "float32")):
    T.func_attr({"global_symbol": "slow_copy_op", "tir.noalias": True, "spdy.kernel": "test"})
    for i in range(256):
        for j in range(256):
            Y[i, j] = X[i, j]
''')
    x = np.ones((256, 256), "float32")
    with pytest.raises(Exception, match="slow_copy_op") as ei:
        build_and_run([x], lambda bb, vs, ctx: call_kernel(bb, serial, "slow_copy_op", [vs[0]], (256, 256)))
    assert "unscheduled" in str(ei.value)


def test_check_scheduled_on_raw_legalized_module():
    from tvm import relax
    from spdy.runtime.kernels import UnscheduledOpError, check_scheduled
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([128, 256], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.nn.layer_norm(
                x, relax.const(np.ones(256, "float32")), relax.const(np.zeros(256, "float32")), [-1])))
        bb.emit_func_output(out)
    mod = relax.transform.LegalizeOps()(bb.get())
    with pytest.raises(UnscheduledOpError, match="layer_norm"):
        check_scheduled(mod)
