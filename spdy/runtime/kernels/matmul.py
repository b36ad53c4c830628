"""Legalize ``R.matmul`` (batched activation x activation, e.g. attention) to our GEMM.

Installed into LegalizeOps' custom map so matmuls never become TVM's unscheduled reduction.
A right operand without batch dims of its own (x[..., M, K] @ W[K, N], as in every Linear that
TVM's importer spells permute_dims + matmul) folds the left batch into M: broadcasting W to the
batch would be materialized by FoldConstant as a batch-sized copy of the weight (1.4 GB per
attention block of ViT-B/16). A constant W, or the transpose of one, is packed like a Linear
weight. Other batch dims are broadcast to a common shape and flattened. Anything else (1-D
operands, non-float32, symbolic shapes) falls back to TVM's legalization and the generic schedule.
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
        if all(d == 1 for d in sb[:-2]):
            # x @ W, W without a batch of its own: fold the batch into M
            w = constant_value(bb, b)
            spec = GemmSpec(M=Bt * M, N=N, K=K, a="act", b="packed" if w is not None else "act")
            p = choose(spec)
            av = bb.normalize(relax.op.reshape(a, [1, Bt * M, K])) if sa != (1, Bt * M, K) else a
            if w is not None:
                bv, sym = const(pack_b(w.reshape(1, K, N), 1, p.nr)), ctx.unique_symbol("matmul_const")
            else:
                bv = bb.normalize(relax.op.reshape(b, [1, K, N])) if sb != (1, K, N) else b
                sym = ctx.unique_symbol("matmul_shared")
            y = call_kernel(bb, make_gemm(spec, p, sym), sym, [av, bv], (1, Bt * M, N))
            if ctx is not None:
                ctx.count("matmul.dense")
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


def constant_value(bb, expr) -> np.ndarray | None:
    """The value of `expr` if it is a constant or a permute_dims of one (TVM's importer spells
    Linear as matmul(x, permute_dims(W))), else None."""
    import tvm
    from tvm import relax
    if isinstance(expr, relax.Var):
        try:
            expr = bb.lookup_binding(expr)
        except Exception:  # noqa: BLE001 - a function parameter has no binding
            return None
    if isinstance(expr, tvm.ir.expr.Constant) and isinstance(expr.value, tvm.runtime.Tensor):
        return expr.value.numpy()
    if isinstance(expr, relax.Call) and getattr(expr.op, "name", "") == "relax.permute_dims":
        inner = constant_value(bb, expr.args[0])
        if inner is None:
            return None
        axes = expr.attrs.axes
        return np.transpose(inner, None if axes is None else [int(i) for i in axes])
    return None
