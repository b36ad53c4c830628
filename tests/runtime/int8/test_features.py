"""int8_support reads the isa from the target, never from the host."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("mcpu,isa", [("rocketlake", "vnni512"), ("sapphirerapids", "vnni512"),
                                      ("alderlake", "vnni256"), ("haswell", "generic"), ("x86-64", "generic")])
def test_isa_from_target(mcpu, isa):
    from spdy.runtime.int8 import int8_support
    s = int8_support({"kind": "llvm", "mcpu": mcpu, "num-cores": 2})
    assert s.isa == isa and mcpu in s.reason
    assert s.lanes == (16 if isa == "vnni512" else 8)


def test_not_x86_has_no_int8():
    import tvm
    from spdy.runtime.int8 import int8_support
    s = int8_support(tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72"}))
    assert s.isa is None and "not x86" in s.reason


def test_emitter_refuses_a_target_without_int8():
    import tvm
    from spdy.qscheme import ActQuant
    from spdy.runtime.int8 import int8_linear_layer
    tgt = tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72"})
    with pytest.raises(ValueError, match="fc: no int8 kernels for this target.*keep the layer fp32"):
        int8_linear_layer((4, 8), np.ones((4, 8), np.int8), np.ones(4, np.float32), None, has_residual=False,
                          activation="none", act=ActQuant(), fmt="dense", target=tgt, name="fc")
