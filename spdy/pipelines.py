"""Named pipelines every compile is assembled from.

The front end, `trace -> canonicalize -> fuse-epilogues`, turns a torch model into spdy's
canonical graph (layer ops with fused epilogues); every compile mode, the structured
compile's child builds and the benchmarks start with it, so it is written once, here. The
other sequences the compile strategies (spdy/compiler) and the benchmarks run are named here
too, so nobody assembles passes by hand:

    dense_pipeline      front end -> lower-to-tvm -> build-artifact [-> measure-dense]
    profile_pipeline    a given profile: front end [-> dense-baseline] -> insert-masks
                        [-> int8 stubs, calibrate-activations] -> user-profile -> apply-profile
                        -> lower -> build [-> verify-speedup]
    search_prep_pipeline  before a search: front end -> dense-baseline -> insert-masks
                        [-> int8 stubs, calibrate-activations] -> profile-latency [-> build-database]
    solve_pipeline      one round's search: solve-sparsity -> apply-profile
    measure_pipeline    one round's artifact: lower -> build -> verify-speedup -> calibrate-table
    adaprune_pipeline   a round that met the target: global-adaprune -> lower -> build
"""
from __future__ import annotations

from spdy.passes.apply_profile import ApplyProfilePass
from spdy.passes.base import Pass
from spdy.passes.build_artifact import BuildArtifactPass
from spdy.passes.build_database import BuildDatabasePass
from spdy.passes.calibrate_activations import CalibrateActivationsPass
from spdy.passes.calibrate_table import CalibrateTablePass
from spdy.passes.canonicalize import CanonicalizePass
from spdy.passes.dense_baseline import DenseBaselinePass
from spdy.passes.fuse_epilogues import FuseEpiloguesPass
from spdy.passes.global_adaprune import GlobalAdaPrunePass
from spdy.passes.insert_masks import InsertMasksPass
from spdy.passes.insert_quant_stubs import InsertQuantStubsPass
from spdy.passes.lower_to_tvm import LowerToTvmPass
from spdy.passes.measure_dense import MeasureDensePass
from spdy.passes.pipeline import Pipeline
from spdy.passes.profile_latency import ProfileLatencyPass
from spdy.passes.solve_sparsity import SolveSparsityPass
from spdy.passes.trace import TracePass
from spdy.passes.user_profile import UserProfilePass
from spdy.passes.verify_speedup import VerifySpeedupPass


def frontend_passes() -> list[Pass]:
    """trace -> canonicalize -> fuse-epilogues, as fresh pass objects."""
    return [TracePass(), CanonicalizePass(), FuseEpiloguesPass()]


def frontend_pipeline(*then: Pass) -> Pipeline:
    """The front end followed by `then`: ``frontend_pipeline(LowerToTvmPass(), BuildArtifactPass())``."""
    return Pipeline([*frontend_passes(), *then])


def _quant_passes(int8: bool) -> list[Pass]:
    """int8 stubs and their activation ranges, when some option or profile entry is int8."""
    return [InsertQuantStubsPass(), CalibrateActivationsPass()] if int8 else []


def dense_pipeline(*, tune: bool = True, measure: bool = True) -> Pipeline:
    return frontend_pipeline(LowerToTvmPass(tune=tune), BuildArtifactPass(), *([MeasureDensePass()] if measure else []))


def profile_pipeline(*, tune: bool = True, measure: bool = True, int8: bool = False) -> Pipeline:
    """Compile a user-given profile (magnitude masks, int8 rounded to the nearest grid point, no
    search); `int8`: the profile has int8 layers, whose input ranges are calibrated first."""
    passes = [InsertMasksPass(), *_quant_passes(int8), UserProfilePass(), ApplyProfilePass(), LowerToTvmPass(tune=tune),
              BuildArtifactPass()]
    if measure:  # the dense artifact is built from the graph before any mask exists
        return frontend_pipeline(DenseBaselinePass(tune=tune), *passes, VerifySpeedupPass())
    return frontend_pipeline(*passes)


def search_prep_pipeline(*, formats: tuple[str, ...], levels: int = 41, n_samples: int = 1024, tune: bool = True,
                         database: bool = True) -> Pipeline:
    """Everything a search needs: the dense artifact, masks (and int8 stubs when a format is
    int8), the latency table and, with `database`, the reconstruction database."""
    from spdy.formats import get as get_format
    int8 = any(get_format(f).int8 for f in formats)
    return frontend_pipeline(DenseBaselinePass(tune=tune), InsertMasksPass(), *_quant_passes(int8),
                             ProfileLatencyPass(formats=tuple(formats), levels=levels),
                             *([BuildDatabasePass(n_samples=n_samples)] if database else []))


def solve_pipeline(*, method: str = "spdy", seed: int = 0, max_evals: int = 0) -> Pipeline:
    return Pipeline([SolveSparsityPass(method=method, seed=seed, max_evals=max_evals), ApplyProfilePass()])


def measure_pipeline(*, tune: bool = True) -> Pipeline:
    return Pipeline([LowerToTvmPass(tune=tune), BuildArtifactPass(), VerifySpeedupPass(), CalibrateTablePass()])


def adaprune_pipeline(*, steps: int, seed: int = 0, tune: bool = True) -> Pipeline:
    return Pipeline([GlobalAdaPrunePass(steps=steps, seed=seed), LowerToTvmPass(tune=tune), BuildArtifactPass()])
