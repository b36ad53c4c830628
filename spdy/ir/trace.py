"""Turn a torch model into the fx graph every pass works on.

torch.fx.symbolic_trace keeps module structure (call_module nodes, readable names) and is
tried first; models it cannot trace (data-dependent control flow, Hugging Face models) go
through torch.export(...).module(), which yields an aten-level GraphModule whose batch
dimension (dimension 0 of every input) stays symbolic, so calibration batches of any size
run through it; the artifact is still built for the example's shape. If both fail the
error names the node/op each tracer stopped at, so the user knows what to change.
"""
from __future__ import annotations

import copy
import inspect
import traceback
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.fx.passes.shape_prop import _extract_tensor_metadata

from spdy.errors import InputShapeError, TraceError
from spdy.ir.transformer_modules import symbolic_trace


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
    """torch.export with dimension 0 of every input dynamic (one symbol: the batch), and the
    last axis of token inputs too (one symbol: the sequence, up to the example's length), so
    that calibration batches of any size, padded per batch, run through the graph. A model
    that fixes its sequence length is exported with the batch alone free, a model that fixes
    its batch size for the example's shape."""
    for seq in ((True, False) if _token_length(inputs) > 2 else (False,)):
        dynamic = batch_dynamic_shapes(model, inputs, seq=seq)
        if dynamic is None:
            continue
        try:
            gm = _export_dynamic(model, inputs, dynamic)
            with torch.no_grad():
                gm(*inputs.args, **inputs.kwargs)   # a batch of one through a graph traced at two
            return gm
        except Exception:  # noqa: BLE001 - the model specializes the dimension: free fewer below
            pass
    ep = torch.export.export(model, inputs.args, kwargs=inputs.kwargs or None, strict=False)
    return tuple_outputs(strip_export_noops(ep.module()))


def _export_dynamic(model, inputs: ExampleInputs, dynamic: dict) -> torch.fx.GraphModule:
    # torch specializes a dimension of size 1 (0/1 specialization), so a batch of one is
    # traced as two copies of the example; the graph then accepts a batch of 1 as well.
    if inputs.flat[0].shape[0] == 1:
        args = tuple(torch.cat([t, t]) for t in inputs.args)
        kwargs = {k: torch.cat([t, t]) for k, t in inputs.kwargs.items()}
    else:
        args, kwargs = inputs.args, inputs.kwargs
    ep = torch.export.export(model, args, kwargs=kwargs or None, dynamic_shapes=dynamic, strict=False)
    return tuple_outputs(strip_export_noops(ep.module()))


def is_token_input(t: torch.Tensor) -> bool:
    """Integer or bool input with a sequence axis (its last) after the batch axis: calibration
    batches may be shorter along it (spdy.passes.algo.calib), and export frees it."""
    return t.dim() >= 2 and not t.is_floating_point()


def _token_length(inputs: ExampleInputs) -> int:
    """The example's sequence length, shared by its token inputs (0: none, or they differ)."""
    lengths = {t.shape[-1] for t in inputs.flat if is_token_input(t)}
    return lengths.pop() if len(lengths) == 1 else 0


def batch_dynamic_shapes(model: torch.nn.Module, inputs: ExampleInputs, *, seq: bool = False) -> dict | None:
    """torch.export's dynamic_shapes marking dimension 0 of every input as one `batch` Dim
    (with `seq`: the last axis of every token input as one `seq` Dim, 2..the example's length,
    when they share that length), keyed by forward()'s parameter names; None when the inputs
    disagree on dimension 0 (then there is no batch to free) or forward's signature cannot bind
    them."""
    sizes = {t.shape[0] if t.dim() else None for t in inputs.flat}
    if len(sizes) != 1 or None in sizes:
        return None
    try:
        sig = inspect.signature(model.forward)
        bound = sig.bind(*inputs.args, **inputs.kwargs)
    except (TypeError, ValueError):
        return None
    batch = torch.export.Dim("batch")
    length = _token_length(inputs) if seq else 0
    seq_dim = torch.export.Dim("seq", min=2, max=length) if length > 2 else None

    def dims(t):
        if seq_dim is not None and isinstance(t, torch.Tensor) and is_token_input(t):
            return {0: batch, t.dim() - 1: seq_dim}
        return {0: batch}

    spec = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            spec[name] = tuple(dims(v) for v in value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            spec[name] = {k: dims(v) for k, v in value.items()}
        else:
            spec[name] = dims(value)
    return spec


def tuple_outputs(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Make an exported graph return a dict-like output (a Hugging Face ModelOutput) as the
    tuple of its tensors in order, `out.to_tuple()`: the artifact returns exactly that, and
    every pass (calibration losses, the stitched model) then sees one contract."""
    from torch.utils import _pytree as pytree
    codegen = gm.graph._codegen
    info = getattr(codegen, "pytree_info", None)
    if info is None or info.out_spec is None or info.out_spec.type in (tuple, list) or info.out_spec.is_leaf():
        return gm
    flat = pytree.tree_structure(tuple(range(info.out_spec.num_leaves)))
    codegen.pytree_info = info._replace(out_spec=flat)
    gm.recompile()
    return gm


def strip_export_noops(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drop what torch.export adds that computes nothing on a CPU graph: metadata assertions
    and `to` calls that keep the dtype. A `to` that changes the dtype stays (a cast)."""
    aten = torch.ops.aten
    asserts = {aten._assert_tensor_metadata.default, aten._assert_scalar.default,
               aten.sym_constrain_range_for_size.default}
    casts = {aten.to.device, aten.to.dtype, aten.to.dtype_layout}   # `to` returns self when nothing changes
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in asserts and not node.users:
            gm.graph.erase_node(node)
            changed = True
        elif node.target in casts and _same_dtype(node):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            changed = True
    if changed:
        gm.graph.lint()
        gm.recompile()
    return gm


def _same_dtype(node: torch.fx.Node) -> bool:
    src = node.args[0] if node.args else None
    out, inp = node.meta.get("val"), getattr(src, "meta", {}).get("val")
    return (isinstance(out, torch.Tensor) and isinstance(inp, torch.Tensor) and out.dtype == inp.dtype
            and out.device == inp.device)


def trace_model(model: torch.nn.Module, inputs: ExampleInputs, *, method: str = "auto") -> TraceResult:
    """Trace a copy of `model` (passes rewrite weights; the user's model is never touched)
    with fx, which keeps module names, falling back to torch.export."""
    if method not in ("auto", "fx", "export"):
        raise ValueError(f"trace method must be auto, fx or export, not {method!r}")
    model = copy.deepcopy(model).eval()
    fx_error = None
    if method in ("auto", "fx"):
        try:
            gm = symbolic_trace(model)   # through nn.TransformerEncoder too
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
