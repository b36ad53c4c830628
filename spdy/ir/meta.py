"""The only place where the `node.meta` keys spdy uses are named.

Passes read and write per-node facts through these constants, so a typo is an import error
rather than a silent miss.
"""
LAYER = "spdy.layer"          # LayerInfo of a prunable conv/linear node
MASK = "spdy.mask"            # qualname of the mask buffer applied to the node's weight
FUSED = "spdy.fused"          # list of the original node names an epilogue-fused node replaced
TENSOR = "tensor_meta"        # written by torch.fx ShapeProp (TensorMetadata)
QUANT = "spdy.quant"          # qualname of the layer whose input is fed by an int8 stub (spdy/ir/quant.py)
