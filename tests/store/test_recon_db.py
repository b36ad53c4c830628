"""The reconstruction database: round trip, staleness by key, atomicity, resumability."""
import json

import pytest
import torch

from spdy.store import recon_db
from spdy.store.recon_db import ReconDatabase, entry_key, hash_calibration


def W(seed=0, shape=(8, 6)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_round_trip(tmp_path):
    db = ReconDatabase(tmp_path)
    w = W()
    db.bind("features.0", w, method="obs", fmt="bsr4x1", calib="c1", algo_version=2)
    mask = torch.rand(8, 6, generator=torch.Generator().manual_seed(1)) > 0.5
    db.put("features.0", 4000, mask, w * mask, err=1.5)
    m2, w2 = db.get("features.0", 4000)
    assert m2.dtype == torch.bool and torch.equal(m2, mask)
    assert torch.equal(w2, w * mask)
    assert db.errors("features.0") == {4000: 1.5}
    assert db.has("features.0", 4000, "bsr4x1") and not db.has("features.0", 5000)
    with pytest.raises(KeyError):
        db.get("features.0", 5000)
    # reopened from disk
    db2 = ReconDatabase(tmp_path)
    db2.bind("features.0", w, method="obs", fmt="bsr4x1", calib="c1", algo_version=2)
    assert torch.equal(db2.get("features.0", 4000)[1], w * mask)
    assert db2.layers() == [("features.0", "bsr4x1")]
    assert not list(tmp_path.glob(".tmp-*"))
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt"))
    json.loads((tmp_path / "index.json").read_text())


@pytest.mark.parametrize("change", ["weight", "method", "fmt_options", "calib"])
def test_changed_inputs_never_reuse_stale_entries(tmp_path, change):
    db = ReconDatabase(tmp_path)
    w = W()
    db.bind("l", w, method="obs", fmt="1x1", calib="c1", options={"damp": 0.01}, algo_version=2)
    db.put("l", 9000, torch.ones(8, 6, dtype=torch.bool), w)
    kw = dict(method="obs", calib="c1", options={"damp": 0.01})
    w2 = w
    if change == "weight":
        w2 = w.clone()
        w2[0, 0] += 1e-6
    elif change == "method":
        kw["method"] = "lstsq"
    elif change == "fmt_options":
        kw["options"] = {"damp": 0.1}
    else:
        kw["calib"] = "c2"
    db2 = ReconDatabase(tmp_path)
    db2.bind("l", w2, fmt="1x1", **kw, algo_version=2)
    assert not db2.has("l", 9000)
    with pytest.raises(KeyError):
        db2.get("l", 9000)
    assert db2.missing("l", [0, 9000]) == [0, 9000]
    # the other entry is kept for its own model: binding it again serves it without a rebuild
    db3 = ReconDatabase(tmp_path)
    db3.bind("l", w, method="obs", fmt="1x1", calib="c1", options={"damp": 0.01}, algo_version=2)
    assert db3.has("l", 9000)


def test_formats_are_separate_entries(tmp_path):
    db = ReconDatabase(tmp_path)
    w = W()
    db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=2)
    db.bind("l", w, method="obs", fmt="bsr4x1", calib="c", algo_version=2)
    db.put("l", 5000, torch.zeros(8, 6, dtype=torch.bool), w * 0, fmt="1x1")
    db.put("l", 5000, torch.ones(8, 6, dtype=torch.bool), w, fmt="bsr4x1")
    assert not db.get("l", 5000, "1x1")[0].any()
    assert db.get("l", 5000, "bsr4x1")[0].all()
    with pytest.raises(ValueError):
        db.get("l", 5000)  # ambiguous without fmt


def test_unbound_layer_is_an_error(tmp_path):
    db = ReconDatabase(tmp_path)
    with pytest.raises(KeyError):
        db.put("x", 0, torch.ones(1, dtype=torch.bool), torch.ones(1), fmt="1x1")


def test_resumable_after_interrupt(tmp_path):
    levels = [0, 4000, 6000, 8000]
    w = W()
    built = []

    def build(db, stop_after=None):
        db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=2)
        for i, lv in enumerate(db.missing("l", levels)):
            if stop_after is not None and i == stop_after:
                raise KeyboardInterrupt
            db.put("l", lv, torch.ones(8, 6, dtype=torch.bool), w + lv)
            built.append(lv)

    with pytest.raises(KeyboardInterrupt):
        build(ReconDatabase(tmp_path), stop_after=2)
    assert built == [0, 4000]
    (tmp_path / ".tmp-crashed.safetensors").write_bytes(b"half a file")
    build(ReconDatabase(tmp_path))
    assert built == [0, 4000, 6000, 8000]  # nothing rebuilt
    assert not list(tmp_path.glob(".tmp-*"))
    db = ReconDatabase(tmp_path)
    db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=2)
    assert db.missing("l", levels) == []
    assert torch.equal(db.get("l", 6000)[1], w + 6000)


def test_file_with_foreign_key_is_rejected(tmp_path):
    w = W()
    db = ReconDatabase(tmp_path)
    db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=2)
    db.put("l", 4000, torch.ones(8, 6, dtype=torch.bool), w)
    idx = json.loads((tmp_path / "index.json").read_text())
    # someone edits the index to claim the entry under another key
    other = entry_key(w, "lstsq", "1x1", "c", algo_version=2)
    (entry,) = idx["entries"].values()
    entry["key"] = other
    (tmp_path / "index.json").write_text(json.dumps(idx))
    db2 = ReconDatabase(tmp_path)
    db2.bind("l", w, method="lstsq", fmt="1x1", calib="c", algo_version=2)
    with pytest.raises(KeyError):
        db2.get("l", 4000)


def test_hash_calibration():
    a = [torch.ones(2, 3), (torch.zeros(2, 3), torch.tensor([1, 2]))]
    b = [torch.ones(2, 3), (torch.zeros(2, 3), torch.tensor([1, 3]))]
    assert hash_calibration(a) == hash_calibration(list(a))
    assert hash_calibration(a) != hash_calibration(b)
    assert hash_calibration([torch.ones(2, 3)]) != hash_calibration([torch.ones(3, 2)])
    f64 = torch.ones(2, dtype=torch.float64)
    assert hash_calibration([torch.ones(2)]) != hash_calibration([f64])


def test_algorithm_version_is_part_of_the_key(tmp_path):
    """The caller's algorithm version keys the entry (the store imports no algorithm)."""
    w = W()
    assert entry_key(w, "obs", "1x1", "c", algo_version=2) != entry_key(w, "obs", "1x1", "c", algo_version=3)
    db = ReconDatabase(tmp_path)
    assert db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=3) == \
        entry_key(w, "obs", "1x1", "c", algo_version=3)
    with pytest.raises(TypeError):
        db.bind("l", w, method="obs", fmt="1x1", calib="c")  # no version: never a silent default


def _put_levels(db, layer, w, levels):
    for bp in levels:
        db.put(layer, bp, torch.ones(8, 6, dtype=torch.bool), w + bp)


def test_two_models_with_the_same_layer_names_keep_both_entries(tmp_path):
    a, b = W(), W() + 1.0
    db = ReconDatabase(tmp_path)
    db.bind("conv1", a, method="obs", fmt="1x1", calib="c", algo_version=2)
    _put_levels(db, "conv1", a, [5000])
    db = ReconDatabase(tmp_path)
    db.bind("conv1", b, method="obs", fmt="1x1", calib="c", algo_version=2)
    assert db.missing("conv1", [5000]) == [5000]
    _put_levels(db, "conv1", b, [5000])
    for w in (a, b):
        db = ReconDatabase(tmp_path)
        db.bind("conv1", w, method="obs", fmt="1x1", calib="c", algo_version=2)
        assert torch.equal(db.get("conv1", 5000)[1], w + 5000)


def test_prune_drops_least_recently_bound_entries_never_bound_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(recon_db, "IN_USE_S", 0.0)   # as if every other compile ended long ago
    ws = [W() + i for i in range(3)]
    for i, w in enumerate(ws):          # bound in order 0, 1, 2: entry 0 is the oldest
        db = ReconDatabase(tmp_path)
        db.bind(f"l{i}", w, method="obs", fmt="1x1", calib="c", algo_version=2)
        _put_levels(db, f"l{i}", w, [4000, 8000])
    one = ReconDatabase(tmp_path).size_bytes() // 3
    db = ReconDatabase(tmp_path)
    db.bind("l0", ws[0], method="obs", fmt="1x1", calib="c", algo_version=2)   # the running compile uses l0
    out = db.prune(max_bytes=one)
    # l0 is bound (kept although oldest); l1 then l2 go until the cap holds
    assert out["dropped"] == 2 and out["size_bytes"] <= one + 16
    assert db.missing("l0", [4000, 8000]) == []
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    again = ReconDatabase(tmp_path)
    again.bind("l1", ws[1], method="obs", fmt="1x1", calib="c", algo_version=2)
    assert again.missing("l1", [4000]) == [4000]
    assert ReconDatabase(tmp_path).prune(max_bytes=10**9)["dropped"] == 0


def test_index_of_one_entry_per_name_is_read(tmp_path):
    w = W()
    db = ReconDatabase(tmp_path)
    db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=2)
    _put_levels(db, "l", w, [6000])
    idx = json.loads((tmp_path / "index.json").read_text())
    idx["entries"] = {"l|1x1": e for e in idx["entries"].values()}   # the layout before keys were in names
    (tmp_path / "index.json").write_text(json.dumps(idx))
    db = ReconDatabase(tmp_path)
    db.bind("l", w, method="obs", fmt="1x1", calib="c", algo_version=2)
    assert torch.equal(db.get("l", 6000)[1], w + 6000)


def test_prune_keeps_entries_another_compile_used_recently(tmp_path, monkeypatch):
    # a compile still running reads its levels long after it bound them: its entries stay,
    # even past the cap, until they are IN_USE_S old
    ws = [W() + i for i in range(2)]
    for i, w in enumerate(ws):
        db = ReconDatabase(tmp_path)
        db.bind(f"l{i}", w, method="obs", fmt="1x1", calib="c", algo_version=2)
        _put_levels(db, f"l{i}", w, [4000])
    db = ReconDatabase(tmp_path)
    db.bind("l0", ws[0], method="obs", fmt="1x1", calib="c", algo_version=2)
    assert db.prune(max_bytes=0)["dropped"] == 0
    monkeypatch.setattr(recon_db, "IN_USE_S", 0.0)
    assert db.prune(max_bytes=0)["dropped"] == 1 and db.missing("l0", [4000]) == []


def test_put_many_writes_every_file_then_the_index_once(tmp_path, monkeypatch):
    db = ReconDatabase(tmp_path)
    w = W()
    for fmt in ("bsr4x1", "bsr4x4-int8"):
        db.bind("fc", w, method="obs", fmt=fmt, calib="c1", algo_version=2)
    saves = []
    real = db._save_index
    monkeypatch.setattr(db, "_save_index", lambda: (saves.append(1), real()))
    mask = w.abs() > 0.5
    db.put_many("fc", [(4000, mask, w * mask, "bsr4x1", 1.0, None),
                       (5000, mask, w * mask, "bsr4x1", 2.0, None),
                       (4000, mask, w * mask, "bsr4x4-int8", 3.0, torch.ones(8))])
    assert len(saves) == 1
    db2 = ReconDatabase(tmp_path)
    for fmt in ("bsr4x1", "bsr4x4-int8"):
        db2.bind("fc", w, method="obs", fmt=fmt, calib="c1", algo_version=2)
    assert db2.errors("fc", "bsr4x1") == {4000: 1.0, 5000: 2.0} and db2.errors("fc", "bsr4x4-int8") == {4000: 3.0}
    assert torch.equal(db2.get_scale("fc", 4000, "bsr4x4-int8"), torch.ones(8))
    # files written but the index not (killed in between): the next build adopts them
    monkeypatch.setattr(db, "_save_index", lambda: None)
    db.put_many("fc", [(6000, mask, w * mask, "bsr4x1", 4.0, None)])
    db3 = ReconDatabase(tmp_path)
    db3.bind("fc", w, method="obs", fmt="bsr4x1", calib="c1", algo_version=2)
    assert db3.missing("fc", [4000, 5000, 6000, 7000], "bsr4x1") == [7000]
