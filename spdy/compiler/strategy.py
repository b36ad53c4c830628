"""What a compile strategy is, and which one a compile's options ask for.

A strategy turns a prepared context (options, services, calibration data) into a built
artifact: it runs named pipelines (spdy/pipelines.py) and leaves "executable", "profile"
and whatever its report needs in ctx.artifacts; it returns the model the artifact was built
from (the pruned torch graph, or for channels the smaller torch model). The driver
(spdy/compiler/driver.py) does everything around it, the same for every strategy.
"""
from __future__ import annotations

from typing import ClassVar


class Strategy:
    name: ClassVar[str] = "strategy"     # what spdy.compile's options select
    report_mode: ClassVar[str] = ""      # the report's "mode"

    def run(self, ctx):  # pragma: no cover - abstract
        raise NotImplementedError

    def formats(self, ctx) -> dict | None:
        """The report's "formats" entry (the formats offered to a search), or None."""
        return None
