"""The AMX kernel tests' target and skip rule (shared by test_conv_amx.py and test_linear_amx.py)."""
from __future__ import annotations

import pytest

from ._conv_util import host_has


def amx_target():
    """This CPU's LLVM name with the AMX int8 features added (LLVM may name a VM's CPU without them)."""
    import tvm
    return tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(), "num-cores": 2,
                              "mattr": ["+amx-tile", "+amx-int8"]})


def needs_amx():
    from spdy.runtime.amx import request_amx
    if not (host_has("amx_int8") and host_has("amx_tile") and request_amx()):
        pytest.skip("this CPU (or this Linux) offers no AMX tiles")
