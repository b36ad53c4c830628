"""Bad configurations fail with a clear SpdyError before any data is loaded or trained."""
import pytest

import spdy.sweep.runner as runner
from spdy.errors import SpdyError
from spdy.sweep import SweepConfigError, preset, run_sweep
from spdy.sweep.cli import main


@pytest.fixture
def no_training(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("training or data loading started")
    monkeypatch.setattr(runner, "train", boom)
    monkeypatch.setattr(runner, "load_dataset", boom)


@pytest.mark.parametrize("changes,match", [
    ({"noise_rate": 1.0}, "noise rate"),
    ({"noise_rate": -0.1}, "noise rate"),
    ({"criterion": "taylor"}, "criterion"),
    ({"retrain": "scratch"}, "retrain"),
    ({"noise": "gaussian"}, "noise type"),
    ({"prune_fraction": 1.0}, "prune fraction"),
    ({"model": "mlp:", "exclude": ("fc",)}, "nothing to prune"),
    ({"exclude": ("nope",)}, "match no"),
    ({"model": "resnet"}, "unknown model"),
    ({"rewind_epoch": 99}, "rewind epoch"),
    ({"momentum": 1.0}, "momentum"),
    ({"batch_size": 0}, "batch size"),
])
def test_bad_config_errors_early(tmp_path, small_cfg, no_training, changes, match):
    with pytest.raises(SweepConfigError, match=match) as e:
        run_sweep(small_cfg.replace(**changes), tmp_path / "o", progress=False)
    assert isinstance(e.value, SpdyError) and e.value.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_unknown_preset():
    with pytest.raises(SweepConfigError, match="preset"):
        preset("nope")


def test_cli_usage_errors_exit_2(tmp_path, no_training, capsys):
    assert main(["--preset", "tiny", "-o", str(tmp_path), "--noise-rate", "1.5"]) == 2
    assert "noise rate" in capsys.readouterr().err
    assert main(["--preset", "tiny", "-o", str(tmp_path), "--criterion", "x"]) == 2
    assert main(["--preset", "nope", "-o", str(tmp_path)]) == 2
    assert main(["--bogus-flag"]) == 2


def test_cli_runs(tmp_path, capsys):
    rc = main(["--preset", "tiny", "-o", str(tmp_path), "--levels", "2", "--epochs", "2",
               "--no-progress", "--seed", "1"])
    assert rc == 0
    assert "best" in capsys.readouterr().out
    assert (tmp_path / "results.json").is_file()
