"""The report page: one HTML file with its CSS, a few lines of JS (sortable tables) and the
plots inline as SVG. Nothing is loaded from anywhere: the file can be mailed, archived or
opened offline and looks the same.

Every section is always there (ids: summary, layers, rounds, latency-table, passes, caches,
channels, sweep); one with nothing to show says what was not recorded or why it does not
apply, so a reader never wonders whether a part is missing or empty.
"""
from __future__ import annotations

import html
import json

SECTIONS = ("summary", "layers", "rounds", "latency-table", "passes", "caches", "channels", "sweep")

CSS = """
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
color:#1f2328;background:#f6f8fa}header{background:#24292f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c9d1d9}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #d0d7de;padding:6px 24px;z-index:2}
nav a{margin-right:14px;color:#0969da;text-decoration:none}main{max-width:1280px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:17px;margin:4px 0 10px}.note{color:#57606a;font-size:13px}.kv{display:grid;
grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:8px 18px;margin-bottom:10px}
.kv div{border-left:3px solid #1f6feb;padding-left:8px}.kv b{display:block;font-size:12px;color:#57606a;font-weight:500}
.kv span{font-size:16px}.plot{overflow-x:auto;margin:8px 0}.plot svg{max-width:100%;height:auto}
.scroll{overflow:auto;max-height:560px;border:1px solid #d8dee4}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{padding:3px 8px;border-bottom:1px solid #eaeef2;
text-align:left;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f6f8fa;position:sticky;top:0;cursor:pointer;user-select:none}th[data-dir=asc]:after{content:" \\25B2"}
th[data-dir=desc]:after{content:" \\25BC"}tr.hl td{background:#ddf4ff}.bad{color:#cf222e}.ok{color:#1a7f37}
details{margin:6px 0}code{font-size:12px}
"""

JS = """
document.querySelectorAll("table.sortable th").forEach(function(th, i){th.addEventListener("click", function(){
 var table = th.closest("table"), body = table.tBodies[0], asc = th.dataset.dir !== "asc";
 table.querySelectorAll("th").forEach(function(h){delete h.dataset.dir;}); th.dataset.dir = asc ? "asc" : "desc";
 function key(td){var v = td.dataset.v !== undefined ? td.dataset.v : td.textContent;
  if (v === "") return -Infinity; var n = Number(v); return isNaN(n) ? v.toLowerCase() : n;}
 Array.from(body.rows).sort(function(a, b){var x = key(a.cells[i]), y = key(b.cells[i]);
  if (typeof x !== typeof y) {x = String(x); y = String(y);} return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1);})
  .forEach(function(r){body.appendChild(r);});});});
"""


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


class Cell:
    """A table cell: shown text, and the raw value tables sort by (and tests read)."""

    def __init__(self, text, value=None, numeric: bool = False):
        self.text, self.value, self.numeric = text, value, numeric

    def html(self) -> str:
        v = "" if self.value is None else (repr(float(self.value)) if isinstance(self.value, (int, float))
                                          and not isinstance(self.value, bool) else str(self.value))
        cls = ' class="n"' if self.numeric else ""
        return f'<td{cls} data-v="{esc(v)}">{esc(self.text)}</td>'


def num(value, fmt: str = "{:.3g}", missing: str = "not recorded") -> Cell:
    if value is None:
        return Cell(missing, None, True)
    return Cell(fmt.format(value), value, True)


def speedup(value, missing: str = "not recorded") -> Cell:
    return num(value, "{:.2f}x", missing)


def pct(value, missing: str = "not recorded") -> Cell:
    return Cell(missing, None, True) if value is None else Cell(f"{100 * value:.1f}%", value, True)


def text(value) -> Cell:
    return Cell("" if value is None else value, None if value is None else str(value))


def table(headers: list[str], rows: list[list[Cell]], *, table_id: str, highlight: list[bool] | None = None,
          scroll: bool = True) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="hl"' if highlight and highlight[i] else ""
        body.append(f"<tr{cls}>" + "".join(c.html() for c in row) + "</tr>")
    t = (f'<table class="sortable" id="{esc(table_id)}"><thead><tr>{head}</tr></thead>'
         f'<tbody>{"".join(body)}</tbody></table>')
    return f'<div class="scroll">{t}</div>' if scroll else t


def kv(items: list[tuple[str, str]]) -> str:
    return '<div class="kv">' + "".join(f"<div><b>{esc(k)}</b><span>{esc(v)}</span></div>" for k, v in items) \
        + "</div>"


def plot(svg: str | None) -> str:
    return f'<div class="plot">{svg}</div>' if svg else ""


def note(msg: str) -> str:
    return f'<p class="note">{esc(msg)}</p>'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]], data_json: dict) -> str:
    """The whole document. `data_json` is embedded as application/json (the numbers the
    page shows, for scripts that read the report back)."""
    nav = "".join(f'<a href="#{esc(sid)}">{esc(t)}</a>' for sid, t, _ in sections)
    body = "".join(section(*s) for s in sections)
    payload = json.dumps(data_json, default=str).replace("</", "<\\/")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main>"
            f'<script type="application/json" id="report-data">{payload}</script>'
            f"<script>{JS}</script></body></html>\n")
