"""Weight masks on a canonical graph.

A mask is a buffer next to the layer's weight (`<module>.spdy_mask`; layers.beside_weight),
applied by a `mul` node between the weight's get_attr and the layer op. All-ones masks
compute exactly what the unmasked graph computes (w * 1 == w in IEEE arithmetic), so masks
can be inserted early and set later by the search; `bake_masks` writes w * mask back into the weight and removes the
mul nodes before lowering, so the kernels see plain (zero-filled) constants.
"""
from __future__ import annotations

import operator

import torch
import torch.fx

from spdy.errors import SpdyError
from spdy.ir import meta
from spdy.ir.layers import LayerInfo, beside_weight
from spdy.ir.ops import layer_args, replace_args
from spdy.ir.tensors import get_tensor, set_tensor

MASK_BUFFER = "spdy_mask"


def mask_path(layer: LayerInfo) -> str:
    return beside_weight(layer.weight, MASK_BUFFER)


def insert_masks(gm: torch.fx.GraphModule, layers: list[LayerInfo]) -> int:
    """Insert an all-ones mask for each layer that has none yet; returns how many were added."""
    nodes = {n.name: n for n in gm.graph.nodes}
    added = 0
    for layer in layers:
        node = nodes[layer.node]
        if meta.MASK in node.meta:
            continue
        w_node = layer_args(node).weight
        w = get_tensor(gm, layer.weight)
        set_tensor(gm, mask_path(layer), torch.ones_like(w), parameter=False)
        with gm.graph.inserting_before(node):
            m = gm.graph.get_attr(mask_path(layer))
            mul = gm.graph.call_function(operator.mul, (w_node, m))
        mul.meta[meta.TENSOR] = w_node.meta.get(meta.TENSOR)
        node.args = replace_args(node, weight=mul)
        node.meta[meta.MASK] = mask_path(layer)
        added += 1
    gm.graph.lint()
    gm.recompile()
    return added


def set_mask(gm: torch.fx.GraphModule, layer: LayerInfo, mask: torch.Tensor) -> None:
    current = get_tensor(gm, mask_path(layer))
    if tuple(mask.shape) != tuple(current.shape):
        raise SpdyError(f"mask for {layer.qualname} has shape {tuple(mask.shape)}, "
                        f"the weight has {tuple(current.shape)}")
    current.copy_(mask.to(current.dtype))


def bake_masks(gm: torch.fx.GraphModule) -> int:
    """weight <- weight * mask, and drop the mask nodes and buffers; returns layers baked."""
    baked = 0
    for node in list(gm.graph.nodes):
        path = node.meta.pop(meta.MASK, None)
        if path is None:
            continue
        mul = layer_args(node).weight
        w_node, m_node = mul.args
        w = get_tensor(gm, w_node.target)
        set_tensor(gm, w_node.target, w * get_tensor(gm, m_node.target))
        node.args = replace_args(node, weight=w_node)
        gm.graph.erase_node(mul)
        gm.graph.erase_node(m_node)
        owner, _, name = path.rpartition(".")
        delattr(gm.get_submodule(owner) if owner else gm, name)
        baked += 1
    gm.graph.lint()
    gm.recompile()
    return baked
