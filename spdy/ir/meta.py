"""The only place where the `node.meta` keys spdy uses are named.

Passes read and write per-node facts through these constants, so a typo is an import error
rather than a silent miss.
"""
LAYER = "spdy.layer"          # LayerInfo of a prunable conv/linear node
MASK = "spdy.mask"            # qualname of the mask buffer applied to the node's weight
FUSED = "spdy.fused"          # list of the original node names an epilogue-fused node replaced
TENSOR = "tensor_meta"        # written by torch.fx ShapeProp (TensorMetadata)
QUANT = "spdy.quant"          # qualname of the layer whose input is fed by an int8 stub (spdy/ir/quant.py)


def tensor_shape(node) -> tuple | None:
    """The shape ShapeProp recorded under TENSOR for `node`; None when `node` is not a graph
    node, has no record, or returns something other than one tensor (a tuple of them, a size)."""
    m = getattr(node, "meta", None)
    shape = getattr(m.get(TENSOR), "shape", None) if isinstance(m, dict) else None
    return tuple(shape) if shape is not None else None


def tensor_dtype(node):
    """The torch dtype ShapeProp recorded for `node`, or None (as tensor_shape)."""
    m = getattr(node, "meta", None)
    return getattr(m.get(TENSOR), "dtype", None) if isinstance(m, dict) else None
