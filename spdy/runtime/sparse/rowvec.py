"""Row-vector block-sparse Linear for few input rows (batch-1 fc layers, M < 16).

Why a second formulation: the column-vector kernel in templates.py vectorizes over rows of
X (M), so with M = 1 it computes 15 padding lanes of every 16 (measured 0.5x of torch on
the ResNet fc layers). Here a register holds the BR outputs of one block (vectorized over
BR, 16 or 4 lanes) for MR rows of X:

    for each nonzero block j of block row r:   y[m, r*BR:(r+1)*BR] += X[m, k_j] * data[j, :]

(the design doc's probe kernel, with tails, epilogue and the same work lists). Rows of X
past M are read clamped (junk lanes never stored); the last block row's store is guarded
when N % BR != 0. Needs BR >= 4 (a 1x1 block would be a scalar loop).
"""
from __future__ import annotations

from .templates import Params, _args, _epilogue


def rowvec_linear_source(x_shape, n: int, br: int, nnzb: int, nwork: int, p: Params, *,
                         bias: bool, residual: bool, act: str) -> str:
    """Y[..., N] = act(X[..., K] @ W^T + bias + residual) with MR = p.mr rows per tile."""
    *lead, k = x_shape
    m = 1
    for d in lead:
        m *= d
    mr = p.mr
    nrows = -(-n // br)
    y_shape = (*lead, n)
    regs = "".join(f"                a{i} = T.alloc_buffer(({br},), \"float32\")\n" for i in range(mr))
    init = "".join(f"                for v in T.vectorized({br}):\n                    a{i}[v] = T.float32(0)\n"
                   for i in range(mr))
    fma = "".join(f"                    for v in T.vectorized({br}):\n"
                  f"                        a{i}[v] = a{i}[v] + Xf[T.min(tile * {mr} + {i}, {m - 1}), indices[j]]"
                  f" * data[j, v]\n" for i in range(mr))
    col = f"wrow[w] * {br} + v"
    store = ""
    for i in range(mr):
        row = f"tile * {mr} + {i}"
        z = f"a{i}[v]" + (f" + bias[{col}]" if bias else "") + (f" + Rf[{row}, {col}]" if residual else "")
        body = [f"a{i}[v] = {z}", f"Yf[{row}, {col}] = {_epilogue(f'a{i}[v]', act)}"]
        ind = " " * 16
        if m % mr and i > 0:                 # only rows past the first can fall off the end
            store += f"{ind}if {row} < {m}:\n"
            ind += "    "
        if n % br:
            store += (f"{ind}if wrow[w] < {nrows - 1}:\n{ind}    for v in T.vectorized({br}):\n"
                      + "".join(f"{ind}        {b}\n" for b in body)
                      + f"{ind}else:\n{ind}    for v in range({n % br}):\n"
                      + "".join(f"{ind}        {b}\n" for b in body))
        else:
            store += f"{ind}for v in T.vectorized({br}):\n" + "".join(f"{ind}    {b}\n" for b in body)
    src = f'''
@T.prim_func
def kernel({_args(x_shape, nnzb, br, nrows, nwork, p.parts, n, bias, residual, y_shape)}):
    T.func_attr({{"tir.noalias": True, "global_symbol": SYMBOL}})
    Xf = T.decl_buffer(({m}, {k}), "float32", data=X.data)
    Yf = T.decl_buffer(({m}, {n}), "float32", data=Y.data)
'''
    if residual:
        src += f'    Rf = T.decl_buffer(({m}, {n}), "float32", data=res.data)\n'
    return src + f'''    for part in T.parallel({p.parts}):
        for wi in range(wptr[part + 1] - wptr[part]):
            w: T.let = wptr[part] + wi
            for ti in range(wt1[w] - wt0[w]):
                tile: T.let = wt0[w] + ti
{regs}{init}                for jj in range(indptr[wrow[w] + 1] - indptr[wrow[w]]):
                    j: T.let = indptr[wrow[w]] + jj
{fma}{store}'''
