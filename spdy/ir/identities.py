"""Calls that are the identity in an eval-mode model, removed before the layers are found.

torchvision's StochasticDepth (EfficientNet, ConvNeXt, Swin residual branches) is a function
fx keeps as one call (`torch.fx.wrap`), and nn.Dropout / nn.Identity are module calls fx keeps
too; between a layer and its residual add, any of them hides the add from epilogue fusion
(spdy/ir/fuse.py), so EfficientNet-B0's nine residual adds each ran as a kernel of their own.
Only calls that are the identity as traced are removed: a module in eval mode, a function
whose `training` argument is False.
"""
from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir.ops import call_arg

_DROPOUT_MODULES = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
                    torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)
# function -> keyword of its `training` argument, the third positional one (F.dropout's
# default is True: only an explicit False is the identity)
_DROPOUT_FUNCS = {F.dropout: "training", F.dropout1d: "training", F.dropout2d: "training",
                  F.dropout3d: "training", F.alpha_dropout: "training", torch.ops.aten.dropout.default: "train"}


def _is_stochastic_depth(target) -> bool:
    return getattr(target, "__name__", "") == "stochastic_depth" and \
        getattr(target, "__module__", "").startswith("torchvision.ops")


def _identity_input(gm, node):
    """The node's input when the call is the identity, else None."""
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if type(mod) is torch.nn.Identity or (isinstance(mod, _DROPOUT_MODULES) and not mod.training):
            return node.args[0] if len(node.args) == 1 and not node.kwargs else None
        return None
    if node.op != "call_function":
        return None
    if node.target in _DROPOUT_FUNCS:
        training = call_arg(node, 2, _DROPOUT_FUNCS[node.target], True)
        return call_arg(node, 0, "input", None) if training is False else None
    if _is_stochastic_depth(node.target) and call_arg(node, 3, "training", True) is False:
        return call_arg(node, 0, "input", None)
    return None


def drop_eval_identities(gm: torch.fx.GraphModule) -> int:
    """Remove identity calls (see the module doc); returns how many."""
    removed = 0
    for node in list(gm.graph.nodes):
        src = _identity_input(gm, node)
        if isinstance(src, torch.fx.Node):
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
            removed += 1
    return removed
