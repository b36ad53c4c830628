"""The strategies without a search: the dense model (speedup 1), and a profile the user gave."""
from __future__ import annotations

from spdy.compiler.offered_formats import profile_has_int8
from spdy.compiler.strategy import Strategy
from spdy.pipelines import dense_pipeline, profile_pipeline


class DenseStrategy(Strategy):
    """The dense model with spdy's kernels; measured against PyTorch eager (and onnxruntime)."""
    name = report_mode = "dense"

    def run(self, ctx):
        o = ctx.options
        gm, _ = dense_pipeline(tune=o.tune, measure=o.measure is not False).run(None, ctx)
        return gm


class ProfileStrategy(Strategy):
    """A given per-layer profile: magnitude masks, int8 on the nearest grid point, no search;
    measured against the dense artifact."""
    name = report_mode = "profile"

    def run(self, ctx):
        o = ctx.options
        pipeline = profile_pipeline(tune=o.tune, measure=o.measure is not False, int8=profile_has_int8(o.profile))
        gm, _ = pipeline.run(None, ctx)
        return gm
