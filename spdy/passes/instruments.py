"""Pass instruments: what happens around every pass without being part of any.

Modelled on TVM's PassInstrument (python/tvm/ir/instrument.py): the pipeline calls each
instrument of ctx.instruments, in order, before every pass (`run_before_pass`), after it
returned (`run_after_pass`; an instrument may raise there, which fails the pass: the graph
verifier does) and after it failed (`run_failed_pass`, which must not raise). The pass log,
per-pass timing, graph-change counts, graph dumps and the graph verifier are instruments;
the pipeline itself only orders passes, checks their declarations and wraps their errors.

Each hook gets a PassEvent: the pass, its position, the context, the graph it got, the
passlog `record` the instruments fill in, and once known the PassResult or the exception.
Instruments that write the record run before PassLog, which writes it out: PassLog is last.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PassEvent:
    pass_: Any                    # the Pass
    index: int                    # its position in the pipeline
    ctx: Any                      # the CompileContext
    gm: Any                       # the graph the pass got
    record: dict                  # its passlog record
    result: Any = None            # the PassResult, after it returned
    error: BaseException | None = None
    scratch: dict = field(default_factory=dict)   # instruments' own state between hooks


class PassInstrument:
    """Does nothing; subclasses override the hooks they need."""

    def enter_pipeline(self, pipeline, ctx) -> None:
        pass

    def exit_pipeline(self, pipeline, ctx) -> None:
        pass

    def run_before_pass(self, ev: PassEvent) -> None:
        pass

    def run_after_pass(self, ev: PassEvent) -> None:
        pass

    def run_failed_pass(self, ev: PassEvent) -> None:
        pass


class PassTimer(PassInstrument):
    """record["wall_s"]: the pass's wall time (including the instruments before this one)."""

    def run_before_pass(self, ev):
        ev.scratch["t0"] = time.perf_counter()

    def run_after_pass(self, ev):
        ev.record["wall_s"] = round(time.perf_counter() - ev.scratch["t0"], 4)

    def run_failed_pass(self, ev):
        if "t0" in ev.scratch:
            ev.record.setdefault("wall_s", round(time.perf_counter() - ev.scratch["t0"], 4))


def _node_names(gm) -> set:
    return {n.name for n in gm.graph.nodes} if gm is not None and hasattr(gm, "graph") else set()


class GraphChanges(PassInstrument):
    """record["nodes_created"] and ["nodes_erased"]: graph nodes the pass added and removed."""

    def run_before_pass(self, ev):
        ev.scratch["nodes"] = _node_names(ev.gm)

    def run_after_pass(self, ev):
        before, after = ev.scratch["nodes"], _node_names(ev.result.gm)
        ev.record.update(nodes_created=len(after - before), nodes_erased=len(before - after))


class VerifyGraph(PassInstrument):
    """spdy.ir.verify after every pass that returns an fx graph: a broken invariant fails the
    pass that broke it (GraphInvariantError names what)."""

    def run_after_pass(self, ev):
        import torch.fx
        from spdy.ir.verify import check_graph
        gm = ev.result.gm
        if isinstance(gm, torch.fx.GraphModule):
            check_graph(gm, ev.ctx.artifacts.get("layers"))
        ev.record["graph_verified"] = True


class GraphDump(PassInstrument):
    """The graph after each pass as text: `<dir>/<seq>-<pass>.txt`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def run_after_pass(self, ev):
        gm = ev.result.gm
        if gm is None or not hasattr(gm, "graph"):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{ev.record['seq']:02d}-{ev.pass_.name}.txt").write_text(str(gm.graph))


class PassLog(PassInstrument):
    """Appends each record to a JSON-lines file as soon as the pass ends, failures included,
    so an interrupted compile still explains itself. Runs last."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _write(self, record):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def run_after_pass(self, ev):
        self._write(ev.record)

    def run_failed_pass(self, ev):
        self._write(ev.record)


def default_instruments(workdir: Path | None, *, dump_graphs: bool = False, verify: bool = False) -> list:
    """Timing and graph changes always; the verifier when asked (debug mode); graph dumps and
    the pass log file when there is a work directory."""
    out: list[PassInstrument] = [PassTimer(), GraphChanges()]
    if verify:
        out.append(VerifyGraph())
    if workdir is not None:
        if dump_graphs:
            out.append(GraphDump(Path(workdir) / "graphs"))
        out.append(PassLog(Path(workdir) / "passlog.jsonl"))
    return out
