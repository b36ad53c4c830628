"""Errors a user of spdy may see.

Every error spdy raises on purpose derives from `SpdyError`, so the CLI can print its
message as one line and exit with the error's `exit_code` instead of a stack trace.
"""
from __future__ import annotations


class SpdyError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""

    exit_code = 1


class UsageError(SpdyError):
    """Bad command-line arguments (or an artifact asked for something it does not hold)."""

    exit_code = 2


class TraceError(SpdyError):
    """The model could be traced neither by torch.fx nor by torch.export."""


class UnsupportedOpError(SpdyError):
    """The graph holds ops spdy cannot lower; the message lists all of them at once."""


class TargetError(SpdyError, ValueError):
    """A target specification spdy cannot parse."""

    exit_code = 2


class InputShapeError(SpdyError, ValueError):
    """Inputs whose shapes or dtypes do not match what the model was compiled for."""

    exit_code = 2


class ArtifactError(SpdyError):
    """A missing, incomplete, tampered or mismatched artifact directory."""


class PipelineError(SpdyError):
    """A pass failed or the pipeline is mis-assembled; names the pass and what ran before."""


class NotAvailableError(SpdyError):
    """A feature that exists in the API but is not implemented yet."""


class CalibrationError(SpdyError, ValueError):
    """A calibration set that is empty, has the wrong shape, or holds NaN/inf."""


class InfeasibleSpeedupError(SpdyError):
    """The requested speedup cannot be reached; `max_speedup` is the largest reachable one."""

    exit_code = 3

    def __init__(self, requested: float, max_speedup: float, detail: str = ""):
        self.requested = float(requested)
        self.max_speedup = float(max_speedup)
        msg = (
            f"speedup {self.requested:g}x is not reachable: the largest reachable speedup "
            f"is {self.max_speedup:.2f}x"
        )
        if detail:
            msg += f" ({detail})"
        super().__init__(msg + "; ask for a smaller speedup or allow more formats/levels")


class RemoteDeviceError(SpdyError):
    """A remote measuring device (TVM RPC server or tracker) that cannot be reached or stopped
    answering; names the address and the fix. Measurements taken before it are kept."""


class OptionError(SpdyError, ValueError):
    """A compile option out of its range or of the wrong type (spdy.checks)."""


class ModelError(SpdyError):
    """A model spdy cannot compile as given: weights on the meta device, training mode, or
    outputs that are not tensors (spdy.checks)."""


class NoPrunableLayerError(SpdyError):
    """A search with nothing to search: no layer has an option besides dense fp32 under the
    keep_dense in force and the offered formats (spdy.checks)."""


class OutputPathError(SpdyError):
    """A workdir or artifact path spdy cannot write (checked before the compile starts)."""


class HostFeatureError(ArtifactError):
    """An artifact built for CPU features this host lacks (spdy.load checks before loading)."""
