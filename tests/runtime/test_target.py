import pytest

from spdy.errors import TargetError
from spdy.runtime.target import canonical_target, host_cores, host_cpu, parse_target


def test_string_forms():
    s = parse_target("llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma")
    assert s.to_dict() == {"kind": "llvm", "mcpu": "znver3", "num-cores": 2, "mattr": ["+avx2", "+fma"]}
    t = parse_target("llvm -mcpu=znver3")
    assert t.mcpu == "znver3" and t.num_cores == host_cores()


def test_host_and_dict_and_tvm_target():
    import tvm
    h = parse_target("host")
    assert h.mcpu == host_cpu() and h.mcpu not in ("", "generic", "native")
    d = parse_target({"kind": "llvm", "mcpu": "skylake", "num-cores": 4})
    assert d.canonical() == '{"keys": ["cpu"], "kind": "llvm", "mcpu": "skylake", "num-cores": 4, "tag": ""}'
    tv = parse_target(tvm.target.Target({"kind": "llvm", "mcpu": "znver3", "num-cores": 2}))
    assert tv == parse_target("llvm -mcpu=znver3 -num-cores=2")
    assert "znver3" in str(tv.to_tvm())


@pytest.mark.parametrize("bad", ["cuda", "llvm mcpu=x", "llvm -bogus=1", {"kind": "cuda"},
                                 {"kind": "llvm", "foo": 1}, 42, "llvm -num-cores=zero"])
def test_bad_targets_list_accepted_forms(bad):
    with pytest.raises(ValueError) as e:
        parse_target(bad)
    assert isinstance(e.value, TargetError)
    assert "accepted target forms" in str(e.value) or "num-cores" in str(e.value)


def test_one_canonical_form_for_every_spelling_and_cache_key():
    """String, dict, TargetSpec and tvm.target.Target of one target are one cache key, and it
    is the text latency databases already hold (TVM's export, keys sorted)."""
    import json

    import tvm
    from spdy.runtime.latency_db import LatencyKey
    spec = parse_target("llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma")
    forms = [spec, spec.to_tvm(), spec.to_dict(), "llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma"]
    assert {canonical_target(f) for f in forms} == {spec.canonical()}
    assert {LatencyKey.make("sig", f, 2, "h").target for f in forms} == {spec.canonical()}
    assert spec.canonical() == json.dumps(json.loads(str(tvm.target.Target(spec.to_dict()))), sort_keys=True)
    assert canonical_target("llvm -mcpu=znver3 -num-cores=4") != canonical_target("llvm -mcpu=znver3 -num-cores=2")


def test_opt_level_is_honoured():
    import tvm
    s = parse_target("llvm -mcpu=znver3 -num-cores=2 -opt-level=2")
    assert s.opt_level == 2 and s.to_dict()["opt-level"] == 2 and int(s.to_tvm().attrs["opt-level"]) == 2
    assert s.canonical() != parse_target("llvm -mcpu=znver3 -num-cores=2").canonical()
    assert parse_target(tvm.target.Target({"kind": "llvm", "mcpu": "znver3", "num-cores": 2, "opt-level": 2})) == s
    assert parse_target(str(s)) == s
    with pytest.raises(TargetError, match="opt-level must be 0, 1, 2 or 3"):
        parse_target("llvm -mcpu=znver3 -opt-level=7")


@pytest.mark.parametrize("bad", ["llvm -mcpu=znver3 -keys=cpu", "llvm -mcpu=znver3 -tag=foo",
                                 {"kind": "llvm", "mcpu": "znver3", "keys": ["cpu"]}])
def test_keys_and_tag_are_refused_not_dropped(bad):
    with pytest.raises(TargetError) as e:
        parse_target(bad)
    assert "not supported" in str(e.value) and "\n" not in str(e.value)


def test_unknown_cpu_is_refused_with_valid_names():
    with pytest.raises(TargetError) as e:
        parse_target("llvm -mcpu=nonsense-cpu-x")
    msg = str(e.value)
    assert "nonsense-cpu-x" in msg and "znver3" in msg and host_cpu() in msg and "\n" not in msg
    with pytest.raises(TargetError, match="did you mean znver3"):
        parse_target({"kind": "llvm", "mcpu": "znver33"})


def test_unknown_feature_is_refused():
    assert parse_target("llvm -mcpu=znver3 -mattr=+avx2,-fma").mattr == ("+avx2", "-fma")
    with pytest.raises(TargetError, match="avx512vnni"):
        parse_target("llvm -mcpu=znver3 -mattr=+avx512vnn")
    with pytest.raises(TargetError, match=r"\+feature or -feature"):
        parse_target("llvm -mcpu=znver3 -mattr=avx2")
