"""Block-sparse (BSR) kernels: weights pruned in 16x1, 4x1 or 1x1 blocks times dense activations.

bsr.py       masks by block magnitude, dense <-> BSR (numpy only)
balance.py   per-thread work lists over uneven block rows
templates.py TVMScript kernel sources (Linear; Conv2d via im2col) and tuning candidates
direct_conv.py Conv2d without im2col: B rows read from zero-padded stride-phase planes
kernels.py   (PrimFunc, constant arrays) for one layer
emit.py      the Relax emitters the lowering calls for layers marked sparse
timing.py    compile-and-time helpers for benches (the lowering tunes through spdy.runtime.tune)
"""
from spdy.activations import ACTIVATIONS

from .bsr import BSR, FORMATS, block_norms, block_shape, magnitude_mask, prune_to_bsr, to_bsr
from .emit import emit_sparse_conv2d, emit_sparse_linear
from .kernels import SparseKernel, conv_kernel, linear_kernel
from .templates import ConvGeom, Params, candidates, default_params

__all__ = ["BSR", "FORMATS", "block_norms", "block_shape", "magnitude_mask", "prune_to_bsr", "to_bsr",
           "emit_sparse_conv2d", "emit_sparse_linear", "SparseKernel", "conv_kernel", "linear_kernel",
           "ACTIVATIONS", "ConvGeom", "Params", "candidates", "default_params"]
