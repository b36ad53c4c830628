"""user-profile: take the sparsity profile the user passed to compile(profile=...), validated
against the model's layers (unknown names and formats are listed in one error)."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.formats import validate_profile
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class UserProfilePass(Pass):
    name = "user-profile"
    requires = ("layers",)
    provides = ("profile",)

    def run(self, gm, ctx) -> PassResult:
        names = [l.qualname for l in ctx.need("layers")]
        profile = validate_profile(ctx.options.profile or {}, names)
        ctx.artifacts["profile"] = profile
        return PassResult(gm, False, {"sparse_layers": sum(1 for v in profile.values() if v["format"] != "dense")})
