"""Headline figures, as an anti-fraud centre reports them.

:func:`headline` reads the workspace's inputs and results (whichever stages have run) and returns one
flat dict: reports and victims, money reported lost, money traced, money held (victims' money still in
accounts, under the freeze rule) and frozen (the freeze list's amounts), each also as a share of losses,
payments screened and held, accounts frozen and stopped, rings found, banks involved.
A figure whose stage has not run is ``None``, never 0.
"""

from __future__ import annotations

from typing import Any

__all__ = ["headline"]


def _one(con, sql: str) -> Any:
    return con.execute(sql).fetchall()[0]


def _share(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def headline(ws) -> dict[str, Any]:
    """The headline figures of the workspace (see the module doc)."""
    con = ws.con
    cases, victims, lost, reports = _one(
        con,
        "SELECT count(DISTINCT case_id), count(DISTINCT (victim_bank, victim_account)), sum(amount_lost), count(*) "
        "FROM reports",
    )
    lost = float(lost) if lost is not None else None
    out: dict[str, Any] = {
        "reports": reports,
        "cases": cases,
        "victims": victims,
        "money_reported_lost": lost,
        "transactions": _one(con, "SELECT count(*) FROM transactions")[0],
    }
    traced = _one(con, "SELECT count(DISTINCT case_id), sum(taint_haircut) FILTER (WHERE hop = 0) FROM trace_flows")
    rule = _one(con, "SELECT any_value(rule) FROM freeze_list")[0]
    out["cases_traced"] = traced[0] if traced[0] else None
    out["money_traced"] = float(traced[1]) if traced[1] is not None else None
    held = None
    if traced[0]:
        col = f"held_{rule or 'lifo'}"
        held = float(_one(con, f"SELECT coalesce(sum({col}), 0) FROM trace_holdings")[0])
    out["money_held"] = held
    out["money_held_share"] = _share(held, lost)
    scored = _one(con, "SELECT count(*) FROM account_scores")[0]
    frozen_accounts, to_freeze, stops = _one(
        con, "SELECT count(*), sum(amount_to_freeze), count(*) FILTER (WHERE stop_pay) FROM freeze_list"
    )
    out["accounts_scored"] = scored or None
    out["accounts_to_freeze"] = frozen_accounts if scored else None
    out["stop_payments"] = stops if scored else None
    out["money_to_freeze"] = float(to_freeze or 0) if scored else None
    out["money_to_freeze_share"] = _share(out["money_to_freeze"], lost)
    out["freeze_rule"] = rule
    active, issued_amount = _one(
        con,
        "SELECT count(DISTINCT (bank, account)), sum(amount_to_freeze) FROM freeze_requests "
        "WHERE status = 'active' AND request_type <> 'UNFREEZE'",
    )
    issued = _one(con, "SELECT count(*) FROM freeze_requests")[0]
    out["freeze_requests_issued"] = issued if issued else None
    out["accounts_frozen"] = active if issued else None
    out["money_frozen"] = float(issued_amount or 0) if issued else None
    out["money_frozen_share"] = _share(out["money_frozen"], lost)
    screened, held_payments, held_amount = _one(
        con,
        "SELECT count(*), count(*) FILTER (WHERE decision = 'hold'), sum(amount) FILTER (WHERE decision = 'hold') "
        "FROM payment_decisions",
    )
    out["payments_screened"] = screened or None
    out["payments_held"] = held_payments if screened else None
    out["money_in_held_payments"] = float(held_amount or 0) if screened else None
    alerts = _one(con, "SELECT count(*), count(*) FILTER (WHERE typology = 'card_farm_ring') FROM alerts")
    out["alerts"] = alerts[0] or None
    out["rings_found"] = alerts[1] if alerts[0] else None
    banks = _one(
        con,
        "SELECT count(DISTINCT bank) FROM (SELECT bank FROM trace_holdings UNION ALL SELECT bank FROM freeze_list "
        "UNION ALL SELECT dst_bank FROM payment_decisions WHERE decision = 'hold')",
    )[0]
    out["banks_involved"] = banks or None
    return out
