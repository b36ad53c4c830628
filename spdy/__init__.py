"""spdy: compile a PyTorch model into a TVM artifact that runs a guaranteed factor faster.

`spdy.load` needs only tvm's runtime and numpy, so the torch-based parts are imported lazily.
"""
from spdy.errors import (ArtifactError, CalibrationError, InfeasibleSpeedupError, InputShapeError,  # noqa: F401
                         NotAvailableError, PipelineError, SpdyError, TargetError, TraceError,
                         UnsupportedOpError)

from spdy.version import __version__  # noqa: F401

_LAZY = {
    "compile": ("spdy.api", "compile"),
    "CompiledModel": ("spdy.compiled", "CompiledModel"),
    "load": ("spdy.runtime.artifact", "load"),
    "solve_dp": ("spdy.passes.algo.dp", "solve_dp"),
    "prune_channels": ("spdy.chex.prune", "prune_channels"),
}


def __getattr__(name):
    if name in ("models", "chex", "sweep"):
        import importlib
        return importlib.import_module(f"spdy.{name}")
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'spdy' has no attribute {name!r}")


__all__ = ["compile", "load", "solve_dp", "CompiledModel", "SpdyError", "InfeasibleSpeedupError", "__version__"]
