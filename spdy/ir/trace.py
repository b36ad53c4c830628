"""Turn a torch model into the fx graph every pass works on.

torch.fx.symbolic_trace keeps module structure (call_module nodes, readable names) and is
tried first; models it cannot trace (data-dependent control flow, Hugging Face models) go
through torch.export(...).module(), which yields an aten-level GraphModule. If both fail the
error names the node/op each tracer stopped at, so the user knows what to change.
"""
from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.fx.passes.shape_prop import _extract_tensor_metadata

from spdy.errors import InputShapeError, TraceError


@dataclass(frozen=True)
class ExampleInputs:
    """Example inputs, normalised: positional tensors plus keyword tensors (by name)."""

    args: tuple
    kwargs: dict

    @property
    def flat(self) -> list[torch.Tensor]:
        return list(self.args) + list(self.kwargs.values())

    @property
    def names(self) -> list[str]:
        return [f"input{i}" for i in range(len(self.args))] + list(self.kwargs)


def normalize_inputs(example_inputs: Any) -> ExampleInputs:
    """Accept a tensor, a tuple/list of tensors, or a dict of keyword tensors."""
    if isinstance(example_inputs, torch.Tensor):
        args, kwargs = (example_inputs,), {}
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    elif isinstance(example_inputs, dict):
        args, kwargs = (), dict(example_inputs)
    else:
        raise InputShapeError(
            f"example_inputs must be a tensor, a tuple of tensors or a dict of keyword tensors, "
            f"got {type(example_inputs).__name__}")
    for name, t in list(zip(range(len(args)), args)) + list(kwargs.items()):
        if not isinstance(t, torch.Tensor):
            raise InputShapeError(f"example input {name!r} is a {type(t).__name__}, not a torch.Tensor")
    return ExampleInputs(tuple(t.detach() for t in args), {k: v.detach() for k, v in kwargs.items()})


@dataclass
class TraceResult:
    gm: torch.fx.GraphModule
    method: str                 # "fx" or "export"
    fx_error: str | None = None  # why symbolic_trace failed, when method == "export"


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:400]


def _failing_location(exc: BaseException) -> str:
    """The innermost frame of user code in the traceback: where tracing gave up."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/torch/" not in f.filename and "/spdy/" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {f.filename}:{f.lineno} `{(f.line or '').strip()}`"


def _export(model: torch.nn.Module, inputs: ExampleInputs) -> torch.fx.GraphModule:
    ep = torch.export.export(model, inputs.args, kwargs=inputs.kwargs or None, strict=False)
    return ep.module()


def trace_model(model: torch.nn.Module, inputs: ExampleInputs, *, method: str = "auto") -> TraceResult:
    """Trace a copy of `model` (passes rewrite weights; the user's model is never touched)
    with fx, which keeps module names, falling back to torch.export."""
    if method not in ("auto", "fx", "export"):
        raise ValueError(f"trace method must be auto, fx or export, not {method!r}")
    model = copy.deepcopy(model).eval()
    fx_error = None
    if method in ("auto", "fx"):
        try:
            gm = torch.fx.symbolic_trace(model)
            run_shape_prop(gm, inputs)
            return TraceResult(gm, "fx")
        except InputShapeError:
            raise  # the inputs are wrong, not the tracer: export would fail the same way
        except Exception as exc:  # noqa: BLE001 - any tracer failure means "try the next tracer"
            fx_error = _first_line(exc) + _failing_location(exc)
            if method == "fx":
                raise TraceError(f"torch.fx.symbolic_trace failed: {fx_error}") from exc
    try:
        gm = _export(model, inputs)
        run_shape_prop(gm, inputs)
        return TraceResult(gm, "export", fx_error)
    except InputShapeError:
        raise
    except Exception as exc:  # noqa: BLE001
        export_error = _first_line(exc) + _failing_location(exc)
        raise TraceError(
            "the model cannot be traced: torch.fx.symbolic_trace failed with "
            f"[{fx_error or 'not tried'}] and torch.export failed with [{export_error}]; "
            "make the model traceable (no data-dependent Python control flow on tensor values) "
            "or pass a model that torch.export accepts") from exc


def run_shape_prop(gm: torch.fx.GraphModule, inputs: ExampleInputs) -> None:
    """Record shapes and dtypes in node.meta['tensor_meta']; a wrong input shape fails here."""
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    values = _bind_placeholders(placeholders, inputs)
    try:
        with torch.no_grad():
            _ShapeProp(gm).run(*values)
    except _NodeError as exc:
        node = exc.node
        raise InputShapeError(
            f"running the model on the example inputs failed{(' at node ' + node) if node else ''}: "
            f"{_first_line(exc.__cause__)}; check the input shapes "
            f"({', '.join(f'{n}={tuple(t.shape)}' for n, t in zip(inputs.names, inputs.flat))})") from exc


def _bind_placeholders(placeholders, inputs: ExampleInputs) -> list:
    """Match graph placeholders to positional then keyword example inputs."""
    values, args = [], list(inputs.args)
    for p in placeholders:
        name = p.target.lstrip("*")
        if name in inputs.kwargs:
            values.append(inputs.kwargs[name])
        elif args:
            values.append(args.pop(0))
        elif p.args:  # default value
            values.append(p.args[0])
        else:
            values.append(None)
    return values


class _NodeError(Exception):
    def __init__(self, node: str):
        super().__init__(node)
        self.node = node


class _ShapeProp(torch.fx.Interpreter):
    """Like torch's ShapeProp (node.meta['tensor_meta']) but quiet: it does not print a
    traceback on failure, it raises _NodeError naming the node for a one-line message."""

    def run_node(self, n):
        try:
            result = super().run_node(n)
        except Exception as exc:  # noqa: BLE001
            raise _NodeError(f"{n.name} ({n.target})") from exc
        if isinstance(result, torch.Tensor):
            n.meta["tensor_meta"] = _extract_tensor_metadata(result)
        return result
