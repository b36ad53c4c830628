"""tools/bench/accuracy.py with --peers/--match-peers: which speedups spdy is compiled at, and the rows."""
from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "bench"))
import accuracy  # noqa: E402

PEER_ROWS = [
    {"model": "m", "method": "ort_int8_static", "kind": "peer", "requested_speedup": None, "status": "ok",
     "measured_speedup": 1.554, "accuracy": 99.06},
    {"model": "m", "method": "openvino_qdq", "kind": "peer", "requested_speedup": None, "status": "ok",
     "measured_speedup": 1.5549, "accuracy": 99.0},
    {"model": "m", "method": "ort_int8_dynamic", "kind": "peer", "requested_speedup": None, "status": "ok",
     "measured_speedup": 0.16, "accuracy": 99.05},
    {"model": "m", "method": "openvino_nncf", "kind": "peer", "requested_speedup": None, "status": "skipped",
     "error": "not installed"},
    {"model": "other", "method": "ort_int8_static", "kind": "peer", "requested_speedup": None, "status": "ok",
     "measured_speedup": 3.0, "accuracy": 90.0},
]


def test_targets_are_the_speedups_without_match_peers():
    args = Namespace(match_peers=False, speedups=[1.5, 2.0])
    assert accuracy.spdy_targets(args, PEER_ROWS, "m") == [(1.5, []), (2.0, [])]


def test_match_peers_targets_each_measured_peer_speedup_of_this_model_once():
    args = Namespace(match_peers=True, speedups=[1.5, 2.0])
    assert accuracy.spdy_targets(args, PEER_ROWS, "m") == [(0.16, ["ort_int8_dynamic"]),
                                                           (1.55, ["ort_int8_static", "openvino_qdq"])]


def test_a_peer_slower_than_the_dense_artifact_is_matched_by_it_without_a_compile():
    row = accuracy.run_spdy(None, None, None, None, name="m", method="spdy", target=(0.16, ["ort_int8_dynamic"]),
                            args=None, log=lambda m: None, dense_score=99.05)
    assert row["status"] == "dense" and row["measured_speedup"] == 1.0 and row["accuracy"] == 99.05
    md = accuracy.markdown(PEER_ROWS + [row], {"m": 99.05, "other": 91.0})
    assert "| m | spdy | 0.16x (= ort_int8_dynamic) | 1.00x | 99.05 | 99.05 | dense |" in md
    assert "| m | ort_int8_static | - | 1.55x | 99.06 | 99.05 | ok |" in md
    assert "- m openvino_nncf skipped: not installed" in md
