"""Reading and replacing the tensors a GraphModule holds under dotted names."""
from __future__ import annotations

import torch


def get_tensor(gm: torch.nn.Module, path: str) -> torch.Tensor:
    owner_path, _, name = path.rpartition(".")
    owner = gm.get_submodule(owner_path) if owner_path else gm
    return getattr(owner, name)


def set_tensor(gm: torch.nn.Module, path: str, value: torch.Tensor, *, parameter: bool = True) -> None:
    """Store `value` at `path`, replacing a parameter/buffer or registering a new one."""
    owner_path, _, name = path.rpartition(".")
    owner = gm.get_submodule(owner_path) if owner_path else gm
    value = value.detach()
    if name in owner._buffers:
        owner._buffers[name] = value
    elif name in owner._parameters or parameter:
        if name in owner.__dict__:
            delattr(owner, name)
        owner._parameters[name] = torch.nn.Parameter(value, requires_grad=False)
    else:
        owner.register_buffer(name, value)
