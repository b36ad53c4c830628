"""The CLI's progress line per long phase: a bar, the step count, the time spent and an ETA.

The long passes (profile-latency, build-database, solve-sparsity, profile-channels) report
`progress(phase, step, total)` through spdy.compile's `progress=`; this turns those calls into
one updating line per phase on a terminal. The ETA assumes the remaining steps take as long
as the finished ones on average (the layers of one network differ, so it is a guide, not a
promise). Written to a file or a pipe (no terminal), only each phase's last line is printed,
so logs stay short.
"""
from __future__ import annotations

import sys
import time


def fmt_duration(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class ProgressBar:
    """Callable as spdy.compile's `progress(phase, step, total)`."""

    def __init__(self, stream=None, width: int = 24, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.width, self.clock = width, clock
        self.phase, self.started, self.open = None, 0.0, False

    def line(self, phase: str, step: int, total: int) -> str:
        if phase != self.phase:
            self.phase, self.started = phase, self.clock()
        total = max(int(total), 1)
        step = min(max(int(step), 0), total)
        done = int(self.width * step / total)
        elapsed = self.clock() - self.started
        tail = f"{fmt_duration(elapsed)}"
        if 0 < step < total:
            tail += f", ETA {fmt_duration(elapsed / step * (total - step))}"
        return f"  {phase:<16s} [{'#' * done}{'.' * (self.width - done)}] {step}/{total}  {tail}"

    def __call__(self, phase: str, step: int, total: int) -> None:
        new_phase = phase != self.phase
        text = self.line(phase, step, total)
        last = step >= total
        if not getattr(self.stream, "isatty", lambda: False)():
            if last:
                print(text, file=self.stream, flush=True)
            return
        if new_phase and self.open:      # the previous phase stopped short of its total: keep its line
            print(file=self.stream)
        print("\r" + text + "\033[K", end="\n" if last else "", file=self.stream, flush=True)
        self.open = not last
