"""The compile the cache fault tests run in a child process (tests/faults.spawn): a 4-layer MLP
searched at 1.1x with the steady device, sharing SPDY_CACHE_DIR. argv: WORKDIR GO GRID_LEVELS;
it prints "ready", waits for the file GO ("-": no wait), compiles into WORKDIR and prints the
latency-table and database cache stats from the pass log as one JSON line."""

COMPILE = """
    import json, sys, torch
    import spdy.errors
    from pathlib import Path
    import spdy
    from tests.steady_device import SteadyDevice
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                            torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 64, generator=g)
    calib = [torch.randn(16, 64, generator=g) for _ in range(2)]
    work, go, levels = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    while go != "-" and not Path(go).exists():
        pass
    try:   # what the search concludes does not matter here (two compiles on 2 cores may find 1.1x out of reach)
        spdy.compile(m, (x,), speedup=1.1, calib=calib, n_samples=32, grid_levels=levels, max_evals=4, tune=False,
                     formats=("bsr16x1",), keep_dense=[], measure=SteadyDevice(1.15), compare_onnxruntime=False,
                     workdir=work)
    except spdy.errors.InfeasibleSpeedupError:
        pass
    records = map(json.loads, (work / "passlog.jsonl").read_text().splitlines())
    st = {p["pass"]: p["stats"] for p in records if "stats" in p}      # a failed pass records no stats
    print(json.dumps({"hits": st["profile-latency"]["cache_hits"], "misses": st["profile-latency"]["cache_misses"],
                      "built": st["build-database"]["built"], "reused": st["build-database"]["reused"]}))
"""
