"""Whole-model dense latency: spdy's kernels + Relax pipeline vs PyTorch eager and onnxruntime.

Models (defined here; BN already folded into conv biases, as spdy's lowering does):
ResNet-18 (1x3x224x224) and the BERT-base FFN block ([128,768] -> 3072 -> GELU -> 768).
The model goes through torch.export and TVM's frontend with conv2d/linear routed to spdy's
emitters (custom_convert_map), then ``spdy.runtime.kernels.relax_pipeline``. Same threads for
all runtimes, interleaved rounds, medians and ratios (peer / spdy; > 1 means spdy faster).

    python tools/bench/e2e.py [--models resnet18,bert_ffn] [--threads 2] [--rounds 5] [--tune] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def resnet18():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
            self.ds = nn.Conv2d(cin, cout, 1, stride, 0) if stride != 1 or cin != cout else None

        def forward(self, x):
            y = torch.relu(self.c1(x))
            y = self.c2(y)
            return torch.relu(y + (self.ds(x) if self.ds is not None else x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 64, 7, 2, 3)
            self.pool = nn.MaxPool2d(3, 2, 1)
            chans = [(64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2),
                     (256, 256, 1), (256, 512, 2), (512, 512, 1)]
            self.blocks = nn.Sequential(*[Block(a, b, s) for a, b, s in chans])
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            x = self.pool(torch.relu(self.stem(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return ResNet18().eval(), (torch.randn(1, 3, 224, 224),)


def bert_ffn():
    import torch
    from torch import nn
    m = nn.Sequential(nn.Linear(768, 3072), nn.GELU(), nn.Linear(3072, 768)).eval()
    return m, (torch.randn(128, 768),)


MODELS = {"resnet18": resnet18, "bert_ffn": bert_ffn}


def to_relax(model, inputs, ctx):
    """torch.export -> Relax, with conv2d/linear emitted by spdy's kernels."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program
    from spdy.runtime.kernels import emit_conv2d, emit_linear
    ep = torch.export.export(model, inputs)
    sig = ep.graph_signature
    params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    state = ep.state_dict

    def tensor(node):
        return None if node is None else state[params[node.name]].detach().numpy()

    def conv(node, imp):
        a = list(node.args) + [None] * (7 - len(node.args))
        x, w, b, stride, pad, dil, groups = a[:7]
        stride, pad, dil = stride or [1, 1], pad or [0, 0], dil or [1, 1]
        return emit_conv2d(imp.block_builder, imp.env[x], tensor(w), tensor(b), None,
                           stride=tuple(stride), padding=(pad[0], pad[1], pad[0], pad[1]),
                           dilation=tuple(dil), groups=groups or 1, activation="none",
                           name=node.name, ctx=ctx)

    def linear(node, imp):
        x, w = node.args[:2]
        b = node.args[2] if len(node.args) > 2 else None
        return emit_linear(imp.block_builder, imp.env[x], tensor(w), tensor(b), None,
                           activation="none", name=node.name, ctx=ctx)

    return from_exported_program(ep, run_ep_decomposition=False,
                                 custom_convert_map={"conv2d.default": conv, "linear.default": linear})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,bert_ffn")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "tools/bench/results/e2e_dense.json"))
    args = ap.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch
    import tvm
    from tvm import relax
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.kernels import relax_pipeline
    from spdy.runtime.measure import time_callable, time_module
    torch.set_num_threads(args.threads)
    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                                "num-cores": args.threads})
    tuner = None
    if args.tune:
        from spdy.runtime.tune import Tuner
        tuner = Tuner(target, num_threads=args.threads)
    results = {}
    for name in args.models.split(","):
        model, inputs = MODELS[name]()
        ctx = EmitContext(target=target, num_threads=args.threads, tuner=tuner)
        t0 = time.time()
        mod = to_relax(model, inputs, ctx)
        ex = tvm.compile(mod, target, relax_pipeline=relax_pipeline(target, ctx))
        build_s = time.time() - t0
        vm = relax.VirtualMachine(ex, tvm.cpu())
        xs = [tvm.runtime.tensor(i.numpy()) for i in inputs]
        with torch.no_grad():
            ref = model(*inputs).numpy()
        out = vm["main"](*xs)
        out = out[0] if isinstance(out, (list, tuple)) or type(out).__name__ == "Array" else out
        err = float(np.abs(out.numpy() - ref).max())
        ort = None
        try:
            import onnxruntime as ort_mod
            p = Path("/tmp") / f"spdy_e2e_{name}.onnx"
            torch.onnx.export(model, inputs, str(p), dynamo=False)
            so = ort_mod.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            sess = ort_mod.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: inputs[0].numpy()}
            ort = lambda: sess.run(None, feed)  # noqa: E731
        except Exception as e:  # benchmark-only extra
            print(f"onnxruntime unavailable for {name}: {e}", file=sys.stderr)
        samples = {"spdy": [], "torch": [], "onnxruntime": []}
        for _ in range(args.rounds):  # interleaved rounds
            samples["spdy"].append(time_module(vm, "main", xs, repeat=3, min_repeat_ms=50).median)
            with torch.no_grad():
                samples["torch"].append(time_callable(lambda: model(*inputs), repeat=3, min_repeat_ms=50).median)
            if ort:
                samples["onnxruntime"].append(time_callable(ort, repeat=3, min_repeat_ms=50).median)
        med = {k: float(np.median(v)) * 1e3 for k, v in samples.items() if v}
        res = dict(model=name, build_s=build_s, max_abs_err=err, median_ms=med,
                   ratio_vs={k: med[k] / med["spdy"] for k in med if k != "spdy"}, stats=dict(ctx.stats))
        results[name] = res
        print(json.dumps(res), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"threads": args.threads, "target": str(target),
                                          "results": results}, indent=1))


if __name__ == "__main__":
    main()
