"""The activations a spdy layer's epilogue can apply: one list for the IR (spdy/ir/ops.py, its
torch semantics), the fusion pass (spdy/ir/fuse.py) and every kernel family's epilogue
(spdy/runtime/kernels/tvmscript.activation_expr). No torch or tvm here: a deployed artifact
checks names without either."""

ACTIVATIONS = ("none", "relu", "relu6", "gelu", "silu", "hardswish", "sigmoid", "hardsigmoid")
