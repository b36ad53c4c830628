"""Fused GELU epilogue: TVM's T.erf (a scalar libm call per element) vs spdy's rational erf.

1M GELUs in a parallel, 16-wide vectorized loop, 2 threads, both variants built and timed in
one run (alternating). Prints a line per variant and writes tools/bench/results/gelu.json.

    python tools/bench/gelu.py
"""
import json
import sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import os, math, numpy as np
os.environ["TVM_NUM_THREADS"] = "2"
import tvm
from spdy.runtime.kernels.tvmscript import parse_prim_func, gelu_expr
from spdy.runtime.measure import time_module
N = 1 << 20
def build(expr):
    src = f'''
@T.prim_func
def main(A: T.Buffer(({N},), "float32"), B: T.Buffer(({N},), "float32")):
    T.func_attr({{"tir.noalias": True}})
    for o in T.parallel({N // 16}):
        for i in T.vectorized(16):
            B[o * 16 + i] = {expr}
'''
    return tvm.tirx.build(parse_prim_func(src), tvm.target.Target({"kind": "llvm", "mcpu": "znver3", "num-cores": 2}))
old = "(A[o * 16 + i] * T.float32(0.5) * (T.float32(1) + T.erf(A[o * 16 + i] * T.float32(0.7071067811865476))))"
new = gelu_expr("A[o * 16 + i]")
a = np.linspace(-8, 8, N).astype("float32")
A, B = tvm.runtime.tensor(a), tvm.runtime.tensor(np.zeros_like(a))
ref = 0.5 * a.astype(float) * (1 + np.vectorize(math.erf)(a.astype(float) / math.sqrt(2)))
rows = []
for name, e in (("T.erf", old), ("polynomial", new), ("T.erf", old), ("polynomial", new)):
    m = build(e); m(A, B)
    t = time_module(m, "main", [A, B], repeat=9)
    err = float(np.abs(B.numpy() - ref).max())
    rows.append({"variant": name, "median_ms": t.median * 1e3, "max_abs_err": err})
    print(f"{name:<11} {t.median*1e3:.3f} ms per 1M GELUs, max err {err:.2e}")
out = ROOT / "tools" / "bench" / "results" / "gelu.json"
out.write_text(json.dumps({"n": N, "threads": 2, "loadavg": os.getloadavg(), "rows": rows}, indent=1))
