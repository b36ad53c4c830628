"""Helpers shared by the dense-kernel tests: build a one-function Relax module and run it."""
from __future__ import annotations

import numpy as np


def target():
    import tvm
    return tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                              "num-cores": 2})


def run_prim_func(func, *arrays: np.ndarray, out_shape) -> np.ndarray:
    """Compile a PrimFunc (inputs..., Y) and run it on float32 `arrays`; Y starts as NaN, so
    an element the kernel never writes fails the comparison."""
    import tvm
    lib = tvm.compile(func, target=target())
    args = [tvm.runtime.tensor(np.ascontiguousarray(a, dtype="float32")) for a in arrays]
    out = tvm.runtime.tensor(np.full(out_shape, np.nan, "float32"))
    lib(*args, out)
    return out.numpy()


def run_elementwise(expr_of, x: np.ndarray) -> np.ndarray:
    """Y = expr_of("X[i]") over a 1-D float32 array (length a multiple of 16), in one 16-lane
    vectorized loop, as the kernels' epilogues and row loops run such expressions."""
    from spdy.runtime.kernels.tvmscript import parse_prim_func
    n = x.size
    src = f'''@T.prim_func
def main(X: T.Buffer(({n},), "float32"), Y: T.Buffer(({n},), "float32")):
    T.func_attr({{"global_symbol": "main", "tir.noalias": True}})
    for kb in range({n // 16}):
        for l in T.vectorized(16):
            Y[kb * 16 + l] = {expr_of("X[kb * 16 + l]")}
'''
    return run_prim_func(parse_prim_func(src), x, out_shape=(n,))


def build_and_run(inputs: list[np.ndarray], body, ctx=None):
    """body(bb, vars, ctx) -> relax expr; returns (numpy output, ctx)."""
    import tvm
    from tvm import relax
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.kernels import relax_pipeline
    tgt = target()
    ctx = ctx or EmitContext(target=tgt, num_threads=2)
    bb = relax.BlockBuilder()
    vs = [relax.Var(f"x{i}", relax.TensorType(list(a.shape), "float32")) for i, a in enumerate(inputs)]
    with bb.function("main", vs):
        with bb.dataflow():
            out = bb.emit_output(body(bb, vs, ctx))
        bb.emit_func_output(out)
    ex = tvm.compile(bb.get(), tgt, relax_pipeline=relax_pipeline(tgt, ctx))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(a) for a in inputs]).numpy(), ctx
