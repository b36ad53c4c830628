"""The compile driver and its strategies (dense, profile, sparse, channels).

Named `compiler`, not `compile`: `spdy.compile` is the public function, and importing a
subpackage `spdy.compile` would rebind that name on the `spdy` package to the module.
"""
from spdy.compiler.driver import STRATEGIES, CompileResult, compile_model, strategy_for  # noqa: F401
from spdy.compiler.strategy import Strategy  # noqa: F401
from spdy.passes.context import CompileOptions  # noqa: F401
