"""The matrix page: one self-contained HTML file (inline CSS, JS and SVG) a release manager opens first.

Why one file with nothing external: it is mailed, attached to tickets and opened from CI artifacts, often without
network access; every fact comes from the runs' summary.json and the catalog, and every text is escaped.
Rows are the 18 release-note items in catalog order (each row's id is the item id, so ``matrix.html#K4`` — the
target of the Allure links — lands on it), columns the runs; each cell links to a details section listing its tests.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path

from conformance.reports.matrix import NO_TEST, VERDICTS, Cell, Matrix, throughput
from conformance.reports.svg_chart import throughput_chart

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
#matrix thead th{background:#f3f3f3;font-weight:600}#matrix tbody th{text-align:left;font-weight:normal;max-width:28em}
#matrix tbody th small{color:#666}.cell{text-align:center;min-width:9em}
.cell a{color:inherit;text-decoration:none;display:block}
.cell small{display:block;font-size:.8em}.pass{background:#d8f0d2}.known-issue{background:#fde9b8}
.not-applicable{background:#e6e6e6;color:#555}.fail{background:#f7c6c4;font-weight:600}.no-test{background:#fff;color:#999}
tr:target th,details:target{outline:3px solid #4e79a7}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #ccc}
details{margin:.3em 0;border:1px solid #ddd;padding:.2em .6em}details table{margin:.4em 0;font-size:.9em}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .chart-title{font-size:13px;font-weight:600}
svg .grid{stroke:#ddd}svg .tick{fill:#666}
"""

JS = """
(function(){
  function openTarget(){
    var id=decodeURIComponent(location.hash.slice(1));
    var el=id?document.getElementById(id):null;
    if(el&&el.tagName==='DETAILS'){el.open=true;el.scrollIntoView();}
  }
  window.addEventListener('hashchange',openTarget);
  openTarget();
  var box=document.getElementById('only-problems');
  box.addEventListener('change',function(){
    document.querySelectorAll('#matrix tbody tr').forEach(function(row){
      var bad=row.querySelector('.fail,.known-issue');
      row.hidden=box.checked&&!bad;
    });
  });
})();
"""


def _css_class(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _counts_text(cell: Cell) -> str:
    return ", ".join(f"{n} {word}" for word, n in cell.counts.items()) or "no test"


def _cell_html(cell: Cell) -> str:
    verdict = cell.verdict
    inner = escape(verdict)
    if verdict != NO_TEST:
        inner = f'<a href="#{cell.anchor}">{inner}<small>{escape(_counts_text(cell))}</small></a>'
    return f'<td class="cell {_css_class(verdict)}" data-verdict="{escape(verdict)}">{inner}</td>'


def _details_html(matrix: Matrix, allure_href: str | None) -> list[str]:
    parts: list[str] = []
    for item in matrix.items:
        for column, run in enumerate(matrix.runs):
            cell = matrix.cell(item.id, column)
            if not cell.tests:
                continue
            rows = "".join(
                f"<tr><td><code>{escape(t['nodeid'])}</code></td><td>{escape(t['outcome'])}</td>"
                f"<td>{escape(str(t.get('expectation') or ''))}</td><td>{escape(str(t.get('reason') or ''))}</td></tr>"
                for t in sorted(cell.tests, key=lambda t: (t["outcome"] == "passed", t["nodeid"]))
            )
            allure = f' · <a href="{escape(allure_href)}">open the Allure report</a>' if allure_href else ""
            parts.append(
                f'<details class="cell-details" id="{cell.anchor}"><summary>{escape(item.id)} · {escape(run.label)} '
                f"({escape(run.run_id)}): <b>{escape(cell.verdict)}</b> — {escape(_counts_text(cell))}{allure}"
                f"</summary><table><thead><tr><th>test</th><th>outcome</th><th>expectation</th><th>reason</th>"
                f"</tr></thead><tbody>{rows}</tbody></table></details>"
            )
    return parts


def render(matrix: Matrix, *, allure_href: str | None = None, generated: float | None = None) -> str:
    """The whole page as one string."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(generated if generated is not None else time.time()))
    heads = "".join(
        f'<th class="run" scope="col">{escape(run.label)}<br><small>{escape(run.run_id)} · '
        f"{escape(str(run.summary.get('backup_app') or 'reference'))}</small></th>"
        for run in matrix.runs
    )
    body = []
    for item in matrix.items:
        cells = "".join(_cell_html(matrix.cell(item.id, column)) for column in range(len(matrix.runs)))
        body.append(
            f'<tr id="{escape(item.id)}"><th scope="row" title="{escape(item.summary)}"><b>{escape(item.id)}</b> '
            f"{escape(item.title)}<br><small>{escape(item.section)} · {escape(item.anchor)}</small></th>{cells}</tr>"
        )
    totals = "".join(
        f"<td>{escape(', '.join(f'{n} {w}' for w, n in matrix.totals(column).items()))}</td>"
        for column in range(len(matrix.runs))
    )
    legend = "".join(f'<span class="{_css_class(v)}">{escape(v)}</span>' for v in VERDICTS)
    chart = throughput_chart(throughput(matrix.runs))
    chart_section = chart or "<p>No F1 throughput figures in these runs.</p>"
    allure = f' · <a id="allure-link" href="{escape(allure_href)}">Allure report</a>' if allure_href else ""
    unlinked = (
        f"<p>{len(matrix.unlinked)} tests name no release-note item and are not in the matrix.</p>"
        if matrix.unlinked
        else ""
    )
    return "\n".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            "<title>VDDK release-note matrix</title>",
            f"<style>{CSS}</style></head><body>",
            "<h1>VDDK release-note matrix</h1>",
            f"<p>{len(matrix.items)} release-note items, {len(matrix.runs)} runs · generated {escape(stamp)}"
            f"{allure}</p>",
            f'<p class="legend">{legend} <label><input type="checkbox" id="only-problems"> only rows with a failure '
            "or known issue</label></p>",
            f'<table id="matrix"><thead><tr><th scope="col">Release-note item</th>{heads}</tr></thead>',
            f"<tbody>{''.join(body)}</tbody><tfoot><tr><th>items per verdict</th>{totals}</tr></tfoot></table>",
            unlinked,
            f'<h2 id="throughput">F1 throughput</h2>{chart_section}',
            '<h2 id="tests">Tests behind the cells</h2>',
            *_details_html(matrix, allure_href),
            f"<script>{JS}</script></body></html>",
        ]
    )


def write_page(matrix: Matrix, path: Path, *, allure_href: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(matrix, allure_href=allure_href), encoding="utf-8")
    return path
