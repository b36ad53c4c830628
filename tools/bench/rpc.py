"""Measuring over TVM RPC: overhead per measurement, and latency-table fill time through a tracker.

    nice -n 10 python tools/bench/rpc.py overhead [--n 40]
    nice -n 10 python tools/bench/rpc.py table [--model resnet18] [--servers 1,2] [--levels 41]

`overhead`: the same kernel timings as the tuner does them (repeat=5, min_repeat_ms=10; and a bare
one-sample timing) locally and through `spdy device serve` on 127.0.0.1 (loopback RPC). Per
measurement: wall time, and the median the time evaluator reported.

`table`: the profile-latency pass (the latency table: every layer's kernels tuned and timed per
sparsity level) of a model, from an empty latency database each time, measured through a TVM RPC
tracker with 1 and with 2 `spdy device serve` servers on this machine. On a 2-core machine
the host's compiles and both servers share the same cores, so this shows the mechanism, not
the gain two real devices give.

Servers and the tracker are started here as child processes (own process groups) and killed at
the end. Results: tools/bench/results/rpc.json (merged per command).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TVM_NUM_THREADS", "2")
RESULTS = ROOT / "tools" / "bench" / "results" / "rpc.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOGS = Path(tempfile.mkdtemp(prefix="spdy-rpc-bench-logs-"))


def start(args, port):
    log = open(LOGS / f"{args[1].rsplit('.', 1)[-1]}-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, *args, *(["--verbose"] if "serve" in args else [])], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{args} did not listen on {port}")


def serve(port, *extra, threads=2):
    return start(["-m", "spdy.cli", "device", "serve", "--port", str(port), "--threads", str(threads), *extra], port)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def save(section: str, data) -> None:
    out = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    out[section] = data
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")


def overhead(args) -> dict:
    import numpy as np
    import tvm
    from spdy.runtime.device import LOCAL, parse_measure
    from spdy.runtime.kernels.gemm import GemmParams, GemmSpec
    from spdy.runtime.kernels.select import build_gemm_for_timing
    from spdy.runtime.target import parse_target

    target = parse_target("host").to_tvm()
    kernels = {"gemm 64x64x64": GemmSpec(64, 64, 64), "gemm 64x3136x576 (a resnet18 layer1 conv)": GemmSpec(64, 3136, 576)}
    port = free_port()
    proc = serve(port)
    res = {"host_cpu": LOCAL.identity().cpu, "n": args.n, "kernels": {}}
    try:
        remote = parse_measure(f"rpc://127.0.0.1:{port}")
        remote.identity()
        for name, spec in kernels.items():
            lib, targs = build_gemm_for_timing(spec, GemmParams(), target)
            row = {}
            for mode, kw in {"tuner (repeat=5, min_repeat_ms=10)": dict(repeat=5, min_repeat_ms=10.0),
                             "bare (repeat=1, number=1)": dict(repeat=1, min_repeat_ms=0.0, number=1)}.items():
                for dev_name, dev in (("local", LOCAL), ("rpc", remote)):
                    dev.time_module(lib, "main", targs, **kw)  # warm: upload, page faults
                    walls, meds = [], []
                    for _ in range(args.n):
                        t0 = time.perf_counter()
                        m = dev.time_module(lib, "main", targs, **kw)
                        walls.append(time.perf_counter() - t0)
                        meds.append(m.median)
                    row.setdefault(mode, {})[dev_name] = {"wall_ms_median": float(np.median(walls) * 1e3),
                                                          "kernel_ms_median": float(np.median(meds) * 1e3)}
                r = row[mode]
                r["overhead_ms_per_measurement"] = r["rpc"]["wall_ms_median"] - r["local"]["wall_ms_median"]
                print(f"{name:44s} {mode:36s} local {r['local']['wall_ms_median']:8.3f} ms  rpc "
                      f"{r['rpc']['wall_ms_median']:8.3f} ms  overhead {r['overhead_ms_per_measurement']:7.3f} ms  "
                      f"(kernel {r['local']['kernel_ms_median']:.4f} vs {r['rpc']['kernel_ms_median']:.4f} ms)",
                      flush=True)
            res["kernels"][name] = row
        # a new kernel each time (what tuning does): export + upload + load_module included
        lib_new = [build_gemm_for_timing(GemmSpec(64, 64, 64 + 16 * i), GemmParams(), target) for i in range(args.n)]
        walls = {"local": [], "rpc": []}
        for dev_name, dev in (("local", LOCAL), ("rpc", remote)):
            for lib, targs in lib_new:
                t0 = time.perf_counter()
                dev.time_module(lib, "main", targs, repeat=1, min_repeat_ms=0.0, number=1)
                walls[dev_name].append(time.perf_counter() - t0)
        import numpy as np
        new = {k: float(np.median(v) * 1e3) for k, v in walls.items()}
        new["overhead_ms_per_measurement"] = new["rpc"] - new["local"]
        res["new_kernel_each_time_bare"] = new
        print(f"new kernel each time (export+upload+load), bare timing: local {new['local']:.3f} ms  rpc "
              f"{new['rpc']:.3f} ms  overhead {new['overhead_ms_per_measurement']:.3f} ms")
        remote.close()
    finally:
        stop(proc)
    return res


def table(args) -> dict:
    import torch
    from spdy import models
    from spdy.ir.trace import normalize_inputs
    from spdy.passes.context import CompileContext, CompileOptions
    from spdy.pipelines import search_prep_pipeline
    from spdy.runtime.device import parse_measure
    from spdy.runtime.target import parse_target
    from spdy.runtime.tune import Tuner

    model = getattr(models, args.model)().eval()
    shape = {"resnet18": (1, 3, 224, 224), "resnet50": (1, 3, 224, 224)}.get(args.model, (1, 3, 32, 32))
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    spec = parse_target("host")
    out = {"model": args.model, "levels": args.levels, "runs": {}}
    for n in [int(s) for s in args.servers.split(",")]:
        cache = tempfile.mkdtemp(prefix="spdy-rpc-bench-")
        os.environ["SPDY_CACHE_DIR"] = cache  # an empty latency DB for every run
        tport = free_port()
        procs = [start(["-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tport),
                        "--port-end", str(tport + 1), "--silent"], tport)]
        try:
            for _ in range(n):
                procs.append(serve(free_port(), "--tracker", f"127.0.0.1:{tport}", "--key", "bench",
                                   threads=args.threads))
            pool = parse_measure(f"tracker://127.0.0.1:{tport}/bench")
            t0 = time.time()
            while pool.server_count() < n and time.time() - t0 < 60:
                time.sleep(0.2)
            ctx = CompileContext(model=model, inputs=normalize_inputs((x,)), target=spec,
                                 workdir=Path(tempfile.mkdtemp(prefix="spdy-rpc-bench-")),
                                 options=CompileOptions(num_threads=args.threads, seed=0, speedup=2.0),
                                 tuner=Tuner(target=spec.to_tvm(), num_threads=args.threads, device=pool), device=pool)
            pipeline = search_prep_pipeline(formats=("bsr16x1",), levels=args.levels, database=False)
            t0 = time.perf_counter()
            _, records = pipeline.run(None, ctx)
            total = time.perf_counter() - t0
            walls = {r["pass"]: r["wall_s"] for r in records}
            stats = next(r["stats"] for r in records if r["pass"] == "profile-latency")
            run = {"servers": n, "profile_latency_s": walls["profile-latency"],
                   "dense_baseline_s": walls["dense-baseline"], "total_s": round(total, 2),
                   "table": {k: stats[k] for k in ("layers", "options", "timed_options", "cache_hits", "cache_misses")
                             if k in stats},
                   "device": pool.report(args.threads)}
            print(json.dumps(run), flush=True)
            out["runs"][str(n)] = run
            pool.close()
        finally:
            for p in procs:
                stop(p)
    return out


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--n", type=int, default=40)
    t = sub.add_parser("table")
    t.add_argument("--model", default="resnet18")
    t.add_argument("--servers", default="1,2")
    t.add_argument("--levels", type=int, default=41)
    t.add_argument("--threads", type=int, default=1, help="TVM threads per server (and per measurement)")
    args = ap.parse_args()
    res = overhead(args) if args.cmd == "overhead" else table(args)
    res["command"] = " ".join(["python tools/bench/rpc.py", *sys.argv[1:]])
    res["date"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    save(args.cmd, res)


if __name__ == "__main__":
    main()
