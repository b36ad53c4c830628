"""The runtimes a user would pick instead of spdy, int8 included, built the way their docs say.

Given a torch model, its example inputs (the shape it is deployed and timed at) and calibration
batches, `build_peers` returns for each peer a `Peer`: `run()` does one inference on the example
with the inputs bound in advance (what the benchmarks time), `predict(arrays)` runs any number of
rows through the same compiled model (what quality is scored on), and `info` says how it was
built. Peers:

  ort_fp32          onnxruntime on the fp32 ONNX export (torch's legacy exporter, opset 17)
  ort_int8_dynamic  onnxruntime.quantization.quantize_dynamic: s8 weights per output channel
                    (per tensor took MiniLM-L6's mean cosine from 0.993 to 0.966), u8 activations
                    quantized per tensor at run time, ONNX Runtime's pre-processing first; it
                    quantizes Conv (ConvInteger: 6x slower than fp32 on the MNIST CNN) and weight
                    MatMul/Gemm, and leaves the rest fp32
  ort_int8_static   onnxruntime.quantization.quantize_static, QDQ format, s8 weights per output
                    channel, u8 activations (the VNNI u8 x s8 form), MinMax calibration on the
                    calibration batches, after quant_pre_process (without it static QDQ ran
                    ResNet-18 slower than fp32 here; DESIGN 5). CNNs: ORT's default op set.
                    Transformers: MatMul and Gemm only (what spdy's int8 covers too); ORT's
                    default set also quantizes Softmax, Transpose, Reshape, LayerNorm and Gather
                    and took MiniLM-L6's embeddings to a mean cosine of 0.36 (MatMul/Gemm: 0.94)
  openvino_qdq      OpenVINO reading the ort_int8_static QDQ model
  openvino_nncf     OpenVINO after NNCF post-training quantization (nncf.quantize on the model
                    read from the fp32 ONNX, nncf.Dataset on the calibration batches, every
                    batch used; model_type=TRANSFORMER for transformers)
  openvino_fp32     OpenVINO on the fp32 ONNX

Every peer runs on `threads` threads with the settings spdy/reference_runtimes.py uses for its
onnxruntime row: ORT intra_op_num_threads, one inter-op thread, sequential, spinning off (ORT's
spinning pool threads otherwise steal the cores from the runtime timed after them); OpenVINO
INFERENCE_NUM_THREADS, latency hint, one stream, f32 inference precision (the parts of a model
OpenVINO leaves unquantized would run in bf16 on CPUs that have it).

Shapes: the ONNX export is static at the example's shape, so every peer is compiled for exactly
what it is timed at. Calibration batches of any size are re-cut into example-sized batches;
`predict` runs its rows in example-sized chunks (the last one padded by repeating its last row).
Dynamic quantization scales each call's activations over the whole call, so a peer is scored at
the batch it is deployed with, never at a larger one that would average its activation ranges.

A peer whose package is missing or whose build fails is returned in `skipped` with a one-line
reason; nothing here raises for a peer.
"""
from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

PEERS = ("ort_fp32", "ort_int8_dynamic", "ort_int8_static", "openvino_qdq", "openvino_nncf", "openvino_fp32")
INT8_PEERS = ("ort_int8_dynamic", "ort_int8_static", "openvino_qdq", "openvino_nncf")


@dataclass
class Peer:
    name: str
    run: Callable[[], object]                                   # one inference on the bound example
    predict: Callable[[Sequence[np.ndarray]], np.ndarray]       # first output for N rows of inputs
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- inputs

def _arrays(tensors) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t))
                 for t in tensors)


def rechunk(batches: Iterable, size: int, n_inputs: int,
            like: Sequence[np.ndarray] | None = None) -> list[tuple[np.ndarray, ...]]:
    """Calibration batches (tuples whose first n_inputs items are input tensors; labels after
    them are ignored) cut into batches of exactly `size` rows; a short tail is dropped.
    `like` (the example inputs): batches shorter along a trailing axis (token batches cut to
    their longest sentence, as spdy takes them) are zero-padded to the example's shape, which
    the peers were exported with; zero is the pad token and a masked position."""
    rows: list[list[np.ndarray]] = [[] for _ in range(n_inputs)]
    for b in batches:
        b = (b,) if not isinstance(b, (tuple, list)) else b
        for i, a in enumerate(_arrays(b[:n_inputs])):
            if like is not None and a.shape[1:] != like[i].shape[1:]:
                pad = [(0, 0)] + [(0, max(0, t - d)) for d, t in zip(a.shape[1:], like[i].shape[1:])]
                a = np.pad(a, pad)
            rows[i].append(a)
    if not rows[0]:
        return []
    cat = [np.concatenate(r) for r in rows]
    n = len(cat[0]) // size
    return [tuple(np.ascontiguousarray(c[k * size:(k + 1) * size]) for c in cat) for k in range(n)]


def chunked(fn: Callable[[tuple], np.ndarray], arrays: Sequence[np.ndarray], size: int) -> np.ndarray:
    """fn over `size`-row chunks of arrays (the compiled shape), outputs concatenated; the last
    chunk is padded by repeating its last row and the padding cut off again."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    n, outs = len(arrays[0]), []
    for i in range(0, n, size):
        part = [a[i:i + size] for a in arrays]
        k = len(part[0])
        if k < size:
            part = [np.concatenate([p, np.repeat(p[-1:], size - k, axis=0)]) for p in part]
        outs.append(np.asarray(fn(tuple(part)))[:k])
    return np.concatenate(outs)


def input_names(model, n: int) -> list[str]:
    """Names of the first n parameters of model.forward (the ONNX graph's input names)."""
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[:n] if len(params) >= n else [f"input{i}" for i in range(n)]


def export_onnx(model, example: tuple, path: Path) -> Path:
    """fp32 ONNX of model at the example's static shape (legacy exporter: the dynamo one needs
    onnxscript, which is not installed)."""
    import torch
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), tuple(example), str(path), dynamo=False, opset_version=17,
                          input_names=input_names(model, len(example)), output_names=["output"])
    return path


# ----------------------------------------------------------------------------- onnxruntime

def ort_session(path: Path, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_peer(name: str, path: Path, example: tuple[np.ndarray, ...], threads: int, info: dict) -> Peer:
    import onnxruntime as ort
    sess = ort_session(path, threads)
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(example):
        raise RuntimeError(f"the ONNX model takes {len(names)} inputs, the example has {len(example)} "
                           "(the exporter dropped an unused input)")
    feed = dict(zip(names, example))

    def one(arrays):
        return sess.run(None, dict(zip(names, arrays)))[0]
    size = len(example[0])
    return Peer(name, lambda: sess.run(None, feed), lambda arrays: chunked(one, arrays, size),
                {"runtime": "onnxruntime", "version": ort.__version__, "threads": threads,
                 "model_bytes": path.stat().st_size, **info})


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over example-sized calibration batches."""

    def __init__(self, names: list[str], chunks: list[tuple]):
        self.names, self.chunks, self.i = names, chunks, 0

    def get_next(self):
        if self.i >= len(self.chunks):
            return None
        self.i += 1
        return dict(zip(self.names, self.chunks[self.i - 1]))

    def rewind(self):
        self.i = 0


def preprocess(fp32: Path, out: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process
    quant_pre_process(str(fp32), str(out))
    return out


def quantize_dynamic_int8(fp32: Path, out: Path, per_channel: bool = True) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


TRANSFORMER_STATIC_OPS = ("MatMul", "Gemm")


def quantize_static_qdq(fp32_pre: Path, out: Path, chunks: list[tuple], names: list[str],
                        op_types: Sequence[str] | None = None) -> Path:
    """QDQ int8 model calibrated (MinMax) on `chunks`; op_types None = ORT's default op set."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
        quantize_static

    class Reader(_Reader, CalibrationDataReader):
        pass
    quantize_static(str(fp32_pre), str(out), Reader(names, chunks), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(op_types) if op_types else None,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    return out


# ----------------------------------------------------------------------------- openvino

OV_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}


def ov_peer(name: str, ov_model, example: tuple[np.ndarray, ...], threads: int, info: dict) -> Peer:
    import openvino as ov
    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_NUM_THREADS": int(threads), **OV_CONFIG})
    if len(compiled.inputs) != len(example):
        raise RuntimeError(f"the OpenVINO model takes {len(compiled.inputs)} inputs, the example has {len(example)}")
    req = compiled.create_infer_request()
    bound = [np.ascontiguousarray(a) for a in example]  # ov.Tensor shares this memory: keep it alive
    for i, a in enumerate(bound):
        req.set_input_tensor(i, ov.Tensor(a))
    out = compiled.output(0)
    scoring = compiled.create_infer_request()

    def one(arrays):
        return scoring.infer(list(arrays))[out].copy()
    got = {k: str(compiled.get_property(k)) for k in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
                                                      "PERFORMANCE_HINT", "NUM_STREAMS")}
    size = len(example[0])
    peer = Peer(name, req.infer, lambda arrays: chunked(one, arrays, size),
                {"runtime": "openvino", "version": ov.__version__, "config": got, **info})
    peer.info["_keep"] = bound
    return peer


def nncf_quantize(fp32: Path, chunks: list[tuple], transformer: bool):
    import nncf
    import openvino as ov
    model = ov.Core().read_model(str(fp32))
    ds = nncf.Dataset(chunks, lambda item: list(item))
    kw = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    return nncf.quantize(model, ds, subset_size=len(chunks), **kw), {
        "nncf_version": nncf.__version__, "subset_size": len(chunks),
        "model_type": "TRANSFORMER" if transformer else None, "preset": "nncf default for the model type"}


# ----------------------------------------------------------------------------- all peers

def _reason(e: BaseException) -> str:
    if isinstance(e, ImportError):
        return f"not installed ({e}); pip install openvino nncf"
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]


def build_peers(model, example, calib, workdir, *, names: Sequence[str] = PEERS, threads: int = 2,
                transformer: bool = False, log: Callable[[str], None] = lambda m: None
                ) -> tuple[dict[str, Peer], dict[str, str]]:
    """({name: Peer}, {name: one-line reason it was skipped}) for the requested peers.

    example: the model's input tensors at the deployed shape; calib: batches (tuples of input
    tensors, anything after the inputs is ignored) for the static quantizers, re-cut to the
    example's batch size; workdir: where the ONNX files go. transformer: NNCF's TRANSFORMER
    model type, and static ORT quantization of MatMul/Gemm only."""
    bad = [n for n in names if n not in PEERS]
    if bad:
        raise ValueError(f"unknown peer(s) {bad}; choose from {', '.join(PEERS)}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ex = _arrays(example)
    size = len(ex[0])
    chunks = rechunk(calib, size, len(ex), like=ex) if calib is not None else []
    static_ops = TRANSFORMER_STATIC_OPS if transformer else None
    peers: dict[str, Peer] = {}
    skipped: dict[str, str] = {}
    files: dict[str, Path | str] = {}

    def step(key: str, fn):
        """Build file `key` once; a failure is remembered and reported by every peer needing it."""
        if key not in files:
            t0 = time.perf_counter()
            try:
                files[key] = fn()
                log(f"peers: {key} built in {time.perf_counter() - t0:.1f} s")
            except Exception as e:  # noqa: BLE001 - reported as the peers' skip reason
                files[key] = f"{key} failed: {_reason(e)}"
                log(f"peers: {files[key]}")
        if isinstance(files[key], str):
            raise _Skip(files[key])
        return files[key]

    fp32 = lambda: step("fp32_onnx", lambda: export_onnx(model, example, workdir / "model_fp32.onnx"))  # noqa: E731
    onames = lambda: input_names(model, len(ex))  # noqa: E731

    def pre():
        return step("preprocessed_onnx", lambda: preprocess(fp32(), workdir / "model_fp32_pre.onnx"))

    def qdq():
        if not chunks:
            raise _Skip("static quantization needs calibration batches of at least the example's batch size")
        return step("qdq_onnx", lambda: quantize_static_qdq(pre(), workdir / "model_int8_qdq.onnx", chunks, onames(),
                                                            static_ops))

    builders = {
        "ort_fp32": lambda: ort_peer("ort_fp32", fp32(), ex, threads, {"quantization": None}),
        "ort_int8_dynamic": lambda: ort_peer(
            "ort_int8_dynamic", step("dynamic_onnx", lambda: quantize_dynamic_int8(pre(), workdir / "model_int8_dyn.onnx")),
            ex, threads, {"quantization": "quantize_dynamic, QInt8 weights per channel, quant_pre_process first"}),
        "ort_int8_static": lambda: ort_peer(
            "ort_int8_static", qdq(), ex, threads,
            {"quantization": "quantize_static QDQ, QUInt8 activations (MinMax), QInt8 weights per channel, "
                             "quant_pre_process first", "op_types": list(static_ops) if static_ops else "ORT default",
             "calib_batches": len(chunks)}),
        "openvino_qdq": lambda: _ov_file("openvino_qdq", qdq(), ex, threads, {"quantization": "the ort_int8_static QDQ model"}),
        "openvino_nncf": lambda: _nncf_peer(step, fp32, chunks, ex, threads, transformer),
        "openvino_fp32": lambda: _ov_file("openvino_fp32", fp32(), ex, threads, {"quantization": None}),
    }
    for n in names:
        t0 = time.perf_counter()
        try:
            p = builders[n]()
        except _Skip as e:
            skipped[n] = str(e)
            continue
        except Exception as e:  # noqa: BLE001 - a failing peer is a skipped row, never a crash
            skipped[n] = _reason(e)
            log(f"peers: {n} skipped: {skipped[n]}")
            continue
        p.info["build_s"] = round(time.perf_counter() - t0, 2)
        peers[n] = p
    return peers, skipped


class _Skip(Exception):
    pass


def _ov_file(name, path, ex, threads, info):
    import openvino as ov
    return ov_peer(name, ov.Core().read_model(str(path)), ex, threads, {"model_bytes": Path(path).stat().st_size, **info})


def _nncf_peer(step, fp32, chunks, ex, threads, transformer):
    if not chunks:
        raise _Skip("NNCF needs calibration batches of at least the example's batch size")
    qmodel, meta = step("nncf_model", lambda: nncf_quantize(fp32(), chunks, transformer))
    return ov_peer("openvino_nncf", qmodel, ex, threads, {"quantization": "nncf.quantize (post-training)", **meta})


def public_info(info: dict) -> dict:
    """info without the private entries (bound arrays), for JSON."""
    return {k: v for k, v in info.items() if not k.startswith("_")}
