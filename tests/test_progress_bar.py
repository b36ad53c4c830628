"""The CLI's progress line: bar, steps, time spent, ETA; one line per phase in a log."""
import io

from spdy.progress_bar import ProgressBar, fmt_duration


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_eta_from_the_finished_steps():
    clock = Clock()
    bar = ProgressBar(stream=io.StringIO(), width=10, clock=clock)
    assert bar.line("profile-latency", 0, 20).endswith("0/20  0s")
    clock.t = 30.0
    line = bar.line("profile-latency", 5, 20)
    assert "[##........] 5/20" in line and line.endswith("30s, ETA 1m30s")   # 15 steps x 6 s
    clock.t = 120.0
    assert bar.line("profile-latency", 20, 20).endswith("[##########] 20/20  2m00s")
    clock.t = 125.0
    assert bar.line("build-database", 1, 4).endswith("0s, ETA 0s")        # a new phase starts its own clock


def test_a_log_gets_each_phase_once_a_terminal_one_updating_line():
    log = io.StringIO()
    bar = ProgressBar(stream=log, clock=Clock())
    for i in range(1, 4):
        bar("solve-sparsity", i, 3)
    assert log.getvalue().count("\n") == 1 and "3/3" in log.getvalue()
    tty = Tty()
    bar = ProgressBar(stream=tty, clock=Clock())
    bar("a", 1, 2)
    bar("b", 1, 1)                    # "a" stopped short: its line is kept, not overwritten
    lines = tty.getvalue().split("\n")
    assert "1/2" in lines[0] and "1/1" in lines[1]


def test_durations():
    assert [fmt_duration(s) for s in (0.4, 59, 61, 3600 + 120)] == ["0s", "59s", "1m01s", "1h02m"]
