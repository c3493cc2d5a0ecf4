"""The leaderboard as one self-contained, interactive HTML page: no external assets (inline CSS,
inline SVG figures with error bars, a few lines of plain JavaScript that sort a table by the
clicked column), links to the MLflow runs of every seed."""

from __future__ import annotations

import html
import re
from typing import Any

from specdenoise.evaluation import leaderboard as lb

CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}"
    "td:nth-child(2),th:nth-child(2){text-align:left}"
    "th{background:#f3f3f3;cursor:pointer;user-select:none}th.asc:after{content:' \\25B2'}"
    "th.desc:after{content:' \\25BC'}tr.champion{background:#fff3c4}tr.ref{color:#666;font-style:italic}"
    ".figs{display:flex;flex-wrap:wrap;gap:1em}.figs svg{max-width:640px;height:auto}"
    "p.note{color:#444;max-width:1100px}"
)

#: Sorts a table by the clicked header; numbers (data-v, else the text's first number) sort numerically.
SORT_JS = """
function sdKey(td){var v=td.getAttribute('data-v');if(v!==null&&v!=='')return parseFloat(v);
var m=td.textContent.replace(/,/g,'').match(/[-+]?[0-9]*\\.?[0-9]+/);return m?parseFloat(m[0]):td.textContent;}
document.querySelectorAll('table.sortable').forEach(function(t){
t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
var asc=!th.classList.contains('asc');t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
th.classList.add(asc?'asc':'desc');var body=t.tBodies[0];
var rows=Array.prototype.slice.call(body.rows).filter(function(r){return !r.classList.contains('ref');});
var refs=Array.prototype.slice.call(body.rows).filter(function(r){return r.classList.contains('ref');});
rows.sort(function(a,b){var x=sdKey(a.cells[i]),y=sdKey(b.cells[i]);
if(typeof x==='number'&&typeof y==='number')return asc?x-y:y-x;
return asc?String(x).localeCompare(y):String(y).localeCompare(x);});
rows.concat(refs).forEach(function(r){body.appendChild(r);});});});});
"""


def _svg(text: str) -> str:
    """An SVG document as inline markup (XML prolog and DOCTYPE dropped)."""
    return re.sub(r"^.*?(<svg\b)", r"\1", text, flags=re.S)


def _runs(row: dict[str, Any]) -> str:
    links = []
    for r in row["runs"]:
        label = f"s{r['seed']}"
        links.append(f"<a href='{html.escape(r['url'])}'>{label}</a>" if r["url"] else html.escape(label))
    return " ".join(links) or "-"


def _table(heads: list[str], rows: list[tuple[list[str], list[Any], str]], sortable: bool = True) -> str:
    """``rows``: (cell texts, sort values (None: sort by text), row class)."""
    body = []
    for cells, values, cls in rows:
        tds = []
        for c, v in zip(cells, values, strict=True):
            attr = f" data-v='{v:.10g}'" if isinstance(v, (int, float)) and v == v else ""
            tds.append(f"<td{attr}>{c}</td>")
        body.append(f"<tr class='{cls}'>" + "".join(tds) + "</tr>")
    cls = " class='sortable'" if sortable else ""
    return (
        f"<table{cls}><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def _esc(cells: list[str]) -> list[str]:
    return [html.escape(c) for c in cells]


def _level_section(board: dict[str, Any], level: str) -> str:
    rows = board["tables"][level]
    if level == board["paper_level"]:
        heads = lb.MAIN_HEADS + [f"sigma_fill {n} (dex)" for n in board["line_names"]] + ["MLflow runs"]
        out = []
        for r in rows:
            cells = _esc(lb.main_cells(r, board["line_names"])) + [_runs(r)]
            vals = [r["rank"], None, r["n_seeds"], r["test_loss"], r["diff_value"], r["test_loss_truth"], r["gain"]]
            vals += [None] * (len(cells) - len(vals))
            out.append((cells, vals, "champion" if r["champion"] else ""))
        for cells in lb.ref_cells(board):
            out.append((_esc(cells) + [""], [None] * (len(cells) + 1), "ref"))
    else:
        heads = lb.LEVEL_HEADS + ["MLflow runs"]
        out = [
            (
                _esc(lb.level_cells(r)) + [_runs(r)],
                [r["rank"], None, r["n_seeds"], r["test_loss"], r["diff_value"], r["test_loss_truth"], None],
                "",
            )
            for r in rows
        ]
    section = f"<h2>{html.escape(lb.level_title(board, level))}</h2>" + _table(heads, out)
    cheads, crows = lb.class_table(board, level)
    if crows:
        section += (
            f"<p class='note'>Test loss (observed) per galaxy class (test spectra), sigma = {html.escape(level)}:</p>"
        )
        section += _table(cheads, [(_esc(c), [None] * len(c), "") for c in crows])
    return section


def render(board: dict[str, Any]) -> str:
    """The page: notes, one ranked table per noise level (paper level first) with the per-class
    table, the figures (inline SVG), the MZR table."""
    figs = "".join(f"<figure>{_svg(t)}</figure>" for t in board["figures"].values())
    mzr = ""
    if board["mzr"]["rows"]:
        mzr = f"<h2>{html.escape(lb.mzr_title(board))}</h2>" + _table(
            lb.MZR_HEADS, [(_esc(lb.mzr_cells(r)), [None] * 5, "") for r in board["mzr"]["rows"]], sortable=False
        )
    notes = "".join(f"<p class='note'>{html.escape(n.replace('`', ''))}</p>" for n in lb.NOTES)
    recovery = "".join(
        f"<p class='note'>{html.escape(title)}:</p>" + _table(heads, [(_esc(r), [None] * len(r), "") for r in rows])
        for title, heads, rows in board.get("recovery", [])
    )
    if recovery:
        recovery = "<h2>What the de-noisers recover (test split, every noise level)</h2>" + recovery
    champ = ""
    if board["champion"]:
        c = board["champion"]
        uri = html.escape(f"models:/{c['model']}@champion")
        champ = f"<p class='note'>Registry champion: {uri} (version {c['version']}).</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>specdenoise leaderboard</title>"
        f"<style>{CSS}</style></head><body><h1>specdenoise leaderboard</h1>{notes}"
        "<p class='note'>Click a column header to sort. Run links open the MLflow UI (<code>make ui</code>).</p>"
        + "".join(_level_section(board, level) for level in board["levels"])
        + champ
        + (f"<h2>Figures</h2><div class='figs'>{figs}</div>" if figs else "")
        + recovery
        + mzr
        + f"<script>{SORT_JS}</script></body></html>\n"
    )
