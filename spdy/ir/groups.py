"""Channel coupling groups: which channels of which layers must be pruned together.

Structured pruning removes a channel from every tensor it flows through: the producing
conv's filter, its BatchNorm entry, the consumer's input slice, and every tensor joined to it
by a residual add. Hard-coding that per architecture breaks on the next model, so we derive
it from the torch.fx graph (Torch-Pruning's DependencyGraph idea, our own code):

* every element of a tensor's channel dimension is a node of a networkx graph;
* conv/linear outputs get fresh nodes; pass-through ops (BN, activations, pooling, dropout,
  depthwise conv) reuse their input's nodes; residual adds join the nodes of their operands
  with edges; torch.cat concatenates node arrays (so offsets fall out); flatten repeats each
  channel's node H*W times (so a Linear after flatten sees each channel as H*W in-features);
* a connected component is one "channel"; components touched by the same set of layers form
  a ChannelGroup, whose members record where channel i lives in each layer
  (elements ``offset + i*multiplier + [0, multiplier)`` of that layer's pruned dimension).

Anything we do not understand (unknown ops, reshapes that mix channels, grouped convs, model
inputs and outputs) pins the channels it touches: their group is reported but not prunable.
Grouped convs (1 < groups, not depthwise) are refused this way rather than pruned by whole
groups: keeping whole groups would need per-group bookkeeping nobody has asked for yet.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp

from spdy.errors import TraceError
from spdy.ir.meta import tensor_shape
from spdy.ir.ops import call_arg

# Which weight dimension a member kind prunes: "out" filters, "in" input slices, and the
# per-channel vectors of BN/LayerNorm/depthwise conv all live on dim 0 except "in".
KIND_DIM = {"out": 0, "in": 1, "bn": 0, "dw": 0, "ln": 0}


class Member(NamedTuple):
    """Channel i of the group is elements offset + i*multiplier + [0, multiplier) of `qualname`'s
    dimension KIND_DIM[kind] (multiplier > 1 only for Linear in-features after a flatten)."""

    qualname: str
    kind: str
    offset: int
    multiplier: int = 1

    def indices(self, channels) -> np.ndarray:
        """Element indices of this member for the given group channels."""
        ch = np.asarray(channels, dtype=np.int64).reshape(-1, 1)
        return (self.offset + ch * self.multiplier + np.arange(self.multiplier)).reshape(-1)


@dataclass
class ChannelGroup:
    id: int
    name: str                  # qualname of the first producing layer: a human handle for the group
    members: list[Member]
    size: int                  # number of channels in the group
    prunable: bool
    reason: str = ""           # why not prunable

    def member(self, qualname: str, kind: str | None = None) -> Member | None:
        for m in self.members:
            if m.qualname == qualname and (kind is None or m.kind == kind):
                return m
        return None

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "size": self.size, "prunable": self.prunable,
                "reason": self.reason, "members": [list(m) for m in self.members]}


_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
    nn.Hardsigmoid, nn.ELU, nn.Mish, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.AlphaDropout, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.Upsample,
)
_PASS_FUNCS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.sigmoid, torch.sigmoid,
    F.tanh, torch.tanh, F.hardswish, F.hardsigmoid, F.hardtanh, F.elu, F.mish, F.dropout,
    F.dropout2d, F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.clone, torch.abs, torch.neg,
    F.interpolate,
}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "detach", "float",
                 "abs", "neg", "sigmoid_", "tanh_"}
_BINARY = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul,
           operator.imul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_REDUCE = {torch.mean, torch.sum, torch.amax}
_REDUCE_METHODS = {"mean", "sum", "amax"}


@dataclass
class _Chan:
    """Channel description of one tensor value: node id per element of dimension `dim`."""

    ids: np.ndarray
    dim: int
    ndim: int


@dataclass
class _Builder:
    graph: nx.Graph = field(default_factory=nx.Graph)
    n: int = 0
    pinned: dict[int, str] = field(default_factory=dict)
    members: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def fresh(self, count: int) -> np.ndarray:
        ids = np.arange(self.n, self.n + count, dtype=np.int64)
        self.graph.add_nodes_from(range(self.n, self.n + count))
        self.n += count
        return ids

    def join(self, a: np.ndarray, b: np.ndarray) -> None:
        self.graph.add_edges_from(zip(a.tolist(), b.tolist()))

    def pin(self, ids: np.ndarray, why: str) -> None:
        for i in np.unique(ids).tolist():
            self.pinned.setdefault(i, why)

    def add_member(self, qualname: str, kind: str, ids: np.ndarray | None) -> None:
        if ids is None:  # no tensor to attach to (untraced input): nothing to couple
            return
        key = (qualname, kind)
        if key in self.members:  # a module called twice shares its channels across calls
            old = self.members[key]
            if len(old) == len(ids):
                self.join(old, ids)
            else:
                self.pin(np.concatenate([old, ids]), f"{qualname} reused with different sizes")
        else:
            self.members[key] = ids


def _norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def trace_for_groups(model: nn.Module, example_inputs) -> torch.fx.GraphModule:
    """symbolic_trace + ShapeProp: groups need module qualnames, so no export fallback here."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    try:
        gm = model if isinstance(model, torch.fx.GraphModule) else torch.fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means the same to the user
        raise TraceError(f"channel groups need torch.fx.symbolic_trace, which failed: {exc}") from exc
    # eval() so BN running stats are not touched; gm shares submodules with `model`, so put
    # every module's own flag back afterwards.
    flags = [(m, m.training) for m in gm.modules()]
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*example_inputs)
    finally:
        for m, flag in flags:
            m.training = flag
    return gm


class _Walker:
    """Walks the graph once in topological order, building channel nodes and members."""

    def __init__(self, gm: torch.fx.GraphModule):
        self.gm = gm
        self.mods = dict(gm.named_modules())
        self.b = _Builder()
        self.chan: dict[torch.fx.Node, _Chan | None] = {}

    # -- helpers -------------------------------------------------------------------------
    def _new(self, node, dim: int | None = None, pin: str | None = None) -> _Chan | None:
        shape = tensor_shape(node)
        if shape is None or len(shape) == 0:
            return None
        nd = len(shape)
        d = (1 if nd >= 2 else 0) if dim is None else _norm_dim(dim, nd)
        ids = self.b.fresh(shape[d])
        if pin:
            self.b.pin(ids, pin)
        return _Chan(ids, d, nd)

    def _input(self, arg, dim: int, why: str) -> np.ndarray | None:
        """Node ids of `arg` along `dim`; if arg's channels live elsewhere, fresh pinned ids."""
        if not isinstance(arg, torch.fx.Node):
            return None
        c = self.chan.get(arg)
        shape = tensor_shape(arg)
        if shape is None:
            return None
        d = _norm_dim(dim, len(shape))
        if c is not None and c.dim == d:
            return c.ids
        if c is not None:
            self.b.pin(c.ids, why)
        ids = self.b.fresh(shape[d])
        self.b.pin(ids, why)
        return ids

    def _pin_all(self, node, why: str) -> None:
        for a in node.all_input_nodes:
            c = self.chan.get(a)
            if c is not None:
                self.b.pin(c.ids, why)

    def _unknown(self, node, why: str) -> _Chan | None:
        self._pin_all(node, why)
        return self._new(node, pin=why)

    # -- per-op rules --------------------------------------------------------------------
    def run(self) -> _Builder:
        for node in self.gm.graph.nodes:
            self.chan[node] = self._visit(node)
        return self.b

    def _visit(self, node) -> _Chan | None:
        if node.op == "placeholder":
            return self._new(node, pin="model input")
        if node.op == "get_attr":
            return self._new(node, pin=f"constant tensor {node.target}")
        if node.op == "output":
            self._pin_all(node, "model output")
            return None
        if node.op == "call_module":
            return self._module(node, self.mods[node.target])
        if node.op == "call_function":
            return self._function(node, node.target)
        if node.op == "call_method":
            return self._method(node, node.target)
        return self._unknown(node, f"unsupported node {node.op}")

    def _passthrough(self, node, src) -> _Chan | None:
        c = self.chan.get(src) if isinstance(src, torch.fx.Node) else None
        shape = tensor_shape(node)
        if c is None or shape is None or len(shape) != c.ndim or shape[c.dim] != len(c.ids):
            return self._unknown(node, f"{node.name}: channel dimension not preserved")
        return c

    def _module(self, node, mod) -> _Chan | None:
        q = node.target
        x = node.args[0] if node.args else None
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return self._conv(node, q, mod, x)
        if isinstance(mod, nn.Linear):
            ids_in = self._input(x, -1, f"{q}: input channels not on the last dim")
            self.b.add_member(q, "in", ids_in)
            out = self._new(node, dim=-1)
            self.b.add_member(q, "out", None if out is None else out.ids)
            return out
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            c = self._passthrough(node, x)
            if c is not None and c.dim != 1:
                return self._unknown(node, f"{q}: BatchNorm channels not on dim 1")
            if c is not None and (mod.affine or mod.track_running_stats):
                self.b.add_member(q, "bn", c.ids)
            return c
        if isinstance(mod, nn.LayerNorm):
            c = self._passthrough(node, x)
            if len(mod.normalized_shape) == 1 and c is not None and c.dim == c.ndim - 1:
                if mod.elementwise_affine:
                    self.b.add_member(q, "ln", c.ids)
                return c
            return self._unknown(node, f"{q}: LayerNorm over more than the channel dim")
        if isinstance(mod, _PASS_MODULES):
            return self._passthrough(node, x)
        if isinstance(mod, nn.Flatten):
            return self._flatten(node, x, mod.start_dim, mod.end_dim)
        return self._unknown(node, f"{q}: unsupported module {type(mod).__name__}")

    def _conv(self, node, q, mod, x) -> _Chan | None:
        cin, cout, g = mod.in_channels, mod.out_channels, mod.groups
        if g == 1:
            self.b.add_member(q, "in", self._input(x, 1, f"{q}: input channels not on dim 1"))
            out = self._new(node, dim=1)
            self.b.add_member(q, "out", out.ids)
            return out
        if g == cin == cout:  # depthwise: output channel i is input channel i
            c = self._passthrough(node, x)
            if c is not None and c.dim == 1:
                self.b.add_member(q, "dw", c.ids)
            return c
        why = f"{q}: grouped conv (groups={g}) is not pruned"
        ids_in = self._input(x, 1, why)
        self.b.pin(ids_in, why)
        self.b.add_member(q, "in", ids_in)
        out = self._new(node, dim=1, pin=why)
        self.b.add_member(q, "out", out.ids)
        return out

    def _function(self, node, fn) -> _Chan | None:
        if fn in _PASS_FUNCS:
            return self._passthrough(node, node.args[0])
        if fn in _BINARY:
            return self._binary(node)
        if fn in (torch.cat, torch.concat):
            return self._cat(node)
        if fn is torch.flatten:
            return self._flatten(node, node.args[0], call_arg(node, 1, "start_dim", 0),
                                 call_arg(node, 2, "end_dim", -1))
        if fn in _REDUCE:
            return self._reduce(node)
        if fn is operator.getitem and not isinstance(node.args[0], torch.fx.Node):
            return None
        if fn is operator.getitem and self.chan.get(node.args[0]) is None:
            return None  # x.shape[i], x.size()[0]: not a tensor
        if tensor_shape(node) is None:  # returns no tensor (e.g. getattr(x, "shape"))
            return None
        return self._unknown(node, f"{node.name}: unsupported function {getattr(fn, '__name__', fn)}")

    def _method(self, node, name: str) -> _Chan | None:
        if name in _PASS_METHODS:
            return self._passthrough(node, node.args[0])
        if name in _BINARY_METHODS:
            return self._binary(node)
        if name == "flatten":
            return self._flatten(node, node.args[0], call_arg(node, 1, "start_dim", 0),
                                 call_arg(node, 2, "end_dim", -1))
        if name in ("view", "reshape"):
            return self._reshape(node)
        if name in _REDUCE_METHODS:
            return self._reduce(node)
        if name in ("size", "dim"):
            return None
        return self._unknown(node, f"{node.name}: unsupported method {name}")

    def _binary(self, node) -> _Chan | None:
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        ca = self.chan.get(a) if isinstance(a, torch.fx.Node) else None
        cb = self.chan.get(b) if isinstance(b, torch.fx.Node) else None
        shape = tensor_shape(node)
        if shape is None:
            return None
        if ca is None or cb is None:  # tensor op scalar: channels pass through
            c = ca if ca is not None else cb
            return self._passthrough(node, a if ca is not None else b) if c is not None else None
        sa, sb = tensor_shape(a), tensor_shape(b)
        if ca.dim == cb.dim and len(sa) == len(sb) and len(ca.ids) == len(cb.ids):
            self.b.join(ca.ids, cb.ids)
            return self._passthrough(node, a)
        # broadcasting a size-1 channel dim (e.g. a per-sample scale) keeps the other's channels
        if len(sb) == len(sa) and sb[ca.dim] == 1 and len(ca.ids) == shape[ca.dim]:
            self.b.pin(cb.ids, f"{node.name}: broadcast operand")
            return self._passthrough(node, a)
        if len(sa) == len(sb) and sa[cb.dim] == 1 and len(cb.ids) == shape[cb.dim]:
            self.b.pin(ca.ids, f"{node.name}: broadcast operand")
            return self._passthrough(node, b)
        return self._unknown(node, f"{node.name}: elementwise op with mismatched channels")

    def _cat(self, node) -> _Chan | None:
        xs = list(call_arg(node, 0, "tensors"))
        shape = tensor_shape(node)
        dim = _norm_dim(call_arg(node, 1, "dim", 0), len(shape))
        cs = [self.chan.get(x) if isinstance(x, torch.fx.Node) else None for x in xs]
        if any(c is None for c in cs) or len({c.dim for c in cs}) != 1:
            return self._unknown(node, f"{node.name}: cat of tensors with different channel dims")
        if cs[0].dim == dim:
            return _Chan(np.concatenate([c.ids for c in cs]), dim, len(shape))
        for c in cs[1:]:  # cat along another dim: all inputs share the channels
            if len(c.ids) != len(cs[0].ids):
                return self._unknown(node, f"{node.name}: cat mixes channel counts")
            self.b.join(cs[0].ids, c.ids)
        return _Chan(cs[0].ids, cs[0].dim, len(shape))

    def _flatten(self, node, x, start: int, end: int) -> _Chan | None:
        c = self.chan.get(x) if isinstance(x, torch.fx.Node) else None
        sx, shape = tensor_shape(x), tensor_shape(node)
        if c is None or sx is None:
            return self._unknown(node, f"{node.name}: flatten of a non-tensor")
        nd = len(sx)
        start, end = _norm_dim(start, nd), _norm_dim(end, nd)
        if c.dim < start:
            return _Chan(c.ids, c.dim, len(shape))
        if c.dim > end:
            return _Chan(c.ids, c.dim - (end - start), len(shape))
        if c.dim == start:  # channel-major: each channel becomes prod(rest) consecutive features
            rep = int(np.prod(sx[start + 1:end + 1])) if end > start else 1
            return _Chan(np.repeat(c.ids, rep), start, len(shape))
        return self._unknown(node, f"{node.name}: flatten mixes channels with earlier dims")

    def _reshape(self, node) -> _Chan | None:
        x = node.args[0]
        sx, shape = tensor_shape(x), tensor_shape(node)
        c = self.chan.get(x)
        if c is None or sx is None or shape is None:
            return self._unknown(node, f"{node.name}: reshape of unknown tensor")
        if tuple(sx) == tuple(shape):
            return c
        # x.view(N, -1) and friends: flatten of everything from the channel dim on
        if len(shape) == c.dim + 1 and tuple(shape[:c.dim]) == tuple(sx[:c.dim]):
            return self._flatten(node, x, c.dim, -1)
        return self._unknown(node, f"{node.name}: reshape {tuple(sx)} -> {tuple(shape)} mixes channels")

    def _reduce(self, node) -> _Chan | None:
        x = node.args[0]
        c = self.chan.get(x)
        sx, shape = tensor_shape(x), tensor_shape(node)
        if c is None or sx is None or shape is None:
            return self._unknown(node, f"{node.name}: reduction of unknown tensor")
        dims = call_arg(node, 1, "dim", None)
        if dims is None:
            return self._unknown(node, f"{node.name}: full reduction")
        dims = [dims] if isinstance(dims, int) else list(dims)
        dims = sorted(_norm_dim(d, len(sx)) for d in dims)
        if c.dim in dims:
            return self._unknown(node, f"{node.name}: reduces over channels")
        keep = bool(call_arg(node, 2, "keepdim", False))
        d = c.dim if keep else c.dim - sum(1 for k in dims if k < c.dim)
        return _Chan(c.ids, d, len(shape))


def _layout(positions: list[np.ndarray]) -> tuple[int, int] | None:
    """(offset, multiplier) if channel i's elements are offset + i*m + [0, m); else None."""
    m = len(positions[0])
    if any(len(p) != m for p in positions):
        return None
    got = np.stack(positions)
    offset = int(got[0, 0])
    want = offset + np.arange(len(positions))[:, None] * m + np.arange(m)[None, :]
    return (offset, m) if np.array_equal(got, want) else None


def groups_from_graph(gm: torch.fx.GraphModule) -> list[ChannelGroup]:
    """Coupling groups of a shape-propagated GraphModule (see module docstring)."""
    b = _Walker(gm).run()
    comp = np.full(b.n, -1, dtype=np.int64)
    for k, nodes in enumerate(nx.connected_components(b.graph)):
        comp[list(nodes)] = k
    ncomp = int(comp.max()) + 1 if b.n else 0
    comp_pin: dict[int, str] = {}
    for node_id, why in b.pinned.items():
        comp_pin.setdefault(int(comp[node_id]), why)

    # per component: {member key: sorted element positions}; member keys in creation order
    touch: list[dict[tuple[str, str], list[int]]] = [dict() for _ in range(ncomp)]
    for key, ids in b.members.items():
        for pos, cid in enumerate(comp[ids].tolist()):
            touch[cid].setdefault(key, []).append(pos)
    order = {key: i for i, key in enumerate(b.members)}
    buckets: dict[tuple, list[int]] = {}
    for cid in range(ncomp):
        if touch[cid]:
            buckets.setdefault(tuple(sorted(touch[cid], key=order.__getitem__)), []).append(cid)

    groups = []
    for keys, cids in buckets.items():
        cids.sort(key=lambda c: touch[c][keys[0]][0])
        members, reason = [], ""
        for key in keys:
            lay = _layout([np.asarray(touch[c][key]) for c in cids])
            if lay is None:
                reason = reason or f"{key[0]} ({key[1]}): irregular channel layout"
                lay = (int(touch[cids[0]][key][0]), 1)
            members.append(Member(key[0], key[1], lay[0], lay[1]))
        pins = [comp_pin[c] for c in cids if c in comp_pin]
        reason = reason or (pins[0] if pins else "")
        if not reason and not any(m.kind in ("out", "dw") for m in members):
            reason = "no layer produces these channels"
        producers = [m.qualname for m in members if m.kind in ("out", "dw")]
        name = producers[0] if producers else members[0].qualname
        groups.append(ChannelGroup(-1, name, members, len(cids), not reason, reason))
    groups.sort(key=lambda g: min(order[(m.qualname, m.kind)] for m in g.members))
    for i, g in enumerate(groups):
        g.id = i
    return groups


def channel_groups(model: nn.Module, example_inputs: Any) -> list[ChannelGroup]:
    """Trace `model` with `example_inputs` and return its channel coupling groups."""
    return groups_from_graph(trace_for_groups(model, example_inputs))
