"""Run passes in order with dependency checks, error wrapping and a pass log.

The pipeline checks before running anything that every `requires` is provided by an earlier
pass (or is already in ctx.artifacts) and reports all that are missing at once. A failing
pass's exception is wrapped in a PipelineError naming the pass, its position and the passes
that ran before it. One record per pass goes to `passlog.jsonl` (when ctx.workdir is set)
as soon as the pass ends, failures included, so an interrupted compile still explains itself.
"""
from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from spdy.errors import PipelineError, SpdyError
from spdy.passes.base import Pass, PassResult


def _graph_size(gm) -> set:
    return {n.name for n in gm.graph.nodes} if gm is not None and hasattr(gm, "graph") else set()


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
        """Run all passes; returns (gm, records). Records are also appended to ctx.workdir/passlog.jsonl."""
        self.check(set(ctx.artifacts))
        records = ctx.artifacts.setdefault("passlog", [])
        log_path = Path(ctx.workdir) / "passlog.jsonl" if ctx.workdir else None
        done: list[str] = []
        for i, p in enumerate(self.passes):
            before = _graph_size(gm)
            t0 = time.perf_counter()
            record = {"seq": len(records), "pass": p.name, "options": p.to_text(), "status": "ok"}
            try:
                result = p.run(gm, ctx)
                if not isinstance(result, PassResult):
                    raise TypeError(f"pass {p.name} returned {type(result).__name__}, not PassResult")
            except BaseException as exc:
                record.update(status="failed", wall_s=round(time.perf_counter() - t0, 4),
                              error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
                self._log(records, record, log_path)
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
            after = _graph_size(result.gm)
            record.update(wall_s=round(time.perf_counter() - t0, 4), modified=bool(result.modified),
                          stats=result.stats, nodes_created=len(after - before),
                          nodes_erased=len(before - after))
            self._log(records, record, log_path)
            if ctx.dump_graphs and ctx.workdir and result.gm is not None and hasattr(result.gm, "graph"):
                dump = Path(ctx.workdir) / "graphs" / f"{record['seq']:02d}-{p.name}.txt"
                dump.parent.mkdir(parents=True, exist_ok=True)
                dump.write_text(str(result.gm.graph))
            gm = result.gm
            done.append(p.name)
        return gm, records

    @staticmethod
    def _log(records, record, log_path):
        records.append(record)
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(record, default=str) + "\n")


def _tail(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return "".join(f"  at {f.filename}:{f.lineno} in {f.name}\n" for f in frames).rstrip()
