"""Named pipelines every compile is assembled from.

The front end, `trace -> canonicalize -> fuse-epilogues`, turns a torch model into spdy's
canonical graph (layer ops with fused epilogues); every compile mode, the structured
compile's child builds and the benchmarks start with it, so it is written once, here.
"""
from __future__ import annotations

from spdy.passes.base import Pass
from spdy.passes.canonicalize import CanonicalizePass
from spdy.passes.fuse_epilogues import FuseEpiloguesPass
from spdy.passes.pipeline import Pipeline
from spdy.passes.trace import TracePass


def frontend_passes() -> list[Pass]:
    """trace -> canonicalize -> fuse-epilogues, as fresh pass objects."""
    return [TracePass(), CanonicalizePass(), FuseEpiloguesPass()]


def frontend_pipeline(*then: Pass) -> Pipeline:
    """The front end followed by `then`: ``frontend_pipeline(LowerToTvmPass(), BuildArtifactPass())``."""
    return Pipeline([*frontend_passes(), *then])
