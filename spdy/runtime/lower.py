"""Lower a canonical fx graph to a Relax IRModule.

The graph is exported once more with torch.export (spdy ops stay single nodes) and imported
by TVM's torch frontend, with spdy_conv2d / spdy_linear routed to our kernel emitters. The
emitters need weights as numpy arrays (to pack them and to build sparse formats), so they are
looked up in the exported program's state, not taken from the importer's parameter vars.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spdy.errors import UnsupportedOpError
from spdy.ir.ops import conv_args, linear_args
from spdy.runtime.emit_context import EmitContext


@dataclass
class LoweredModule:
    mod: object                   # tvm.IRModule
    input_names: list[str]
    input_shapes: list[tuple]
    input_dtypes: list[str]
    output_shapes: list[tuple]
    output_dtypes: list[str]
    single_output: bool
    # what spdy/ir/decompose.py rewrote before import: {"decomposed": [...], "in_place": [...]}
    rewrites: dict = field(default_factory=dict)


def _placeholder_tensors(ep) -> dict[str, torch.Tensor]:
    """Placeholder node name -> parameter/buffer/constant tensor of the exported program."""
    state = dict(ep.state_dict)
    state.update(ep.constants)
    out = {}
    for spec in ep.graph_signature.input_specs:
        if spec.target is not None and spec.target in state:
            out[spec.arg.name] = state[spec.target]
    return out


def _const_array(tensors, node, what: str, layer: str) -> np.ndarray | None:
    if node is None:
        return None
    if not isinstance(node, torch.fx.Node) or node.name not in tensors:
        raise UnsupportedOpError(f"layer {layer}: the {what} is computed in the graph, not a constant; "
                                 "spdy needs constant weights for conv/linear layers")
    return tensors[node.name].detach().to(torch.float32).contiguous().numpy()


def _int8_of(tensors, x, name: str):
    """(ActQuant, w_scale) when the layer's input is an int8 stub (spdy/ir/quant.py), else None."""
    from spdy.ir.quant import LAYER_QUANT, act_quant_of
    if not (isinstance(x, torch.fx.Node) and x.target is LAYER_QUANT):
        return None
    _, a, s, _ = x.args
    act = act_quant_of(tensors[a.name])
    if act is None:
        raise UnsupportedOpError(f"layer {name}: its int8 stub is off; strip_quant must run before lowering")
    return act, _const_array(tensors, s, "weight scales", name)


def _converters(tensors: dict, ctx: EmitContext):
    from spdy.ir.quant import LAYER_QUANT
    from spdy.runtime import kernels

    def conv(node, importer):
        x, w, b, res, stride, padding, dilation, groups, act, name = conv_args(node)
        return kernels.emit_conv2d(
            importer.block_builder, importer.env[x], _const_array(tensors, w, "weight", name),
            _const_array(tensors, b, "bias", name), importer.env[res] if res is not None else None,
            stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation), groups=int(groups),
            activation=act, name=name, ctx=ctx, quant=_int8_of(tensors, x, name))

    def linear(node, importer):
        x, w, b, res, act, name = linear_args(node)
        return kernels.emit_linear(
            importer.block_builder, importer.env[x], _const_array(tensors, w, "weight", name),
            _const_array(tensors, b, "bias", name), importer.env[res] if res is not None else None,
            activation=act, name=name, ctx=ctx, quant=_int8_of(tensors, x, name))

    def layer_quant(node, importer):
        # the int8 emitter of the layer quantizes its own input: the stub passes x through
        return importer.env[node.args[0]]

    def same_tensor(node, importer):
        # to(device, dtype) on a CPU graph: the device is the only one there is, and
        # exact_dtype_map casts the result when the call changes the dtype
        return importer.env[node.args[0]]

    def attention(node, importer):
        from spdy.ir.attention_fusion import attention_args
        from spdy.runtime.kernels.mha import emit_attention
        a, env = attention_args(node), importer.env
        return emit_attention(importer.block_builder, env[a.q], env[a.k], env[a.v],
                              env[a.mask] if a.mask is not None else None, heads=int(a.heads),
                              head_dim=int(a.head_dim), scale=float(a.scale), offsets=[int(o) for o in a.offsets], ctx=ctx)

    from spdy.runtime.attention import convert_sdpa
    return {"spdy_attention.default": attention, "spdy_conv2d.default": conv, "spdy_linear.default": linear,
            LAYER_QUANT.__name__: layer_quant, "scaled_dot_product_attention.default": convert_sdpa,
            "to.device": same_tensor}


def known_ops(custom: dict) -> set[str]:
    """Op names the importer translates: TVM's converters plus spdy's own emitters."""
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter
    return set(ExportedProgramImporter().create_convert_map()) | set(custom)


def check_supported(ep, custom: dict) -> None:
    """Raise one UnsupportedOpError listing every op the importer cannot translate."""
    from spdy.ir.decompose import unknown_ops
    known = known_ops(custom)
    missing = unknown_ops(ep, known.__contains__)
    if missing:
        parts = [f"{op} (nodes: {', '.join(nodes[:3])}{', ...' if len(nodes) > 3 else ''})"
                 for op, nodes in sorted(missing.items())]
        raise UnsupportedOpError(f"{len(missing)} unsupported op(s) left after torch's decompositions: " +
                                 "; ".join(parts) +
                                 ". Rewrite them with supported torch ops or open an issue naming them.")


def lowerable_program(ep) -> tuple:
    """`ep` with in-place ops functionalized and ops without an emitter decomposed by torch's
    tables (spdy/ir/decompose.py); the op names are all the importer needs, so spdy's emitters
    are named here without their weights. Returns (program, what was rewritten)."""
    from spdy.ir.decompose import make_lowerable
    known = known_ops(_converters({}, None))
    return make_lowerable(ep, known.__contains__)


def lower_to_relax(gm: torch.fx.GraphModule, args: tuple, kwargs: dict, ctx: EmitContext) -> LoweredModule:
    from tvm.relax.frontend.torch import from_exported_program

    with torch.no_grad():
        ep = torch.export.export(gm, args, kwargs=kwargs or None, strict=False)
        outputs = gm(*args, **kwargs)
    single = isinstance(outputs, torch.Tensor)
    flat_out = [outputs] if single else list(torch.utils._pytree.tree_leaves(outputs))
    if not all(isinstance(o, torch.Tensor) for o in flat_out):
        raise UnsupportedOpError("the model returns non-tensor outputs; return a tensor or a tuple of tensors")
    ep, rewrites = lowerable_program(ep)
    tensors = _placeholder_tensors(ep)
    custom = _converters(tensors, ctx)
    check_supported(ep, custom)
    from spdy.runtime.exact_dtypes import exact_dtype_map
    convert = exact_dtype_map(ep, known_ops(custom), custom)
    mod = from_exported_program(ep, run_ep_decomposition=False, custom_convert_map=convert)
    user_inputs = [s.arg.name for s in ep.graph_signature.input_specs
                   if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    flat_in = list(args) + list(kwargs.values())
    return LoweredModule(
        mod=mod, input_names=user_inputs,
        input_shapes=[tuple(t.shape) for t in flat_in], input_dtypes=[str(t.dtype).replace("torch.", "") for t in flat_in],
        output_shapes=[tuple(o.shape) for o in flat_out],
        output_dtypes=[str(o.dtype).replace("torch.", "") for o in flat_out], single_output=single,
        rewrites={k: v for k, v in rewrites.items() if k != "functionalized" and v})
