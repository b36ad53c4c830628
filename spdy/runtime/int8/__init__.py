"""int8 kernels (AVX-512 VNNI / AVX-VNNI / exact int32 fallback) for Linear and Conv2d layers.

Linear: `emit_int8_linear` (dense, bsr16x4, bsr4x4, bsr1x4), `time_int8_linear`, and
`int8_support` (which isa a target offers). Conv2d: spdy.runtime.int8.conv_emit.
The quantization scheme is spdy/qscheme.py.
"""
from .emit import emit_int8_linear, int8_linear_layer
from .features import Int8Support, int8_support
from .timing import time_int8_linear

__all__ = ["emit_int8_linear", "int8_linear_layer", "int8_support", "Int8Support", "time_int8_linear"]
