"""Run passes in order with dependency checks, declared artifacts and error wrapping.

The pipeline checks before running anything that every `requires` is provided by an earlier
pass (or is already in ctx.artifacts) and reports all that are missing at once. While a pass
runs, ctx.artifacts knows it, so a write the pass did not declare in `provides` is caught
(spdy.passes.context). A failing pass's exception is wrapped in a PipelineError naming the
pass, its position and the passes that ran before it. Everything else around a pass (timing,
the pass log file, graph dumps, graph verification) is an instrument of ctx.instruments
(spdy.passes.instruments), called before and after each pass. The records of all passes run
in a compile are ctx.passlog.
"""
from __future__ import annotations

import traceback

from spdy.errors import PipelineError, SpdyError
from spdy.passes.base import Pass, PassResult
from spdy.passes.instruments import PassEvent


class Pipeline:
    def __init__(self, passes: list[Pass]):
        self.passes = list(passes)

    def __repr__(self) -> str:
        return "Pipeline(" + " -> ".join(p.to_text() for p in self.passes) + ")"

    def check(self, available: set[str] = frozenset()) -> None:
        have = set(available)
        missing = []
        for i, p in enumerate(self.passes):
            for req in p.requires:
                if req not in have:
                    missing.append(f"{p.name} (#{i}) requires {req!r}")
            have.update(p.provides)
        if missing:
            raise PipelineError("pipeline is missing providers: " + "; ".join(missing) +
                                ". Add the passes that provide them earlier in the pipeline.")

    def run(self, gm, ctx) -> tuple:
        """Run all passes; returns (gm, ctx.passlog)."""
        self.check(set(ctx.artifacts))
        instruments = list(ctx.instruments)
        for ins in instruments:
            ins.enter_pipeline(self, ctx)
        try:
            done: list[str] = []
            for i, p in enumerate(self.passes):
                gm = self._run_pass(i, p, gm, ctx, instruments, done)
                done.append(p.name)
        finally:
            for ins in instruments:
                ins.exit_pipeline(self, ctx)
        return gm, ctx.passlog

    @staticmethod
    def _run_pass(i, p, gm, ctx, instruments, done):
        record = {"seq": len(ctx.passlog), "pass": p.name, "options": p.to_text(), "status": "ok"}
        ev = PassEvent(p, i, ctx, gm, record)
        try:
            for ins in instruments:
                ins.run_before_pass(ev)
            with ctx.artifacts.written_by(p) as undeclared:
                result = p.run(gm, ctx)
            if not isinstance(result, PassResult):
                raise TypeError(f"pass {p.name} returned {type(result).__name__}, not PassResult")
            ev.result = result
            record.update(modified=bool(result.modified), stats=result.stats)
            if undeclared:   # outside debug mode (in it the write raised)
                record["undeclared_writes"] = list(undeclared)
            for ins in instruments:
                ins.run_after_pass(ev)
        except BaseException as exc:
            ev.error = exc
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
            for ins in instruments:
                ins.run_failed_pass(ev)
            ctx.passlog.append(record)
            if isinstance(exc, KeyboardInterrupt):
                raise
            prior = ", ".join(done) or "none"
            if isinstance(exc, SpdyError) and not isinstance(exc, PipelineError):
                # a user-facing error already explains itself: keep its type and exit code
                exc.args = (f"{exc} [in pass {p.name} (#{i}); passes before: {prior}]",)
                raise
            raise PipelineError(
                f"pass {p.name} (#{i}) failed: {type(exc).__name__}: {exc} "
                f"[passes before: {prior}]\n{_tail(exc)}") from exc
        ctx.passlog.append(record)
        return result.gm


def _tail(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return "".join(f"  at {f.filename}:{f.lineno} in {f.name}\n" for f in frames).rstrip()
