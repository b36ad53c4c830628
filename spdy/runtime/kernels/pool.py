"""2-D pooling, NCHW float32: window pools with vector lanes along output rows, and global
average pooling as a row mean.

TVM 0.27 legalizes pooling to loop nests whose window (or whole-map) reduction the generic
schedule (kernels/generic.py) can only run serially inside the parallel loop, one element at a
time: ResNet's 3x3/2 max pool took 0.30 ms (3% of ResNet-18), and EfficientNet-B0's sixteen
squeeze-excitation average pools 0.55 ms (8%). Here:
- a window pool is one task per (image, channel, output row): the window's rows are folded
  into a padded row buffer, then blocks of outputs fold their taps from it with vector loads
  and de-interleaving shuffles (window_pool_kernel); no padded copy of the input, no select.
  Windows that tile the rows (2x2/2) skip the buffer and fold in registers;
- a global average pool (output 1x1) is the mean of each (image, channel) row of H*W values
  (rowwise.row_mean_kernel); other adaptive average pools get a small scalar kernel (TVM's
  own failed spdy's build check).
Other layouts, dtypes, symbolic shapes and ceil-mode average pools fall back to TVM.
"""
from __future__ import annotations

from .relax_util import call_kernel, expr_type, static_shape_or_none
from .rowwise import NEG_INF, _header, _vloop, float_lanes, row_mean_kernel
from .tvmscript import f32, parse_prim_func


def window_pool_kernel(n: int, c: int, h: int, w: int, oh: int, ow: int, kernel, stride, padding,
                       dilation, *, op: str, count_include_pad: bool = True, lanes: int = 16,
                       symbol: str = "main"):
    """PrimFunc (X[n, c, h, w], Y[n, c, oh, ow]): op "max" or "avg" over each window.

    `padding` is (top, left, bottom, right); windows past the input (padding, ceil mode) see
    only their in-bounds elements. "avg" divides by KH*KW when count_include_pad (the caller
    guarantees every window lies inside the padded input), else by the in-bounds count.

    One task per (image, channel, output row), in two steps: the window's input rows are
    folded into one padded row buffer with contiguous vector loads (rows out of bounds are
    skipped, the border cells keep the identity), then each block of `lanes` outputs folds
    its KW taps from that buffer. With a column stride sw a tap's inputs are every sw-th
    element: sw contiguous vectors are loaded and de-interleaved by one shuffle (vpermi2ps
    for sw = 2). A strided load is scalarized per lane by LLVM: a first form with strided
    loads took 0.25 ms for ResNet-18's max pool in place (TVM's loop 0.31, this one 0.10)."""
    kh_n, kw_n = kernel
    sh, sw = stride
    pt, pl = padding[0], padding[1]
    dh, dw = dilation
    L = lanes
    is_max = op == "max"
    if _tiles_rows(h, w, oh, ow, kernel, stride, padding, dilation):
        return _tiling_pool_kernel(n, c, h, w, oh, ow, kh_n, sh, sw, op=op, lanes=L, symbol=symbol)
    ident = NEG_INF if is_max else "T.float32(0)"
    comb = (lambda a, b: f"T.max({a}, {b})") if is_max else (lambda a, b: f"{a} + {b}")
    nblk = -(-ow // L)
    wb = max(pl + w, nblk * L * sw + (kw_n - 1) * dw)   # every block's loads stay inside
    b_, c_, r_ = f"(t // {c * oh})", f"(t // {oh} % {c})", f"(t % {oh})"
    S = _header(symbol, f"{op}_pool", [f'X: T.Buffer(({n}, {c}, {h}, {w}), "float32")',
                                       f'Y: T.Buffer(({n}, {c}, {oh}, {ow}), "float32")'])
    S += [f"    for t in T.parallel({n * c * oh}):",
          f'        row = T.alloc_buffer(({wb},), "float32")',
          f'        out = T.alloc_buffer(({nblk * L},), "float32")']
    S += _vloop(wb, L, lambda x: f"row[{x}] = {ident}", "        ")
    S += [f"        for i in range({kh_n}):",
          f"            ih: T.let = {r_} * {sh} + i * {dh} - {pt}",
          f"            if ih >= 0 and ih < {h}:"]
    S += _vloop(w, L, lambda x: f"row[{pl} + {x}] = {comb(f'row[{pl} + {x}]', f'X[{b_}, {c_}, ih, {x}]')}",
                "                ")
    S += [f"        for ob in range({nblk}):"]
    taps = []
    for j in range(kw_n):
        base = f"ob * {L * sw} + {j * dw}"
        if sw == 1:
            taps.append(f"row[T.ramp({base}, 1, {L})]")
        else:
            vecs = ", ".join(f"row[T.ramp({base} + {v * L}, 1, {L})]" for v in range(sw))
            taps.append(f"T.Shuffle([{vecs}], [{', '.join(str(k * sw) for k in range(L))}])")
    folded = taps[0]
    for tap in taps[1:]:
        folded = comb(folded, tap)
    S += [f"            out[T.ramp(ob * {L}, 1, {L})] = {folded}"]
    if is_max:
        res = lambda q: f"out[{q}]"   # noqa: E731
    elif count_include_pad:
        res = lambda q: f"out[{q}] * {f32(1.0 / (kh_n * kw_n))}"   # noqa: E731
    else:   # in-bounds rows x in-bounds columns of each window
        rows = " + ".join(f"T.Select({r_} * {sh} + {i * dh - pt} >= 0 and {r_} * {sh} + {i * dh - pt} < {h}, 1, 0)"
                          for i in range(kh_n))

        def res(q):
            cols = " + ".join(f"T.Select({q} * {sw} + {j * dw - pl} >= 0 and {q} * {sw} + {j * dw - pl} < {w}, 1, 0)"
                              for j in range(kw_n))
            return f'out[{q}] / T.Cast("float32", T.max(({rows}) * ({cols}), 1))'
    S += _vloop(ow, L, lambda q: f"Y[{b_}, {c_}, {r_}, {q}] = {res(q)}", "        ")
    return parse_prim_func("\n".join(S) + "\n")


def _tiles_rows(h, w, oh, ow, kernel, stride, padding, dilation) -> bool:
    """Windows that tile each row without overlap or padding (MaxPool2d(2), AvgPool2d(2)):
    every window lies inside the input and output column q reads columns q*sw .. q*sw+sw-1."""
    (kh, kw), (sh, sw) = kernel, stride
    return (kw == sw and tuple(dilation) == (1, 1) and not any(padding)
            and (oh - 1) * sh + kh <= h and ow * sw <= w)


def _tiling_pool_kernel(n, c, h, w, oh, ow, kh, sh, sw, *, op: str, lanes: int, symbol: str):
    """window_pool_kernel for row-tiling windows, folded in registers: each block of `lanes`
    outputs loads sw*lanes contiguous inputs from each of its kh rows, folds the rows
    elementwise, then the sw columns of every window by de-interleaving shuffles; the row tail
    is one masked vector. The general kernel's row buffer costs a store-forwarding stall per
    tap on small maps (masked stores, then loads shifted by one float): MNIST's 2x2 pools at
    batch 32 took 0.12-0.13 ms there."""
    L, wide = lanes, lanes * sw
    comb = (lambda a, b: f"T.max({a}, {b})") if op == "max" else (lambda a, b: f"{a} + {b}")
    S = _header(symbol, f"{op}_pool", [f'X: T.Buffer(({n}, {c}, {h}, {w}), "float32")',
                                       f'Y: T.Buffer(({n}, {c}, {oh}, {ow}), "float32")'])
    S += [f'    Xf = T.decl_buffer(({n * c * h * w},), "float32", data=X.data)',
          f'    Yf = T.decl_buffer(({n * c * oh * ow},), "float32", data=Y.data)',
          f"    for t in T.parallel({n * c * oh}):",
          f"        x0: T.let = ((t // {oh}) * {h} + (t % {oh}) * {sh}) * {w}"]

    def block(q0: str, valid: int | None) -> list[str]:
        """Lines for outputs q0 .. q0+L-1 (the first `valid` of them when a tail)."""
        rows = []
        for i in range(kh):
            at = f"T.ramp(x0 + {i * w} + {q0} * {sw}, 1, {wide})"
            rows.append(f"Xf[{at}]" if valid is None else
                        f'T.masked_load("float32x{wide}", Xf, {at}, '
                        f'T.ramp(0, 1, {wide}) < T.broadcast({valid * sw}, {wide}))')
        v = rows[0]
        for r in rows[1:]:
            v = comb(v, r)
        out = [f"            v: T.let = {v}"]
        taps = [f"T.Shuffle([v], [{', '.join(str(k * sw + j) for k in range(L))}])" for j in range(sw)]
        folded = taps[0]
        for tap in taps[1:]:
            folded = comb(folded, tap)
        if op != "max":
            folded = f"({folded}) * T.broadcast({f32(1.0 / (kh * sw))}, {L})"
        at = f"T.ramp(t * {ow} + {q0}, 1, {L})"
        out.append(f"            Yf[{at}] = {folded}" if valid is None else
                   f"            T.masked_store(Yf, {folded}, {at}, T.ramp(0, 1, {L}) < T.broadcast({valid}, {L}))")
        return out

    if ow // L:
        S += [f"        for ob in range({ow // L}):"] + block(f"ob * {L}", None)
    if ow % L:
        S += ["        if True:"] + block(str(ow // L * L), ow % L)
    return parse_prim_func("\n".join(S) + "\n")


def adaptive_avg_pool_kernel(n: int, c: int, h: int, w: int, oh: int, ow: int, *, symbol: str = "main"):
    """PrimFunc (X[n, c, h, w], Y[n, c, oh, ow]): torch's adaptive average pool, output (i, j)
    the mean of rows [floor(i*h/oh), ceil((i+1)*h/oh)) and the same for columns. Scalar loops
    in a parallel one: outputs other than 1x1 are small (VGG's 7x7), and TVM's own form failed
    spdy's build check as unscheduled serial loops."""
    b_, c_, r_ = f"(t // {c * oh})", f"(t // {oh} % {c})", f"(t % {oh})"
    L = _header(symbol, "adaptive_avg_pool", [f'X: T.Buffer(({n}, {c}, {h}, {w}), "float32")',
                                              f'Y: T.Buffer(({n}, {c}, {oh}, {ow}), "float32")'])
    L += [f"    for t in T.parallel({n * c * oh}):",
          '        acc = T.alloc_buffer((1,), "float32")',
          f"        hs: T.let = {r_} * {h} // {oh}",
          f"        he: T.let = ({r_} * {h} + {h + oh - 1}) // {oh}",
          f"        for q in range({ow}):",
          f"            ws: T.let = q * {w} // {ow}",
          f"            we: T.let = (q * {w} + {w + ow - 1}) // {ow}",
          "            acc[0] = T.float32(0)",
          "            for i in range(he - hs):",
          "                for j in range(we - ws):",
          f"                    acc[0] = acc[0] + X[{b_}, {c_}, hs + i, ws + j]",
          f'            Y[{b_}, {c_}, {r_}, q] = acc[0] / T.Cast("float32", (he - hs) * (we - ws))']
    return parse_prim_func("\n".join(L) + "\n")


def _ints(v) -> list[int]:
    return [int(x) for x in v]


def make_pool_legalizers(ctx) -> dict:
    """{"relax.nn.max_pool2d", "relax.nn.avg_pool2d", "relax.nn.adaptive_avg_pool2d": f} for
    LegalizeOps' custom map."""
    import tvm
    from tvm import relax

    def default_of(name):
        return tvm.ir.Op.get(name).get_attr("FLegalize")

    def nchw_f32(call):
        x, a = call.args[0], call.attrs
        shape = static_shape_or_none(x)
        out = static_shape_or_none(call)
        ok = (shape is not None and out is not None and len(shape) == 4 and expr_type(x).dtype == "float32"
              and str(a.layout) == "NCHW" and str(a.out_layout) == "NCHW")
        return (shape, out) if ok else (None, None)

    def window(op_name: str, op: str):
        def legalize(bb, call):
            shape, out = nchw_f32(call)
            a = call.attrs
            if shape is None:
                return default_of(op_name)(bb, call)
            pad = _ints(a.padding)
            pad = pad * 2 if len(pad) == 2 else pad
            cip = op == "avg" and bool(a.count_include_pad)
            if cip and bool(a.ceil_mode):   # torch clips ceil-mode windows at the padded edge
                return default_of(op_name)(bb, call)
            n, c, h, w = shape
            sym = ctx.unique_symbol(f"{op}_pool")
            f = window_pool_kernel(n, c, h, w, out[2], out[3], _ints(a.pool_size), _ints(a.strides), pad,
                                   _ints(a.dilation), op=op, count_include_pad=cip,
                                   lanes=float_lanes(ctx.target), symbol=sym)
            ctx.count(f"pool.{op}")
            return call_kernel(bb, f, sym, [call.args[0]], tuple(out))
        return legalize

    def adaptive_avg(bb, call):
        shape, out = nchw_f32(call)
        if shape is None:
            return default_of("relax.nn.adaptive_avg_pool2d")(bb, call)
        n, c, h, w = shape
        if tuple(out[2:]) != (1, 1):
            sym = ctx.unique_symbol("adaptive_avg_pool")
            ctx.count("pool.adaptive_avg")
            return call_kernel(bb, adaptive_avg_pool_kernel(n, c, h, w, out[2], out[3], symbol=sym), sym,
                               [call.args[0]], tuple(out))
        sym = ctx.unique_symbol("global_avg_pool")
        x2 = bb.normalize(relax.op.reshape(call.args[0], [n * c, h * w]))
        y = call_kernel(bb, row_mean_kernel(n * c, h * w, lanes=float_lanes(ctx.target), symbol=sym), sym,
                        [x2], (n * c,))
        ctx.count("pool.global_avg")
        return relax.op.reshape(y, [n, c, 1, 1])

    return {"relax.nn.max_pool2d": window("relax.nn.max_pool2d", "max"),
            "relax.nn.avg_pool2d": window("relax.nn.avg_pool2d", "avg"),
            "relax.nn.adaptive_avg_pool2d": adaptive_avg}
