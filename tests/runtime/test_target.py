import pytest

from spdy.errors import TargetError
from spdy.runtime.target import host_cores, host_cpu, parse_target


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
    assert d.canonical() == '{"kind":"llvm","mcpu":"skylake","num-cores":4}'
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
