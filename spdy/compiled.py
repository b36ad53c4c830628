"""CompiledModel: what spdy.compile returns."""
from __future__ import annotations

from pathlib import Path

from spdy.runtime.artifact import ArtifactRunner, save_artifact


class CompiledModel:
    """A built artifact plus everything the compile learned.

    `m(x)` runs the artifact (numpy or torch in, same kind out); `report`, `profile` and
    `passlog` say what was done and measured; `save(dir)` writes a directory `spdy.load` reads.
    """

    def __init__(self, built, report: dict, profile: dict, passlog: list, pruned_model=None):
        self._built = built
        self.report = report
        self.profile = profile
        self.passlog = passlog
        self.pruned_model = pruned_model

    @property
    def runner(self) -> ArtifactRunner:
        return self._built.runner

    @property
    def manifest(self) -> dict:
        return self._built.manifest

    def __call__(self, *args, **kwargs):
        return self.runner(*args, **kwargs)

    def save(self, out_dir) -> Path:
        return save_artifact(out_dir, self._built.executable, self._built.manifest, {
            "passlog.jsonl": self.passlog,
            "profile.json": self.profile,
            "report.json": self.report,
        })

    def __repr__(self) -> str:
        base = self.report.get("baseline", {})
        ms = base.get("dense_artifact", {}).get("median_ms")
        return f"CompiledModel(target={self.manifest['target_canonical']}, latency_ms={ms})"
