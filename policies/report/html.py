"""The access matrix as one self-contained HTML page (inline CSS, no external assets)."""

from __future__ import annotations

from html import escape

from policies.report.model import MatrixReport

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .3rem} p.sub{color:#59636e;margin:0 0 1rem}
table{border-collapse:collapse;margin-top:1rem}
th,td{border:1px solid #d1d9e0;padding:.35rem .5rem;vertical-align:top}
th{background:#f6f8fa;text-align:left;position:sticky;top:0}
td.label{font-weight:600;white-space:nowrap} td.label code{display:block;font-weight:400;
color:#59636e;font-size:12px}
.cap{display:inline-block;margin:1px;padding:1px 6px;border-radius:10px;font-size:12px;
font-family:ui-monospace,monospace;border:1px solid transparent}
.all.read,.all.list{background:#dafbe1;border-color:#4ac26b}
.some.read,.some.list{background:repeating-linear-gradient(45deg,#dafbe1,#dafbe1 4px,#fff 4px,
#fff 8px);border-color:#4ac26b}
.all.write{background:#fff1c5;border-color:#d4a72c}
.some.write{background:repeating-linear-gradient(45deg,#fff1c5,#fff1c5 4px,#fff 4px,#fff 8px);
border-color:#d4a72c}
.cap.via{border-style:dashed;border-width:2px}
.all.sudo,.some.sudo{background:#ffebe9;border-color:#cf222e;color:#82071e;font-weight:700}
td.none{color:#afb8c1;text-align:center}
.legend span{margin-right:1rem}
h2{font-size:1.1rem;margin-top:2rem}
td.ok{color:#1a7f37;font-weight:700} td.bad{color:#cf222e;font-weight:700}
tr.bad td{background:#fff5f5}
"""

_WRITE = {"create", "update", "patch", "delete", "recover"}


def _kind(cap: str) -> str:
    if cap == "sudo":
        return "sudo"
    return "write" if cap in _WRITE else cap


def render_matrix(matrix: MatrixReport, *, title: str = "keybroker access matrix") -> str:
    head = "".join(
        f"<th>{escape(p)}<br><small>{escape(', '.join(matrix.principal_policies[p]))}</small></th>"
        for p in matrix.principals
    )
    body = []
    for label, pattern in matrix.rows:
        cells = []
        for principal in matrix.principals:
            cell = matrix.cells[(principal, pattern)]
            badges = []
            for cap in matrix.capabilities:
                level = cell.levels[cap]
                if level == "none":
                    continue
                scope = "every path" if level == "all" else "some paths, e.g."
                tip = f"{cap} on {scope} {cell.examples.get(cap, '')}".strip()
                sources = cell.sources.get(cap)
                if sources:
                    tip += " | granted by " + ", ".join(sources)
                badges.append(
                    f'<span class="cap {level} {_kind(cap)}" title="{escape(tip)}">'
                    f"{escape(cap)}{'' if level == 'all' else '?'}</span>"
                )
            for cap, reached in cell.reached.items():
                tip = f"{cap} only through escalation, e.g. {reached.example} | {reached.chain}"
                badges.append(
                    f'<span class="cap {reached.level} via {_kind(cap)}" title="{escape(tip)}">'
                    f"&#8631;{escape(cap)}{'' if reached.level == 'all' else '?'}</span>"
                )
            if badges:
                cells.append(f"<td>{''.join(badges)}</td>")
            else:
                cells.append('<td class="none">&middot;</td>')
        body.append(
            f'<tr><td class="label">{escape(label)}<code>{escape(pattern)}</code></td>'
            f"{''.join(cells)}</tr>"
        )
    legend = (
        '<p class="legend">'
        '<span><span class="cap all read">read</span> held on every path of the class</span>'
        '<span><span class="cap some read">read?</span> held on some paths only '
        "(hover for an example)</span>"
        '<span><span class="cap all write">update</span> changes data</span>'
        '<span><span class="cap all sudo">sudo</span> root-protected endpoints</span>'
        '<span><span class="cap all via read">&#8631;read</span> only through escalation '
        "(a token, secret-id or policy the principal can create; hover for the chain)</span>"
        "<span>&middot; nothing</span></p>"
    )
    inv_rows = []
    for inv in matrix.invariants:
        if inv.violations:
            v = inv.violations[0]
            where = f" ({v.file}:{v.line})" if v.file else ""
            more = f" and {len(inv.violations) - 1} more" if len(inv.violations) > 1 else ""
            verdict = '<td class="bad">violated</td>'
            evidence = f"{escape(v.message)}{escape(where)}{more}"
            css = ' class="bad"'
        else:
            verdict, evidence, css = '<td class="ok">holds</td>', "", ""
        inv_rows.append(
            f"<tr{css}>{verdict}<td><code>{escape(inv.id)}</code></td>"
            f"<td>{escape(inv.statement)}</td><td>{evidence}</td></tr>"
        )
    invariants = (
        "<h2>Invariants</h2><table><thead><tr><th></th><th>id</th><th>statement</th>"
        f"<th>counterexample</th></tr></thead><tbody>{''.join(inv_rows)}</tbody></table>"
        if inv_rows
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        '<p class="sub">Who can do what where, decided exactly over every concrete path '
        "of each class (keybroker policy matrix).</p>"
        f"{legend}<table><thead><tr><th>path class</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{invariants}</body></html>\n"
    )
