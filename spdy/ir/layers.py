"""Prunable layers of a canonical graph, as LayerInfo records.

A layer is a spdy_conv2d / spdy_linear node whose weight is a graph constant (get_attr).
Its op signature describes everything a kernel's speed depends on (shapes, stride, pads,
dilation, groups) and nothing else, so identical layers of different models share latency
database entries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.fx

from spdy.ir import meta
from spdy.ir.meta import tensor_shape
from spdy.ir.ops import LINEAR, is_layer, layer_args


@dataclass(frozen=True)
class LayerInfo:
    qualname: str               # e.g. "layer1.0.conv1": the key of profiles and databases
    kind: str                   # "conv2d" | "linear"
    node: str                   # fx node name
    weight: str                 # dotted path of the weight tensor in the GraphModule
    weight_shape: tuple
    in_shape: tuple
    out_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    has_bias: bool = False

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv2d" and self.groups > 1 and self.groups == self.in_shape[1] \
            and self.weight_shape[1] == 1

    @property
    def grouped(self) -> bool:
        return self.kind == "conv2d" and self.groups > 1 and not self.depthwise

    @property
    def numel(self) -> int:
        n = 1
        for d in self.weight_shape:
            n *= d
        return n

    @property
    def flops(self) -> int:
        """Multiply-adds of the dense layer."""
        if self.kind == "linear":
            rows = 1
            for d in self.in_shape[:-1]:
                rows *= d
            return rows * self.numel
        n, _, oh, ow = self.out_shape
        return n * oh * ow * self.numel

    @property
    def signature(self) -> str:
        """Cache key of the op: every shape/attribute the kernel's latency depends on."""
        if self.kind == "linear":
            rows = 1
            for d in self.in_shape[:-1]:
                rows *= d
            o, k = self.weight_shape
            return f"linear:m{rows}_k{k}_n{o}"
        n, c, h, w = self.in_shape
        o, cg, kh, kw = self.weight_shape
        return (f"conv2d:n{n}_c{c}_h{h}_w{w}_o{o}_k{kh}x{kw}_s{self.stride[0]}x{self.stride[1]}"
                f"_p{'x'.join(map(str, self.padding))}_d{self.dilation[0]}x{self.dilation[1]}_g{self.groups}")

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(signature=self.signature, depthwise=self.depthwise, grouped=self.grouped)
        return d


def beside_weight(weight_path: str, name: str) -> str:
    """The path of a buffer spdy keeps next to a layer's weight (its mask, int8 scales):
    `m.weight` -> `m.<name>`, `m.in_proj_weight` -> `m.in_proj_<name>`, `m.w` -> `m.w_<name>`.
    The weight's owner holds it, so it exists whatever the layer's name is."""
    owner, _, attr = weight_path.rpartition(".")
    stem = attr[:-len("weight")] if attr.endswith("weight") else attr + "_"
    return f"{owner}.{stem}{name}" if owner else f"{stem}{name}"


def layer_from_node(node: torch.fx.Node) -> LayerInfo | None:
    if not is_layer(node):
        return None
    a = layer_args(node)
    w = a.weight
    if isinstance(w, torch.fx.Node) and meta.MASK in node.meta and w.op == "call_function":
        w = w.args[0]  # weight * mask, inserted by insert_masks
    if not (isinstance(w, torch.fx.Node) and w.op == "get_attr"):
        return None
    common = dict(qualname=a.name, node=node.name, weight=w.target,
                  weight_shape=tensor_shape(w) or (), in_shape=tensor_shape(a.x) or (),
                  out_shape=tensor_shape(node) or (), has_bias=a.bias is not None)
    if node.target is LINEAR:
        return LayerInfo(kind="linear", **common)
    return LayerInfo(kind="conv2d", stride=tuple(a.stride), padding=tuple(a.padding),
                     dilation=tuple(a.dilation), groups=int(a.groups), **common)


def find_layers(gm: torch.fx.GraphModule) -> list[LayerInfo]:
    """Prunable layers in graph order; also stored in node.meta[spdy.layer]."""
    out = []
    for node in gm.graph.nodes:
        info = layer_from_node(node)
        if info is not None:
            node.meta[meta.LAYER] = info
            out.append(info)
    return out


def prunable_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Conv2d and Linear submodules by qualname: the module-level view used by training tools."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
