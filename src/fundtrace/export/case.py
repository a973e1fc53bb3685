"""The case report: one reported case's money flow as a self-contained HTML page, or as GraphML.

:func:`case_data` gathers what is known about a case (the report rows, the traced flows and holdings,
the freeze decisions and requests naming it, the alerts whose evidence touches its payments);
:func:`case_graph` turns it into a NetworkX MultiDiGraph (accounts as nodes, each traced payment an
edge keyed by its txn id); :func:`render_html` lays the graph out itself, hop levels left to right, as
an inline SVG in one HTML file with inline CSS and no scripts, so it opens offline and loads nothing
(a Content-Security-Policy forbids any fetch). Accounts listed to freeze or stop are highlighted with
the amounts they hold.
"""

from __future__ import annotations

import html
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import networkx as nx

from fundtrace.errors import InputError, UsageError
from fundtrace.schema import TRACE_RULES

__all__ = ["FORMATS", "case_data", "case_graph", "render_html", "write_case"]

FORMATS = ("html", "graphml")
RULES = TRACE_RULES
COL, ROW, BOX_W, BOX_H, PAD = 380, 86, 210, 62, 40
COLOURS = {  # fill, stroke
    "victim": ("#dbeafe", "#1d4ed8"),
    "freeze": ("#fecaca", "#b91c1c"),
    "stop_pay": ("#fed7aa", "#c2410c"),
    "holds": ("#fef9c3", "#a16207"),
    "cash_out": ("#e5e7eb", "#374151"),
    "account": ("#ffffff", "#6b7280"),
}


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _money(value: Any) -> str:
    return f"{_f(value):,.2f}"


def _key(bank: Any, account: Any) -> str:
    return f"{bank}:{account}"


def case_data(ws, case_id: str, rule: str | None = None) -> dict[str, Any]:
    """Everything the report shows about ``case_id``; an unknown case is an InputError."""
    from fundtrace import trace as tracing

    con = ws.con
    stored = tracing.results(ws, [case_id]).get(case_id)
    if not stored or not stored["report"]:
        raise InputError(f"no reported case {case_id!r}", hint="list cases with `fundtrace query cases`")
    if rule is None:
        rule = con.execute("SELECT any_value(rule) FROM freeze_list").fetchall()[0][0] or "lifo"
    if rule not in RULES:
        raise UsageError(f"--rule must be one of {', '.join(RULES)}")
    p = {"case_id": case_id}
    freeze = (
        con.sql(
            "SELECT * FROM freeze_list WHERE list_contains(string_split(case_ids, ';'), $case_id) ORDER BY priority",
            params=p,
        )
        .pl()
        .to_dicts()
    )
    requests = (
        con.sql(
            "SELECT request_id, request_type, bank, account, amount_to_freeze, requested_at, expires_at, status "
            "FROM freeze_requests WHERE list_contains(string_split(case_ids, ';'), $case_id) "
            "ORDER BY requested_at, bank, account",
            params=p,
        )
        .pl()
        .to_dicts()
    )
    txns = sorted({f["txn_id"] for f in stored["flows"]})
    evidence = (
        con.sql(
            """
            SELECT a.alert_id, a.typology, round(a.score, 3) AS score, a.summary,
                   string_agg(e.txn_id, ';' ORDER BY e.txn_id) AS case_txns
            FROM alert_evidence e JOIN alerts a USING (alert_id)
            WHERE e.txn_id IN (SELECT unnest($txns))
            GROUP BY a.alert_id, a.typology, a.score, a.summary
            ORDER BY a.score DESC, a.alert_id
            """,
            params={"txns": txns},
        )
        .pl()
        .to_dicts()
        if txns
        else []
    )
    return {
        "case_id": case_id,
        "rule": rule,
        "report": stored["report"],
        "flows": stored["flows"],
        "holdings": stored["holdings"],
        "freeze": freeze,
        "requests": requests,
        "evidence": evidence,
    }


def case_graph(data: dict[str, Any]) -> nx.MultiDiGraph:
    """The case's money flow: accounts as nodes (level, role, held, to_freeze ...), payments as edges."""
    rule = data["rule"]
    g = nx.MultiDiGraph(case_id=data["case_id"], rule=rule)
    victims = {_key(r["victim_bank"], r["victim_account"]) for r in data["report"] if r.get("victim_account")}
    for v in sorted(victims):
        bank, _, account = v.partition(":")
        g.add_node(v, bank=bank, account=account, level=0, role="victim")
    default_src = sorted(victims)[0] if victims else "unknown:victim"
    for f in data["flows"]:
        src = _key(f["src_bank"], f["src_account"]) if f["src_account"] is not None else default_src
        dst = _key(f["dst_bank"], f["dst_account"])
        for node, bank, account in ((src, f["src_bank"], f["src_account"]), (dst, f["dst_bank"], f["dst_account"])):
            if node not in g:
                b, _, a = node.partition(":")
                level = f["hop"] + 1 if node == dst else f["hop"]
                g.add_node(node, bank=str(bank or b), account=str(account or a), level=level, role="account")
        g.nodes[dst]["level"] = min(g.nodes[dst]["level"], f["hop"] + 1)
        if f["stop"] == "cash_out":
            g.nodes[dst]["role"] = "cash_out"
        elif f["stop"] and g.nodes[dst]["role"] == "account":
            g.nodes[dst]["role"] = f["stop"]
        g.add_edge(
            src,
            dst,
            key=f["txn_id"],
            txn_id=f["txn_id"],
            ts=f["ts"].isoformat(sep=" "),
            hop=int(f["hop"]),
            amount=_f(f["amount"]),
            victim_amount=_f(f[f"taint_{rule}"]),
            channel=f["channel"] or "",
            stop=f["stop"] or "",
        )
    for h in data["holdings"]:
        node = _key(h["bank"], h["account"])
        if node not in g:
            g.add_node(node, bank=h["bank"], account=h["account"], level=int(h["hop"]), role="account")
        attrs = g.nodes[node]
        attrs["held"] = attrs.get("held", 0.0) + _f(h[f"held_{rule}"])
        attrs["balance"] = _f(h["balance"])
    for r in data["freeze"]:
        node = _key(r["bank"], r["account"])
        if node not in g:
            continue
        attrs = g.nodes[node]
        attrs["to_freeze"] = _f(r["amount_to_freeze"])
        attrs["stop_pay"] = bool(r["stop_pay"])
        attrs["score"] = float(r["score"])
        if r.get("holder_name"):
            attrs["holder_name"] = r["holder_name"]
    return g


def _status(attrs: dict[str, Any]) -> str:
    if attrs.get("role") == "victim":
        return "victim"
    if "to_freeze" in attrs:
        return "stop_pay" if attrs.get("stop_pay") else "freeze"
    if attrs.get("role") == "cash_out":
        return "cash_out"
    if attrs.get("held", 0) >= 0.01:
        return "holds"
    return "account"


def _layout(g: nx.MultiDiGraph) -> dict[str, tuple[float, float]]:
    """Columns by level; inside a column, nodes ordered by the mean row of their payers (fewer crossings)."""
    levels: dict[int, list[str]] = {}
    for node, attrs in g.nodes(data=True):
        levels.setdefault(int(attrs["level"]), []).append(node)
    pos: dict[str, tuple[float, float]] = {}
    row: dict[str, float] = {}
    for level in sorted(levels):
        nodes = levels[level]

        def weight(n: str) -> tuple[float, str]:
            preds = [row[p] for p in g.predecessors(n) if p in row]
            return (sum(preds) / len(preds) if preds else 0.0, n)

        for i, node in enumerate(sorted(nodes, key=weight)):
            row[node] = i
            pos[node] = (PAD + level * COL, PAD + 30 + i * ROW)
    return pos


def _svg(g: nx.MultiDiGraph) -> str:
    pos = _layout(g)
    if not pos:
        return '<p class="empty">No traced flows for this case.</p>'
    width = max(x for x, _ in pos.values()) + BOX_W + PAD
    height = max(y for _, y in pos.values()) + BOX_H + PAD
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="width:100%;height:auto;max-width:{width:.0f}px" '
        'role="img" aria-label="money-flow graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" '
        'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#475569"/></marker></defs>',
    ]
    for level in sorted({int(a["level"]) for _, a in g.nodes(data=True)}):
        parts.append(
            f'<text class="lvl" x="{PAD + level * COL + BOX_W / 2:.0f}" y="{PAD:.0f}" text-anchor="middle">'
            f"{'victim' if level == 0 else f'level {level}'}</text>"
        )
    pairs: dict[tuple[str, str], list[dict]] = {}
    for u, v, attrs in g.edges(data=True):
        pairs.setdefault((u, v), []).append(attrs)
    top = max((sum(a["victim_amount"] for a in edges) for edges in pairs.values()), default=1.0) or 1.0
    for (u, v), edges in sorted(pairs.items()):
        (x1, y1), (x2, y2) = pos[u], pos[v]
        victim = sum(a["victim_amount"] for a in edges)
        total = sum(a["amount"] for a in edges)
        edges.sort(key=lambda a: a["ts"])
        when = edges[0]["ts"][5:16] if len(edges) == 1 else f"{edges[0]['ts'][5:16]} – {edges[-1]['ts'][11:16]}"
        label = f"{_money(total)} · {when}" if len(edges) == 1 else f"{len(edges)} × {_money(total)} · {when}"
        stroke = 1.2 + 4.5 * victim / top
        if x2 > x1:
            sx, sy, tx, ty = x1 + BOX_W, y1 + BOX_H / 2, x2, y2 + BOX_H / 2
            dx = (tx - sx) / 2
            d = f"M {sx:.1f} {sy:.1f} C {sx + dx:.1f} {sy:.1f}, {tx - dx:.1f} {ty:.1f}, {tx:.1f} {ty:.1f}"
            # the label sits where this edge is apart from its siblings: near the end of a fan-out, near the
            # start of a fan-in
            t = 0.7 if len(set(g.successors(u))) >= len(set(g.predecessors(v))) else 0.3
            lx = (1 - t) ** 3 * sx + 3 * (1 - t) ** 2 * t * (sx + dx) + 3 * (1 - t) * t**2 * (tx - dx) + t**3 * tx
            ly = (1 - t) ** 3 * sy + 3 * (1 - t) ** 2 * t * sy + 3 * (1 - t) * t**2 * ty + t**3 * ty - 6 - stroke / 2
        else:  # back to an earlier (or the same) level: arc over the top
            sx, sy, tx, ty = x1 + BOX_W / 2, y1, x2 + BOX_W / 2, y2
            lift = 40 + abs(x1 - x2) / 6
            d = f"M {sx:.1f} {sy:.1f} C {sx:.1f} {sy - lift:.1f}, {tx:.1f} {ty - lift:.1f}, {tx:.1f} {ty:.1f}"
            lx, ly = (sx + tx) / 2, min(sy, ty) - lift * 0.75
        title = "\n".join(
            f"{a['ts']} {a['txn_id']}: {_money(a['amount'])} (victim's {_money(a['victim_amount'])}) {a['channel']}"
            for a in edges
        )
        parts.append(
            f'<g class="edge"><title>{e(title)}</title><path d="{d}" fill="none" stroke="#475569" '
            f'stroke-width="{stroke:.1f}" marker-end="url(#arrow)"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle" class="elabel">{e(label)}</text></g>'
        )
    for node, attrs in g.nodes(data=True):
        x, y = pos[node]
        status = _status(attrs)
        fill, stroke = COLOURS[status]
        if status in ("freeze", "stop_pay"):
            what = "STOP PAY" if status == "stop_pay" else "FREEZE"
            line2 = f"{what} {_money(attrs['to_freeze'])}"
            line3 = f"holds {_money(attrs.get('held'))} · score {attrs.get('score', 0):.2f}"
        elif status == "victim":
            line2, line3 = "victim", ""
        elif status == "cash_out":
            line2, line3 = "cashed out here", ""
        else:
            line2 = f"holds {_money(attrs.get('held'))}" if "held" in attrs else attrs.get("role", "")
            line3 = f"balance {_money(attrs.get('balance'))}" if "balance" in attrs else ""
        name = node if len(node) <= 28 else node[:27] + "…"
        width = 3 if status in ("freeze", "stop_pay") else 1.5
        parts.append(
            f'<g class="node {status}"><title>{e(node)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{width}"/>'
            f'<text x="{x + 9}" y="{y + 18}" class="name">{e(name)}</text>'
            f'<text x="{x + 9}" y="{y + 36}" class="l2">{e(line2)}</text>'
            f'<text x="{x + 9}" y="{y + 52}" class="l3">{e(line3)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (Decimal, float)):
        return f"{float(value):,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str], empty: str) -> str:
    e = html.escape
    if not rows:
        return f"<h2>{e(title)}</h2><p class='empty'>{e(empty)}</p>"
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<h2>{e(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:20px;color:#111827;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px}
.facts{color:#374151;margin:0 0 8px}
.graph{overflow:auto;border:1px solid #d1d5db;border-radius:6px;background:#f8fafc}
svg text{font-size:12px;fill:#111827} svg .name{font-weight:600} svg .lvl{fill:#6b7280;font-size:12px}
svg .elabel{font-size:11px;fill:#1f2937;paint-order:stroke;stroke:#f8fafc;stroke-width:3px}
svg .freeze .l2,svg .stop_pay .l2{font-weight:700;fill:#991b1b}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;border:2px solid;vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #e5e7eb;padding:3px 6px;text-align:left}
th{background:#f3f4f6} td{font-variant-numeric:tabular-nums;max-width:420px;overflow-wrap:anywhere}
.empty{color:#6b7280;font-size:13px}
"""


def render_html(data: dict[str, Any], graph: nx.MultiDiGraph | None = None) -> str:
    """The whole report as one HTML document (inline CSS and SVG, no scripts, no external resources)."""
    from fundtrace import __version__

    g = graph if graph is not None else case_graph(data)
    e = html.escape
    rule = data["rule"]
    report = data["report"]
    lost = sum(_f(r["amount_lost"]) for r in report)
    victim = ", ".join(sorted({_key(r["victim_bank"], r["victim_account"]) for r in report}))
    held = sum(_f(h[f"held_{rule}"]) for h in data["holdings"])
    to_freeze = sum(_f(r["amount_to_freeze"]) for r in data["freeze"])
    reported = max(r["reported_at"] for r in report)
    legend = "".join(
        f'<span><i style="background:{COLOURS[k][0]};border-color:{COLOURS[k][1]}"></i>{e(text)}</span>'
        for k, text in (
            ("victim", "victim"),
            ("freeze", "freeze (amount to freeze)"),
            ("stop_pay", "stop payment first (48 h)"),
            ("holds", "holds victim's money, not listed"),
            ("cash_out", "money left the system"),
            ("account", "passed through"),
        )
    )
    timeline = [
        {
            "time": f["ts"],
            "hop": f["hop"],
            "txn_id": f["txn_id"],
            "from": _key(f["src_bank"], f["src_account"]) if f["src_account"] is not None else "(victim, from report)",
            "to": _key(f["dst_bank"], f["dst_account"]),
            "amount": f["amount"],
            f"victim's ({rule})": f[f"taint_{rule}"],
            "channel": f["channel"],
            "stopped": (f["stop"] or "").replace("_", " "),
        }
        for f in data["flows"]
    ]
    holdings = [
        {
            "account": _key(h["bank"], h["account"]),
            "level": h["hop"],
            "balance": h["balance"],
            **{f"held {r}": h[f"held_{r}"] for r in RULES},
            "as of": h["as_of"],
        }
        for h in sorted(data["holdings"], key=lambda h: -_f(h[f"held_{rule}"]))
    ]
    freeze_cols = ["priority", "bank", "account", "holder_name", "hop_level", "traced_amount", "amount_to_freeze",
                   "balance", "stop_pay", "score", "band", "reason_codes", "evidence_txn_ids"]  # fmt: skip
    sections = [
        _table(
            "Accounts to hold or freeze", data["freeze"], freeze_cols, "No account of this case is on the freeze list."
        ),
        _table(
            "Freeze requests issued",
            data["requests"],
            [
                "request_id",
                "request_type",
                "bank",
                "account",
                "amount_to_freeze",
                "requested_at",
                "expires_at",
                "status",
            ],
            "No request issued yet (run `fundtrace freeze`).",
        ),
        _table("Timeline of the money", timeline, list(timeline[0]) if timeline else [], "No traced flows."),
        _table(
            "Where the victim's money is (all rules)", holdings, list(holdings[0]) if holdings else [], "No holdings."
        ),  # fmt: skip
        _table(
            "Evidence: alerts on this case's payments",
            data["evidence"],
            ["alert_id", "typology", "score", "summary", "case_txns"],
            "No alert's evidence includes this case's payments.",
        ),
        _table(
            "Reported payments",
            report,
            ["victim_bank", "victim_account", "reported_at", "amount_lost"],
            "No report rows.",
        ),
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fundtrace case {e(data["case_id"])}</title><style>{_CSS}</style></head>
<body>
<h1>Case {e(data["case_id"])}</h1>
<p class="facts">victim {e(victim)} · lost {_money(lost)} · reported {e(_cell(reported))} ·
still held ({e(rule)}) {_money(held)} in {sum(1 for h in data["holdings"] if _f(h[f"held_{rule}"]) >= 0.01)} accounts ·
to freeze {_money(to_freeze)} in {len(data["freeze"])} accounts</p>
<div class="legend">{legend}</div>
<div class="graph">
{_svg(g)}
</div>
{"".join(sections)}
<p class="empty">Written by fundtrace {e(__version__)}. Amounts of the victim's money follow the {e(rule)} rule;
edge labels show the payment amount and time (UTC); hover an edge or account for details.</p>
</body></html>
"""


def write_case(ws, case_id: str, out: Path, *, fmt: str = "html", rule: str | None = None) -> dict[str, Any]:
    """Write the case report for ``case_id`` to ``out`` as html or graphml; return counts."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    data = case_data(ws, case_id, rule)
    g = case_graph(data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "graphml":
        nx.write_graphml(g, out)
    else:
        out.write_text(render_html(data, g), encoding="utf-8")
    return {
        "case_id": case_id,
        "format": fmt,
        "path": str(out),
        "accounts": g.number_of_nodes(),
        "payments": g.number_of_edges(),
        "to_freeze": len(data["freeze"]),
        "rule": data["rule"],
    }
