"""Legalize ``R.matmul`` (batched activation x activation, e.g. attention) to our GEMM.

Installed into LegalizeOps' custom map so matmuls never become TVM's unscheduled reduction.
Batch dims are broadcast to a common shape and flattened; a constant right operand is packed
like a Linear weight. Anything else (1-D operands, non-float32, symbolic shapes) falls back to
TVM's legalization and the generic schedule.
"""
from __future__ import annotations

import numpy as np

from .gemm import GemmSpec, make_gemm, pack_b
from .relax_util import call_kernel, const, expr_type, static_shape_or_none


def make_matmul_legalizer(ctx, choose):
    """(bb, call) -> Expr for LegalizeOps; ``choose(spec)`` returns GemmParams."""
    import tvm
    from tvm import relax
    default = tvm.ir.Op.get("relax.matmul").get_attr("FLegalize")

    def legalize(bb, call):
        a, b = call.args
        sa, sb = static_shape_or_none(a), static_shape_or_none(b)
        if (sa is None or sb is None or len(sa) < 2 or len(sb) < 2
                or expr_type(a).dtype != "float32" or expr_type(b).dtype != "float32"):
            return default(bb, call)
        M, K = sa[-2:]
        K2, N = sb[-2:]
        batch_shape = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
        Bt = int(np.prod(batch_shape)) if batch_shape else 1
        out_shape = batch_shape + (M, N)
        if isinstance(b, tvm.ir.expr.Constant) and len(sb) == 2:
            # x @ W with a constant W: fold batch into M and pack W like a Linear weight
            spec = GemmSpec(M=Bt * M, N=N, K=K, a="act", b="packed")
            p = choose(spec)
            av = bb.normalize(relax.op.reshape(a, [1, Bt * M, K])) if sa != (1, Bt * M, K) else a
            bp = const(pack_b(b.value.numpy()[None], 1, p.nr))
            sym = ctx.unique_symbol("matmul_const")
            y = call_kernel(bb, make_gemm(spec, p, sym), sym, [av, bp], (1, Bt * M, N))
            return relax.op.reshape(y, list(out_shape))
        spec = GemmSpec(M=M, N=N, K=K, batch=Bt, a="act", b="act")
        p = choose(spec)

        def prep(x, s, tail):
            if s[:-2] != batch_shape:
                x = bb.normalize(relax.op.broadcast_to(x, list(batch_shape + tail)))
            if tuple(batch_shape + tail) != (Bt,) + tail or len(s) != 3:
                x = bb.normalize(relax.op.reshape(x, [Bt, *tail]))
            return x
        av, bv = prep(a, sa, (M, K)), prep(b, sb, (K, N))
        sym = ctx.unique_symbol("bmm")
        y = call_kernel(bb, make_gemm(spec, p, sym), sym, [av, bv], (Bt, M, N))
        if ctx is not None:
            ctx.count("matmul.dense")
        return relax.op.reshape(y, list(out_shape))

    return legalize
