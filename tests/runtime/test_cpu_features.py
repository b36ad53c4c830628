"""spdy.load refuses an artifact whose target needs CPU features the host lacks (issue 21)."""
from __future__ import annotations

import pytest
import torch

import spdy
from spdy.errors import HostFeatureError
from spdy.runtime import cpu_features
from spdy.runtime.cpu_features import check_host_runs, host_cpu_flags, missing_features

# /proc/cpuinfo flags of a Haswell (AVX2, FMA, no AVX-512)
HASWELL = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht "
           "syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
           "popcnt aes xsave avx f16c rdrand lahf_lm abm fsgsbase bmi1 avx2 smep bmi2 erms invpcid xsaveopt")
ROCKETLAKE = {"kind": "llvm", "mcpu": "rocketlake", "num-cores": 2}


def _cpuinfo(tmp_path, flags: str):
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\nbugs\t\t: none\n\n"
                 f"processor\t: 1\nflags\t\t: {flags}\n")
    return p


def test_avx512_target_on_an_avx2_host_is_refused(tmp_path):
    fake = _cpuinfo(tmp_path, HASWELL)
    missing = missing_features(ROCKETLAKE, host_cpu_flags(fake))
    assert "avx512f" in missing and "avx512vnni" in missing and "avx2" not in missing
    with pytest.raises(HostFeatureError, match=r"mcpu=rocketlake .*lacks: .*avx512f.*target='host'"):
        check_host_runs(ROCKETLAKE, cpuinfo=fake)


def test_a_target_within_the_host_passes_and_mattr_counts(tmp_path):
    fake = _cpuinfo(tmp_path, HASWELL)
    check_host_runs({"kind": "llvm", "mcpu": "haswell"}, cpuinfo=fake)
    with pytest.raises(HostFeatureError, match="avx512f"):
        check_host_runs({"kind": "llvm", "mcpu": "haswell", "mattr": ["+avx512f"]}, cpuinfo=fake)
    with pytest.raises(HostFeatureError, match="avx2"):
        check_host_runs({"kind": "llvm", "mcpu": "haswell"}, cpuinfo=_cpuinfo(tmp_path, HASWELL.replace(" avx2", "")))


def test_unreadable_flags_skip_the_check(tmp_path):
    assert host_cpu_flags(tmp_path / "none") is None
    check_host_runs(ROCKETLAKE, cpuinfo=tmp_path / "none")


def test_another_architecture_is_refused():
    with pytest.raises(HostFeatureError, match="aarch64"):
        check_host_runs({"kind": "llvm", "mcpu": "generic", "mtriple": "aarch64-linux-gnu"})


def test_spdy_load_reads_the_host_flags(tmp_path, monkeypatch):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 8)).eval()
    x = torch.randn(1, 16)
    out = spdy.compile(m, (x,), target={"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 1}, tune=False,
                       measure=False).save(tmp_path / "a")
    spdy.load(out)  # this host (AVX-512) runs it
    monkeypatch.setattr(cpu_features, "CPUINFO", _cpuinfo(tmp_path, HASWELL))
    with pytest.raises(HostFeatureError, match=r"artifact .* mcpu=skylake-avx512 .*avx512f"):
        spdy.load(out)
