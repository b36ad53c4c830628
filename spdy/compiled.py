"""CompiledModel: what spdy.compile returns."""
from __future__ import annotations

import logging
from pathlib import Path

from spdy.errors import SpdyError
from spdy.runtime.artifact import ArtifactRunner, save_artifact


class CompiledModel:
    """A built artifact plus everything the compile learned.

    `m(x)` runs the artifact (numpy or torch in, same kind out); `report`, `profile` and
    `passlog` say what was done and measured; `save(dir)` writes a directory `spdy.load` reads.
    """

    def __init__(self, built, report: dict, profile: dict, passlog: list, pruned_model=None, example=None):
        self._built = built
        self.report = report
        self.profile = profile
        self.passlog = passlog
        self.pruned_model = pruned_model
        self._example = example  # (args, kwargs) the model was compiled for

    @property
    def runner(self) -> ArtifactRunner:
        return self._built.runner

    @property
    def manifest(self) -> dict:
        return self._built.manifest

    def __call__(self, *args, **kwargs):
        """Run the artifact: one output tensor, or a tuple when the model returns several. A
        Hugging Face ModelOutput comes back as the tuple `out.to_tuple()` (its tensors in order,
        e.g. (last_hidden_state, pooler_output) for BertModel), not as the ModelOutput."""
        return self.runner(*args, **kwargs)

    def export_onnx(self, path, opset: int = 17) -> Path:
        """Write the pruned torch model (reconstructed weights, standard ops) as ONNX, so the
        same pruned weights can run in onnxruntime and other runtimes."""
        import torch
        from spdy.ir.standardize import to_standard_ops
        if self.pruned_model is None or self._example is None:
            raise SpdyError("this CompiledModel has no pruned torch model to export")
        std = to_standard_ops(self.pruned_model).eval()
        args, kwargs = self._example
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with torch.no_grad():
            torch.onnx.export(std, tuple(args) + ((kwargs,) if kwargs else ()), str(tmp), dynamo=False,
                              opset_version=opset, input_names=self.runner.input_names)
        tmp.replace(path)
        return path

    def save(self, out_dir) -> Path:
        """Write the artifact directory (atomically), then its report.html.

        The report is drawn after the artifact is in place: a plot that fails to draw costs
        the page (a short one saying why is written instead, and a warning logged), never the
        artifact. `spdy report DIR` draws it again."""
        from spdy.checks import check_output_path
        check_output_path(out_dir, "save path")
        out = save_artifact(out_dir, self._built.executable, self._built.manifest, {
            "passlog.jsonl": self.passlog,
            "profile.json": self.profile,
            "report.json": self.report,
        })
        write_report(out)
        return out

    def __repr__(self) -> str:
        base = self.report.get("baseline", {})
        ms = base.get("dense_artifact", {}).get("median_ms")
        return f"CompiledModel(target={self.manifest['target_canonical']}, latency_ms={ms})"


def write_report(out: Path) -> Path:
    """out/report.html; on any error a short page saying why, and a warning (the artifact stays)."""
    from spdy.report_html import write_failure_html, write_report_html
    try:
        return write_report_html(out)
    except Exception as exc:  # noqa: BLE001 - any drawing failure must leave the saved artifact usable
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        logging.getLogger("spdy").warning("report.html of %s not drawn (%s); the artifact is saved; "
                                          "`spdy report %s` retries", out, reason, out)
        try:
            return write_failure_html(out, reason)
        except OSError:
            return out / "report.html"
