"""Bipartite layers: several payers each paying the same several payees within a window.

SQL keeps only candidate edges between accounts that passed money through near the window (a
pass-through episode that ended at most a dwell window before the window starts and started before it
ends), payers with two or more payees that each have ``layer_min`` or more such payers, trimmed twice,
hubs left out; then each window's connected components of that graph are taken and the dense ones
kept (at least 80 % of payer-payee pairs present). The components are taken on the engine
(:func:`fundtrace.detect.components.connected_components`) and only those that can be dense reach Python:
usually a handful of edges per window, but in a mesh of busy accounts (10 M random payments among 200 k
accounts) 0.9 M candidate edges in giant components, which cost 10 s and ~1 GB read into Python.

Judging members near the window, not by an episode anywhere in history, keeps an incremental run (which
reads only a context window) equal to a full one: a new payment changes only episodes that started at
most two dwell windows before it, so only windows within the family's span (two layering windows and two
dwell windows) can change.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from fundtrace import queries
from fundtrace.detect.base import (
    ALERT_SCHEMA,
    EVIDENCE_SCHEMA,
    MEMBER_SCHEMA,
    Detection,
    alert_id,
    name_accounts,
    params_for,
)
from fundtrace.detect.components import connected_components
from fundtrace.detect.settings import DetectSettings
from fundtrace.detect.sqlfamilies import _ensure_pass_through, release

__all__ = ["MIN_DENSITY", "detect_bipartite"]

MIN_DENSITY = 0.8
_EPOCH = datetime(1970, 1, 1)


def detect_bipartite(engine, settings: DetectSettings) -> Detection:
    """Dense payer x payee blocks (bipartite layering) per window; see the module docstring."""
    _ensure_pass_through(engine, settings)
    query = queries.get("detect_bipartite_candidates")
    steps = query.steps
    if engine.table_exists("ly_hub"):  # layering ran in this session: its hub buckets of every account
        engine.materialise("bp_hub", "SELECT acct, b FROM ly_hub")
        steps = [s for s in steps if s[0] not in ("bp_busy", "bp_hub")]
    engine.run_steps(steps, query.bind(params_for(query, settings)))
    connected_components(engine, "bp_graph", "bp_comp")
    blocks = queries.get("detect_bipartite_blocks")
    engine.run_steps(blocks.steps, blocks.bind({**params_for(blocks, settings), "min_density": MIN_DENSITY}))
    rows = engine.to_arrow("SELECT * FROM bp_block ORDER BY wb, src, dst").to_pylist()
    release(engine, "detect_bipartite_candidates")
    release(engine, "detect_bipartite_blocks")
    engine.execute("DROP TABLE IF EXISTS bp_comp")
    components: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        components[r["component"]].append(r)
    width_us = round(settings.layer_window_hours * 3600e6)
    alerts, members, evidence = [], [], []
    names = _names(engine, {r["src"] for r in rows} | {r["dst"] for r in rows})
    for sub in components.values():
        wb = sub[0]["wb"]
        payers = sorted({e["src"] for e in sub})
        payees = sorted({e["dst"] for e in sub})
        if set(payers) & set(payees) or len(payers) < settings.layer_min or len(payees) < 2:
            continue
        density = len(sub) / (len(payers) * len(payees))
        first = min(e["first_t"] for e in sub)
        if density < MIN_DENSITY or first // width_us != wb:  # anchored at the window's first bucket
            continue
        aid = alert_id("bipartite", ",".join(map(str, payers)), ",".join(map(str, payees)), wb)
        amount = sum(e["amt"] for e in sub)
        txns = sorted({t for e in sub for t in e["txns"]})
        alerts.append({
            "alert_id": aid, "typology": "bipartite",
            "score": min(1.0, density * len(payers) / (2 * settings.layer_min)),
            "start_ts": _EPOCH + timedelta(microseconds=first),
            "end_ts": _EPOCH + timedelta(microseconds=max(e["last_t"] for e in sub)),
            "amount": Decimal(str(round(amount, 4))), "n_accounts": len(payers) + len(payees), "n_txns": len(txns),
            "summary": f"{len(payers)} accounts each paid the same {len(payees)} accounts "
            f"({density:.0%} of the possible pairs), {amount:,.2f} in total.",
        })  # fmt: skip
        for acct, role in [(p, "source") for p in payers] + [(p, "sink") for p in payees]:
            bank, account = names.get(acct, ("", str(acct)))
            members.append({"alert_id": aid, "bank": bank, "account": account, "account_id": acct,
                            "role": role, "level": None})  # fmt: skip
        evidence += [{"alert_id": aid, "txn_id": t} for t in txns]
    return Detection(
        pa.Table.from_pylist(alerts, ALERT_SCHEMA),
        pa.Table.from_pylist(members, MEMBER_SCHEMA),
        pa.Table.from_pylist(evidence, EVIDENCE_SCHEMA),
    )


def _names(engine, ids: set[int]) -> dict[int, tuple[str, str]]:
    """(bank, account) per account id, through the run's name cache (``base.name_accounts``)."""
    if not ids:
        return {}
    engine.register("bp_ids", pa.table({"account_id": pa.array(sorted(ids), pa.uint64())}))
    name_accounts(engine, "bp_ids")
    rows = engine.to_arrow(
        "SELECT account_id, bank, account FROM dx_names WHERE account_id IN (SELECT account_id FROM bp_ids)"
    ).to_pylist()
    return {r["account_id"]: (r["bank"], r["account"]) for r in rows}
