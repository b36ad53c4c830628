"""The dense runtimes cm.report compares spdy's artifacts against: PyTorch eager and, when
the package is installed, onnxruntime running the same dense model exported to ONNX.

Users pick spdy over "export to ONNX and run onnxruntime", so the report says how the
artifact compares with that too, timed interleaved with the artifacts in the same rounds
(Device.time_interleaved: on this CPU only, they cannot run on a remote device). onnxruntime is optional: when it is missing, or the model does
not export, the report says why in `reference_notes` instead of failing the compile.

The ONNX session is built once per compile and kept in ctx.artifacts, so the budget
correction rounds of verify-speedup do not export the model again.
"""
from __future__ import annotations

import io
import warnings
from typing import Callable

_SESSION_KEY = "onnxruntime_session"


def torch_eager_fn(model, args, kwargs, threads: int) -> Callable[[], object]:
    """One inference of the model in PyTorch eager on `threads` threads (restored after)."""
    import torch

    def run():
        prev = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                model(*args, **kwargs)
        finally:
            torch.set_num_threads(prev)
    return run


def reference_fns(ctx, threads: int) -> dict[str, Callable[[], object]]:
    """{name: zero-argument callable} for PyTorch eager and (when available) onnxruntime."""
    fns = {"torch_eager": torch_eager_fn(ctx.model.eval(), ctx.inputs.args, ctx.inputs.kwargs, threads)}
    if ctx.options.compare_onnxruntime:
        if _SESSION_KEY not in ctx.artifacts:
            ctx.artifacts[_SESSION_KEY] = _onnxruntime_fn(ctx, threads)
        run, note = ctx.artifacts[_SESSION_KEY]
        if run is not None:
            fns["onnxruntime"] = run
        else:
            ctx.artifacts.setdefault("reference_notes", {})["onnxruntime"] = note
    return fns


def _onnxruntime_fn(ctx, threads: int):
    """(run, None) or (None, why not)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed (pip install onnxruntime to compare against it)"
    import torch
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # torch 2.13: the dynamo exporter needs onnxscript; the TorchScript one does not
            torch.onnx.export(_by_name(ctx.model.eval(), ctx.inputs), tuple(ctx.inputs.flat), buf, dynamo=False,
                              opset_version=17)
    except Exception as e:  # any exporter failure only means "no onnxruntime row"
        return None, f"the model does not export to ONNX ({type(e).__name__}: {str(e)[:300]})"
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # onnxruntime's pool threads spin-wait after each run by default; interleaved with the
    # artifacts they then steal the cores from TVM's threads (measured: the MNIST CNN's dense
    # artifact at batch 32 went from 1.75 ms to 3.95 ms). Sleeping pool threads leave it alone.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        return None, f"onnxruntime {ort.__version__} cannot load the exported model ({type(e).__name__}: {str(e)[:300]})"
    arrays = [t.detach().contiguous().numpy() for t in ctx.inputs.flat]
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(arrays):
        return None, (f"the exported ONNX model takes {len(names)} inputs but the example has {len(arrays)} "
                      "tensors (an unused input was dropped by the exporter)")
    feed = dict(zip(names, arrays))
    return (lambda: sess.run(None, feed)), None


def reference_summary(res: dict, ms: float) -> dict:
    """Speedup of a run of `ms` milliseconds against every reference runtime timed in `res`."""
    out = {}
    for name in ("torch_eager", "onnxruntime"):
        ref = res.get(name)
        out[f"speedup_vs_{name}"] = ref["median_ms"] / ms if ref else None
    return out


def _by_name(model, inputs):
    """The model called with every input by its parameter name, returning plain tensors: the
    TorchScript exporter binds positional inputs to a Hugging Face forward's later parameters
    ("got multiple values for argument 'use_cache'") and cannot return a ModelOutput."""
    import inspect

    import torch
    params = [n for n, p in inspect.signature(model.forward).parameters.items()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) < len(inputs.args):
        return model                       # forward(*xs): positional is all it takes
    names = params[:len(inputs.args)] + list(inputs.kwargs)

    class ByName(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *xs):
            out = self.model(**dict(zip(names, xs)))
            return out.to_tuple() if hasattr(out, "to_tuple") else out
    return ByName().eval()   # the exporter restores the wrapper's mode on the model afterwards: keep it eval
