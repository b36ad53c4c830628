"""The query, key and value projections of a fused attention call become one Linear layer.

After spdy/ir/attention_fusion.py, an attention block reads three Linear layers of the same
input. As int8 layers each of them quantizes that input again, starts two parallel regions
and writes its own output: on MiniLM at 64 tokens a 384x384 int8 layer took 25 us in place
for 3 us of multiply-adds. One layer of the three weights stacked ([3E, K]) quantizes once and
writes one [B, S, 3E] tensor the attention kernel reads at column offsets 0, E and 2E.

Run by the lowering on its copy of the graph (the search, the database and the latency table
keep the three layers), and only where the result is the same computation: the three layers
read the same tensor through int8 stubs with the same activation quantization, have no
residual and no activation, feed nothing but the attention call, and `mergeable(names)` (the
profile: all dense int8) allows it. The merged layer's name starts with "merged." so that its
kernel time is not counted as any one of the three layers' in place (spdy/runtime/call_profile.py).
"""
from __future__ import annotations

import torch
import torch.fx

from spdy.ir import meta
from spdy.ir.attention_fusion import ATTENTION, attention_args
from spdy.ir.ops import LINEAR, LinearArgs, linear_args
from spdy.ir.quant import LAYER_QUANT, act_quant_of
from spdy.ir.tensors import get_tensor, set_tensor


def _tensor(gm, node):
    return None if node is None else get_tensor(gm, node.target)


def _projections(gm, att):
    """(linear nodes, their LinearArgs, their stubs) when the attention call's q, k, v can be
    merged, else None."""
    a = attention_args(att)
    nodes = (a.q, a.k, a.v)
    if len({id(n) for n in nodes}) != 3 or a.offsets != [0, 0, 0]:
        return None
    if not all(getattr(n, "target", None) is LINEAR and set(n.users) == {att} for n in nodes):
        return None
    args = [linear_args(n) for n in nodes]
    if any(x.residual is not None or x.activation != "none" for x in args):
        return None
    stubs = [x.x for x in args]
    if not all(getattr(s, "target", None) is LAYER_QUANT and len(s.users) == 1 for s in stubs):
        return None
    if len({id(s.args[0]) for s in stubs}) != 1:
        return None
    acts = [_tensor(gm, s.args[1]) for s in stubs]
    if act_quant_of(acts[0]) is None or any(not torch.equal(acts[0], x) for x in acts[1:]):
        return None
    return nodes, args, stubs


def merge_qkv(gm: torch.fx.GraphModule, mergeable=lambda names: True) -> int:
    """Merge the projections of every spdy_attention call that allows it (see the module doc);
    returns how many calls now read one merged layer."""
    merged = 0
    for att in [n for n in gm.graph.nodes if n.op == "call_function" and n.target is ATTENTION]:
        found = _projections(gm, att)
        if found is None:
            continue
        nodes, args, stubs = found
        if not mergeable([x.name for x in args]):
            continue
        weights = [_tensor(gm, x.weight) for x in args]
        if len({w.shape[1] for w in weights}) != 1:
            continue
        biases = [_tensor(gm, x.bias) if x.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
                  for x, w in zip(args, weights)]
        scales = [_tensor(gm, s.args[2]) for s in stubs]
        prefix = f"spdy_merged_qkv_{merged}"
        set_tensor(gm, f"{prefix}_weight", torch.cat(weights), parameter=False)
        set_tensor(gm, f"{prefix}_bias", torch.cat(biases), parameter=False)
        set_tensor(gm, f"{prefix}_w_scale", torch.cat(scales), parameter=False)
        name = "merged." + "+".join(x.name for x in args)
        g = gm.graph
        with g.inserting_before(att):
            w, b, s = (g.get_attr(f"{prefix}_{k}") for k in ("weight", "bias", "w_scale"))
            stub = g.call_function(LAYER_QUANT, (stubs[0].args[0], stubs[0].args[1], s, name))
            lin = g.call_function(LINEAR, tuple(LinearArgs(stub, w, b, None, "none", name)))
        stub.meta[meta.TENSOR] = stubs[0].meta.get(meta.TENSOR)
        e = weights[0].shape[0]
        att.args = tuple(attention_args(att)._replace(q=lin, k=lin, v=lin, offsets=[0, e, 2 * e]))
        for n in list(nodes) + list(stubs):
            g.erase_node(n)
        merged += 1
    if merged:
        gm.graph.eliminate_dead_code()
        gm.graph.lint()
        gm.recompile()
    return merged

