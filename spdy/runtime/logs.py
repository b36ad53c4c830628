"""TVM's own log lines, kept off the user's terminal.

TVM's C++ side logs warnings ("Scope Saving ...", "BlockBuilder destroyed ...") straight to
file descriptor 2, dozens per build or export, which Python's sys.stderr cannot redirect.
`tvm_log_capture` points fd 2 at a temporary file while a build or a save runs, and
afterwards appends what was written to a log file (the compile's workdir/tvm.log) and, with
SPDY_LOG=debug (`spdy --debug` sets it), echoes it to the real stderr. Python code that writes
to sys.stderr meanwhile (progress lines, warnings) still reaches the terminal: sys.stderr is
pointed at a copy of the original descriptor for the duration.

The capture is process-wide (a descriptor has no per-thread view) and not nested: an inner
capture inside an outer one leaves the lines to the outer one.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from pathlib import Path

TVM_LOG = "tvm.log"
_lock = threading.Lock()
_active = False


def debug_logging() -> bool:
    """SPDY_LOG=debug: TVM's lines are shown as well as logged."""
    return os.environ.get("SPDY_LOG", "").strip().lower() == "debug"


@contextlib.contextmanager
def tvm_log_capture(log_path: str | Path | None = None):
    """Capture fd 2 for the block; append the text to `log_path` (when given) and show it
    on the real stderr under SPDY_LOG=debug. Yields nothing."""
    global _active
    with _lock:
        nested = _active
        _active = True
    if nested:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    sink = tempfile.TemporaryFile(prefix="spdy-tvm-log-")
    old_stderr = sys.stderr
    try:
        os.dup2(sink.fileno(), 2)
        # Python's writes keep going to the terminal (or to whatever captured sys.stderr before)
        if getattr(old_stderr, "fileno", None) is not None and _fd_of(old_stderr) == 2:
            sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old_stderr, "encoding", None),
                                   errors="backslashreplace")
        yield
    finally:
        try:
            if sys.stderr is not old_stderr:
                sys.stderr.flush()
                sys.stderr.close()
        finally:
            sys.stderr = old_stderr
            os.dup2(saved, 2)
            os.close(saved)
            with _lock:
                _active = False
        sink.seek(0)
        text = sink.read().decode("utf-8", errors="replace")
        sink.close()
        if text:
            if log_path is not None:
                with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as f:
                    f.write(text)
            if debug_logging():
                old_stderr.write(text)
                old_stderr.flush()


def _fd_of(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
