"""Helpers for the sparse-kernel tests: build a kernel, run it, torch references."""
from __future__ import annotations

import numpy as np


def target():
    import tvm
    return tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
                              "num-cores": 2})


def run_kernel(k, x, extra=()):
    import tvm
    lib = tvm.tirx.build(k.func, target())
    args = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in [x, *k.consts, *extra,
                                                                np.zeros(k.out_shape, np.float32)]]
    lib[str(k.func.attrs["global_symbol"])](*args)
    return args[-1].numpy()


def act_ref(y, act):
    import torch
    from spdy.ir.ops import ACTIVATION_FNS
    t = torch.from_numpy(np.ascontiguousarray(y))
    return (t if act == "none" else ACTIVATION_FNS[act](t)).numpy()


def conv_ref(x, w, stride, padding, dilation):
    """torch conv2d with asymmetric padding (top, left, bottom, right)."""
    import torch
    t, l, b, r = padding
    xp = torch.nn.functional.pad(torch.from_numpy(x), (l, r, t, b))
    return torch.nn.functional.conv2d(xp, torch.from_numpy(np.ascontiguousarray(w)), stride=stride,
                                      dilation=dilation).numpy()
