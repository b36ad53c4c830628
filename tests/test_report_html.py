"""report.html: written by every save, one self-contained page, the numbers of report.json.

Three tiny real compiles of one MLP (dense, sparse, channels), saved once per module: the
sparse and channels ones read the fixed latency table and a device that measures a set
speedup (tests/compile/fakes.py), so nothing here depends on the machine's load.
"""
from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import torch

import spdy
from spdy.api import compile_options, compile_with
from spdy.compiler.channels import ChannelsStrategy
from spdy.report_html import REPORT_HTML, render_report_html, save_plots_png, write_report_html
from spdy.report_html.page import SECTIONS
from tests.compile.fakes import FakeDevice, base_s, fixed_latency_table
from tests.steady_device import SteadyDevice

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "embed", "source", "wbr"}


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).eval()


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 32, generator=g), [torch.randn(8, 32, generator=g) for _ in range(2)]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """{kind: (saved directory, CompiledModel)} for a dense, a sparse and a channels compile."""
    root = tmp_path_factory.mktemp("report_html")
    model, (x, calib) = _model(), _data()
    out = {}
    cm = spdy.compile(model, (x,), tune=False, measure=SteadyDevice(1.0, dense_ms=0.5))
    out["dense"] = (cm.save(root / "dense"), cm)
    with fixed_latency_table():
        cm = spdy.compile(model, (x,), speedup=1.3, calib=calib, formats=("bsr16x1", "dense-int8"), n_samples=16,
                          grid_levels=6, tune=False, compare_onnxruntime=False, measure=FakeDevice(base_s(model), 1.3))
        out["sparse"] = (cm.save(root / "sparse"), cm)
        cm = compile_with(model, (x,), compile_options(mode="channels", speedup=1.2, tune=False, n_samples=16, rounds=2,
                                                       compare_onnxruntime=False,
                                                       measure=FakeDevice(base_s(model), 1.25)),
                          calib=calib, strategy=ChannelsStrategy(ratios=(1.0, 0.5)))
        out["channels"] = (cm.save(root / "channels"), cm)
    return out


class Page(HTMLParser):
    """Collects what the tests read, and fails on a closing tag that closes nothing open."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.attrs, self.cells, self.current = [], set(), [], {}, None
        self.cell_table, self.texts = None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self.cell_table = a.get("id")
            self.cells[self.cell_table] = []
        if tag == "tr" and self.cell_table:
            self.cells[self.cell_table].append([])
        if tag == "td" and self.cell_table:
            self.cells[self.cell_table][-1].append(a.get("data-v"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.attrs.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "table":
            self.cell_table = None

    def handle_data(self, data):
        self.texts.append(data)


def parse(path) -> tuple[Page, str]:
    text = path.read_text()
    p = Page()
    p.feed(text)
    p.close()
    assert p.stack == ["html"] or p.stack == [], p.stack[-5:]
    return p, text


def rows(page: Page, table_id: str) -> list[list]:
    return [r for r in page.cells[table_id] if r]   # the header row has no <td>


@pytest.mark.parametrize("kind", ["dense", "sparse", "channels"])
def test_every_section_is_there_and_the_page_parses(artifacts, kind):
    d, _ = artifacts[kind]
    page, text = parse(d / REPORT_HTML)
    assert set(SECTIONS) <= page.ids
    svgs = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    assert svgs, "no plot drawn"
    for svg in svgs:
        ET.fromstring(svg)        # each plot is well-formed SVG
    assert "<script src" not in text and "<link" not in text and "@import" not in text


@pytest.mark.parametrize("kind", ["dense", "sparse", "channels"])
def test_nothing_loads_from_the_network(artifacts, kind):
    page, text = parse(artifacts[kind][0] / REPORT_HTML)
    for tag, a in page.attrs:
        for key in ("src", "href", "xlink:href", "data", "action"):
            v = (a.get(key) or "").strip().lower()
            assert not v.startswith(("http:", "https:", "//", "ftp:")), (tag, key, v[:80])
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text)


def test_summary_numbers_are_report_json(artifacts):
    for kind, (d, cm) in artifacts.items():
        report = json.loads((d / "report.json").read_text())
        page, text = parse(d / REPORT_HTML)
        shown = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text,
                                     flags=re.S).group(1))
        s = shown["summary"]
        for key in ("requested_speedup", "predicted_speedup", "measured_speedup", "compile_s"):
            assert s[key] == report.get(key), (kind, key)
        dense = (report.get("baseline") or report["rounds"][-1])["dense_artifact"]["median_ms"]
        assert s["latency_ms"]["spdy dense artifact"] == dense
        assert f"{report['compile_s']:.1f} s" in text
    report = json.loads((artifacts["dense"][0] / "report.json").read_text())
    eager = rows(parse(artifacts["dense"][0] / REPORT_HTML)[0], "summary-table")[0]
    assert float(eager[1]) == report["baseline"]["torch_eager"]["median_ms"]
    assert float(eager[2]) == report["baseline"]["speedup_vs_torch_eager"]


@pytest.mark.parametrize("kind", ["dense", "sparse", "channels"])
def test_layers_in_network_order_with_the_chosen_options(artifacts, kind):
    d, _ = artifacts[kind]
    report = json.loads((d / "report.json").read_text())
    table = rows(parse(d / REPORT_HTML)[0], "layers-table")
    assert [r[1] for r in table] == [l["qualname"] for l in report["layers"]]
    for r in table:
        p = report["profile"].get(r[1], {"format": "dense", "sparsity": 0.0})
        assert r[4] == p["format"] and float(r[6]) == p["sparsity"]
        if kind == "sparse":
            assert float(r[10]) == report["layer_errors"][r[1]]      # the chosen option's error
            assert r[8] and r[9]                                      # shares from the latency table
    if kind == "dense":
        assert all(r[8] == "" and r[10] == "" for r in table)       # not recorded, shown as such


def test_rounds_and_the_latency_table_match_report_json(artifacts):
    d, _ = artifacts["sparse"]
    report = json.loads((d / "report.json").read_text())
    page, text = parse(d / REPORT_HTML)
    rounds = rows(page, "rounds-table")
    assert [float(r[4]) for r in rounds] == [rd["measured_speedup"] for rd in report["rounds"]]
    assert [float(r[3]) for r in rounds] == [rd["predicted_speedup"] for rd in report["rounds"]]
    assert "met the target" in text
    lt = report["latency_table"]
    assert len(lt["times_ms"]) == len(lt["layers"]) and len(lt["times_ms"][0]) == len(lt["options"])
    table = rows(page, "latency-table-rows")
    assert [r[0] for r in table] == lt["layers"]
    assert [float(r[2]) for r in table] == [row[0] for row in lt["times_ms"]]
    for r, c, (name, p) in zip(table, lt["chosen"], ((n, report["profile"][n]) for n in lt["layers"])):
        assert r[1] == lt["options"][c] and lt["options"][c].startswith(p["format"] + ":")
    caches = rows(page, "caches-table")
    assert [float(caches[0][1]), float(caches[0][2])] == [report["tuner"]["hits"], report["tuner"]["misses"]]


def test_dense_and_sparse_say_what_does_not_apply(artifacts):
    text = (artifacts["dense"][0] / REPORT_HTML).read_text()
    assert "No correction rounds" in text and "No latency table" in text and "Not a channels compile" in text
    assert "No sweep in this directory" in text


def test_channels_widths_per_group(artifacts):
    d, _ = artifacts["channels"]
    report = json.loads((d / "report.json").read_text())
    table = rows(parse(d / REPORT_HTML)[0], "channels-table")
    widths = report["channels"]["widths"]
    assert {r[0]: int(float(r[2])) for r in table if r[0] in widths} == widths
    assert any(float(r[2]) < float(r[1]) for r in table)   # a group was narrowed


def test_a_failing_plot_costs_the_page_not_the_artifact(artifacts, tmp_path, monkeypatch, caplog):
    import spdy.report_html as rh
    _, cm = artifacts["dense"]

    def broken(_):
        raise RuntimeError("no fonts")
    monkeypatch.setattr(rh, "write_report_html", broken)
    with caplog.at_level(logging.WARNING, logger="spdy"):
        out = cm.save(tmp_path / "a")
    assert "no fonts" in (out / REPORT_HTML).read_text() and "spdy report" in (out / REPORT_HTML).read_text()
    assert any("report.html" in r.message and "no fonts" in r.message for r in caplog.records)
    assert (out / "report.json").exists() and spdy.load(out)(_data()[0].numpy()).shape == (8, 10)


def test_spdy_report_rebuilds_and_opens(artifacts, tmp_path, monkeypatch, capsys):
    import shutil
    import webbrowser
    from spdy.cli import main
    d = tmp_path / "copy"
    shutil.copytree(artifacts["sparse"][0], d)
    (d / REPORT_HTML).unlink()
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["report", str(d), "--open"]) == 0
    assert (d / REPORT_HTML).read_text() == render_report_html(d)
    assert opened == [(d / REPORT_HTML).resolve().as_uri()] and str(d / REPORT_HTML) in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2 and "not an spdy artifact" in capsys.readouterr().err


def test_a_sweep_directory_gets_its_plot(tmp_path):
    levels = [{"level": i, "sparsity": 1 - 0.8 ** i, "test_acc": 0.9 - 0.01 * i, "train_acc_noisy": 0.8,
               "train_acc_true": 0.85, "learning_distance": float(i)} for i in range(5)]
    (tmp_path / "results.json").write_text(json.dumps({"config": {}, "levels": levels}))
    page, text = parse(write_report_html(tmp_path))
    assert "sweep-table" in page.ids and "sparse double descent sweep" in text
    assert [float(r[1]) for r in rows(page, "sweep-table")] == [lv["sparsity"] for lv in levels]


def test_plots_as_png(artifacts, tmp_path):
    written = save_plots_png(artifacts["sparse"][0], tmp_path)
    assert {p.name for p in written} >= {"latency.png", "heatmap.png", "passes.png", "rounds.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
