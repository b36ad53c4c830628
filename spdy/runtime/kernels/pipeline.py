"""The Relax pipeline spdy builds with: legalize with our matmul, softmax and layer norm, fuse, schedule, check, lower.

TVM's default CPU pipeline (relax/backend/cpu_generic) = library dispatch + legalize/fuse +
dataflow lowering + finalize. We keep its structure and insert, after fusion, the generic
schedule for every PrimFunc that is not one of our kernels and the serial-loop check that
fails the build naming any op left unscheduled.
"""
from __future__ import annotations

from .check import SERIAL_WORK_LIMIT, check_scheduled_pass
from .generic import schedule_generic_pass


class _Symbols:
    """Stand-in context for unique symbols when the pipeline runs without an EmitContext."""

    def __init__(self, target):
        self.target, self.tuner, self.stats, self._n = target, None, {}, 0

    def unique_symbol(self, base):
        self._n += 1
        return f"spdy_{base}_{self._n}"

    def count(self, key):
        self.stats[key] = self.stats.get(key, 0) + 1


def relax_pipeline(target, ctx=None, *, serial_limit: int = SERIAL_WORK_LIMIT):
    import tvm
    from tvm import relax
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
    from .matmul import make_matmul_legalizer
    from .pool import make_pool_legalizers
    from .rowwise import make_rowwise_legalizers
    from .select import choose_gemm_params

    ctx = ctx if ctx is not None else _Symbols(target)
    legalize = {"relax.matmul": make_matmul_legalizer(ctx, lambda spec: choose_gemm_params(ctx, spec)),
                **make_rowwise_legalizers(ctx), **make_pool_legalizers(ctx)}

    @tvm.transform.module_pass(opt_level=0, name="spdy.RelaxPipeline")
    def _pipeline(mod, _pctx):
        with target:
            seq = tvm.transform.Sequential(
                [relax.transform.DecomposeOpsForInference()]
                + cpu_generic.library_dispatch_passes(target)
                + [
                    relax.transform.LegalizeOps(customize_legalize_map=legalize),
                    relax.transform.AnnotateTIROpPattern(),
                    relax.transform.FoldConstant(),
                    relax.transform.FuseOps(),
                    relax.transform.FuseTIR(),
                    relax.transform.DeadCodeElimination(),
                    schedule_generic_pass(),
                    check_scheduled_pass(serial_limit),
                ]
                + cpu_generic.dataflow_lower_passes(target)
                + cpu_generic.finalize_passes(target)
            )
            return seq(mod)

    return _pipeline
