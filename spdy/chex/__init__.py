"""CHEX channel pruning (Hou et al., CVPR'22) and the channel surgery it ends with.

    groups = spdy.chex.channel_groups(model, x)               # coupled channels, by tracing
    small, history = spdy.chex.prune_channels(model, {"conv1": [0, 2, 5]}, x)
    again = spdy.chex.replay(fresh_model, history)            # same surgery from the JSON
    small, history = spdy.chex.prune_by_sparsity(model, x, 0.5, calib=batches)  # one-shot, CSS + LS re-fit
    res = spdy.chex.train(model, loader, channel_sparsity=0.5, epochs=30)   # res.model
"""
from spdy.chex.flops import count_macs
from spdy.chex.importance import (css_importance, get_importance, group_matrix, l1_importance,
                                  random_importance)
from spdy.chex.prune import prune_channels, replay, resolve_group, save_history
from spdy.chex.structured import prune_by_sparsity
from spdy.chex.train import ChexResult, train
from spdy.ir.groups import ChannelGroup, Member, channel_groups
from spdy.passes.algo.surgery import ChannelSurgeryError

__all__ = [
    "ChannelGroup", "ChannelSurgeryError", "ChexResult", "Member", "channel_groups", "count_macs",
    "css_importance", "get_importance", "group_matrix", "l1_importance", "prune_by_sparsity", "prune_channels",
    "random_importance", "replay", "resolve_group", "save_history", "train",
]
