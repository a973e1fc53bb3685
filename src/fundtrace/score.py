"""Scoring and decisions: account scores with reason codes, the freeze list, payment screening, returns.

- :func:`run` scores every transacting account in [0, 1] (``account_scores``) from typology alerts (a weight
  per typology times the alert's score), victims' money held and passed on (``trace_holdings``,
  ``trace_flows``), flow balance, account age and money received from accounts already frozen or under a stop-payment.
  Each score carries reason codes whose contributions add up to it exactly (``PASS_THROUGH 0.350;
  HOLDS_VICTIM_FUNDS 0.300``); an innocent account kind (merchant, business ...) keeps only a share of its
  score, shown as a negative ``INNOCENT_KIND`` reason. Bands: allow < review_at <= review < hold_at <= hold
  < freeze_at <= freeze. It then decides the freeze list (``freeze_list``): accounts in the hold band or
  above that hold victims' money, how much (never above what they hold under the rule, nor above the
  balance at the time of the holding), on which evidence, and whether a 48 h stop-payment comes first.
  It also flags phone cards (``flagged_phones``) for :func:`screen`. Everything is set-wise SQL
  (``queries/score/``); one run over 1 M transactions takes about a second.
- :func:`screen` scores a batch of incoming payments (a file, not loaded) against that state.
- :func:`returns` says who gets what back from an account's frozen money (tracing's returns rule).

A holding that is only a small share of the case money that reached the account (``min_held_share``) is
residue left after the money was passed on (the mule's cut, rounding); it is not frozen as victims' money,
the accounts downstream are.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fundtrace import queries
from fundtrace.detect.fit import common_kinds, common_note, without
from fundtrace.engine.duckdb import DuckDBEngine
from fundtrace.errors import InputError, UsageError
from fundtrace.schema import TRACE_RULES

__all__ = ["BANDS", "REASON_CODES", "ScoreSettings", "band_of", "returns", "run", "screen"]

log = logging.getLogger("fundtrace.score")

BANDS = ("allow", "review", "hold", "freeze")
RULES = TRACE_RULES
REASON_CODES = (
    "PASS_THROUGH", "CHAIN", "FAN_IN", "FAN_OUT", "SCATTER_GATHER", "GATHER_SCATTER", "STACKED", "BIPARTITE",
    "CYCLE", "STRUCTURING", "RING", "NEW_ACCOUNT_BURST", "DORMANT_ACTIVE", "HOLDS_VICTIM_FUNDS", "MULTI_CASE",
    "VICTIM_FUNDS_PASSED", "FLOW_BALANCE", "NEW_ACCOUNT", "FROM_FROZEN", "INNOCENT_KIND",
)  # fmt: skip
_SCREEN_COLUMNS = ("txn_id", "ts", "src_bank", "src_account", "dst_bank", "dst_account", "amount")


@dataclass(frozen=True)
class ScoreSettings:
    """Weights, thresholds and deadlines of scoring and decisions (config section ``score``).

    Fields named like a ``-- param:`` of ``queries/score/*.sql`` reach that query unchanged.
    """

    rule: str = "lifo"  # the tracing rule of held amounts and freezes (lifo matched the simulator's truth best)
    min_held_share: float = 0.1
    recent_days: int = 7
    new_days: int = 60
    holds_full: float = 5000.0
    flow_min: float = 10000.0
    flow_tolerance: float = 0.1
    innocent_kinds: tuple[str, ...] = ("business", "merchant", "utility", "government", "payroll", "atm")
    innocent_factor: float = 0.25  # an innocent kind stays below review_at on its own
    kind_share_max: float = 0.5  # a kind held by more of the accounts marks none innocent (as detect's)
    # per-typology weights (times the alert's score); card_farm_ring is w_ring
    w_pass_through: float = 0.2
    w_chain: float = 0.35
    w_fan_in: float = 0.1
    w_fan_out: float = 0.08
    w_scatter_gather: float = 0.45
    w_gather_scatter: float = 0.15
    w_stacked: float = 0.45
    w_bipartite: float = 0.3
    w_cycle: float = 0.08
    w_structuring: float = 0.35
    w_ring: float = 0.25
    w_new_account_burst: float = 0.15
    w_dormant_active: float = 0.05
    # money and behaviour
    w_holds: float = 0.35
    w_multi_case: float = 0.1
    w_passed: float = 0.25
    w_flow: float = 0.1
    w_new: float = 0.1
    w_from_frozen: float = 0.3
    # bands
    review_at: float = 0.3
    hold_at: float = 0.5
    freeze_at: float = 0.7
    # the freeze list
    min_score: float | None = None  # accounts listed from this score (default: hold_at)
    fresh_hours: float = 48.0
    currency: str = "CNY"
    stop_pay_hours: float = 48.0  # how long a stop-payment lasts
    freeze_days: float = 183.0  # how long a freeze lasts (six months)
    renew_before_days: float = 14.0  # a freeze this close to expiry is renewed on the next run
    # screening (payments)
    screen_review_at: float = 0.3
    screen_hold_at: float = 0.5
    payee_review_at: float = 0.3
    w_payee_frozen: float = 0.6
    w_payee_score: float = 0.6
    w_payee_ring: float = 0.2
    w_payee_holds: float = 0.3
    w_payee_new_pass: float = 0.25
    w_new_payee: float = 0.1
    w_large: float = 0.2
    w_scam_call: float = 0.35
    pass_share: float = 0.8
    large_factor: float = 3.0
    large_min: float = 5000.0
    min_history: int = 3
    call_hours: float = 24.0

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if self.rule not in RULES:
            problems.append(("rule", f"must be one of {', '.join(RULES)}"))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("w_") and not 0 <= value <= 1:
                problems.append((f.name, "must be between 0 and 1"))
        if not 0 < self.kind_share_max <= 1:
            problems.append(("kind_share_max", "must be greater than 0 and at most 1"))
        for name in ("min_held_share", "innocent_factor", "flow_tolerance", "pass_share"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append((name, "must be between 0 and 1"))
        if not 0 < self.review_at <= self.hold_at <= self.freeze_at <= 1:
            problems.append(("review_at", "need 0 < review_at <= hold_at <= freeze_at <= 1"))
        if not 0 < self.screen_review_at <= self.screen_hold_at <= 1:
            problems.append(("screen_review_at", "need 0 < screen_review_at <= screen_hold_at <= 1"))
        for name in ("holds_full", "stop_pay_hours", "freeze_days", "call_hours", "fresh_hours"):
            if getattr(self, name) <= 0:
                problems.append((name, "must be greater than 0"))
        for name in ("recent_days", "new_days"):
            if getattr(self, name) < 1:
                problems.append((name, "must be at least 1"))
        if self.renew_before_days < 0:
            problems.append(("renew_before_days", "must be >= 0"))
        return problems

    @property
    def list_min_score(self) -> float:
        return self.hold_at if self.min_score is None else self.min_score


def band_of(score: float, settings: ScoreSettings | None = None) -> str:
    """The outcome band of ``score``: allow, review, hold or freeze."""
    s = settings or ScoreSettings()
    if score >= s.freeze_at:
        return "freeze"
    if score >= s.hold_at:
        return "hold"
    if score >= s.review_at:
        return "review"
    return "allow"


def _check(settings: ScoreSettings | None) -> ScoreSettings:
    settings = settings or ScoreSettings()
    problems = settings.validate()
    if problems:
        raise UsageError("; ".join(f"score.{f}: {m}" for f, m in problems))
    return settings


def _params(query: queries.Query, settings: ScoreSettings, **extra: Any) -> dict[str, Any]:
    names = {p.name for p in query.params}
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k in names}
    if "innocent_kinds" in values:
        values["innocent_kinds"] = ",".join(settings.innocent_kinds)
    if query.name == "freeze_list":
        values["min_score"] = settings.list_min_score
    if query.name == "screen_payments":
        values["review_at"], values["hold_at"] = settings.screen_review_at, settings.screen_hold_at
    values.update({k: v for k, v in extra.items() if k in names})
    return query.bind(values)


def _parse_time(value: datetime | str | None, what: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None and value.tzinfo else value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} must be an ISO 8601 time, got {value!r}") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def data_time(ws) -> datetime | None:
    """The time of the newest transaction: what "now" means for the data, deterministically."""
    return ws.con.execute("SELECT max(ts) FROM transactions").fetchall()[0][0]


def run(ws, settings: ScoreSettings | None = None, *, as_of: datetime | str | None = None) -> dict:
    """Score every transacting account, rebuild the freeze list and the flagged phones; return counts.

    ``as_of``: the data time to score at (default: the newest transaction). Reads alerts and traces as
    they are; a stage that has not run contributes nothing. Replaces account_scores, freeze_list and
    flagged_phones in one transaction.
    """
    settings = _check(settings)
    started = time.perf_counter()
    con = ws.con
    as_of = _parse_time(as_of, "as_of") or data_time(ws)
    if as_of is None:
        raise InputError("no transactions to score", hint="load transactions first with `fundtrace load`")
    common = common_kinds(con, settings.innocent_kinds, settings.kind_share_max)  # as detect: see detect/fit.py
    settings = dataclasses.replace(settings, innocent_kinds=without(settings.innocent_kinds, common))
    engine = DuckDBEngine(con)
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    q = queries.get("account_scores")
    last = engine.run_steps(q.steps, _params(q, settings, as_of=as_of))
    fq = queries.get("freeze_list")
    with ws.transaction() as tx:
        tx.execute("DELETE FROM account_scores").fetchall()
        tx.execute(
            f"""
            INSERT INTO account_scores
            SELECT bank, account, account_id, score,
                   CASE WHEN score >= $freeze_at THEN 'freeze' WHEN score >= $hold_at THEN 'hold'
                        WHEN score >= $review_at THEN 'review' ELSE 'allow' END,
                   array_to_string(list_transform(reason_list,
                       lambda x: x.code || ' ' || printf('%.3f', x.contribution)), '; '),
                   list_transform(reason_list, lambda x: {{'code': x.code, 'contribution': x.contribution}}),
                   kind, phone, opened_at, first_ts, last_ts, n_in, n_out, in_amount, out_amount, max_out,
                   in_recent, out_recent, ring, held_victim, cases, frozen, $as_of, $scored_at
            FROM "{last}"
            """,
            {
                "freeze_at": settings.freeze_at,
                "hold_at": settings.hold_at,
                "review_at": settings.review_at,
                "as_of": as_of,
                "scored_at": scored_at,
            },
        ).fetchall()
        final = engine.run_steps(fq.steps, _params(fq, settings, as_of=as_of))
        tx.execute("DELETE FROM freeze_list").fetchall()
        tx.execute(f'INSERT INTO freeze_list SELECT * FROM "{final}" ORDER BY priority').fetchall()
        tx.execute("DELETE FROM flagged_phones").fetchall()
        tx.execute(
            """
            INSERT INTO flagged_phones
            SELECT DISTINCT c.caller, 'SCAM_CALLER'
            FROM (SELECT r.victim_bank, r.victim_account, coalesce(r.paid_at, t.ts) AS paid_at FROM reports r
                  LEFT JOIN transactions t ON t.txn_id = r.txn_id) r
            JOIN accounts v ON v.bank = r.victim_bank AND v.account = r.victim_account
            JOIN calls c ON c.callee = v.phone
            WHERE c.ts <= r.paid_at AND c.ts >= r.paid_at - to_seconds(CAST($hours * 3600 AS BIGINT))
            UNION
            SELECT DISTINCT l.value, 'FLAGGED_ACCOUNT' FROM links l
            JOIN account_scores s ON s.account_id = l.account_id
            WHERE l.kind = 'phone_card' AND s.band IN ('hold', 'freeze')
            UNION
            SELECT DISTINCT phone, 'FLAGGED_ACCOUNT' FROM account_scores
            WHERE phone IS NOT NULL AND band IN ('hold', 'freeze')
            """,
            {"hours": settings.call_hours},
        ).fetchall()
    for name in ("sc_frozen", "sc_stats", "sc_typ", "sc_passed", "sc_raw", "sc_scaled", "sc_final", "fl_groups"):
        con.execute(f'DROP TABLE IF EXISTS temp."{name}"').fetchall()
    bands = dict(con.execute("SELECT band, count(*) FROM account_scores GROUP BY 1").fetchall())
    listed, stop_pay, amount = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE stop_pay), coalesce(sum(amount_to_freeze), 0) FROM freeze_list"
    ).fetchall()[0]
    return {
        "as_of": as_of.isoformat(sep=" "),
        "accounts_scored": sum(bands.values()),
        **{f"band_{b}": int(bands.get(b, 0)) for b in BANDS},
        "freeze_list": listed,
        "stop_payments": stop_pay,
        "amount_to_freeze": float(amount),
        "rule": settings.rule,
        "notes": [common_note(common, settings.kind_share_max)] if common else [],
        "seconds": round(time.perf_counter() - started, 3),
    }


# --- screening incoming payments ------------------------------------------------------------------------


def _read_batch(con, path: Path) -> None:
    """Make ``path`` (CSV or Parquet, native transaction columns) queryable as temp view _screen_batch."""
    if not path.exists():
        raise InputError(f"no such file: {path}")
    name = path.name.lower()
    source = (
        f"read_parquet('{_sql_path(path)}')"
        if name.endswith((".parquet", ".pq"))
        else f"read_csv('{_sql_path(path)}', all_varchar = true, header = true)"
    )
    try:
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    except Exception as exc:  # DuckDB's reader errors: one line for people
        raise InputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in _SCREEN_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    opt = {c: (c if c in columns else "NULL") for c in ("currency", "channel")}
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _screen_batch AS
            SELECT CAST(txn_id AS VARCHAR) AS txn_id, CAST(ts AS TIMESTAMP) AS ts,
                   CAST(src_bank AS VARCHAR) AS src_bank, CAST(src_account AS VARCHAR) AS src_account,
                   CAST(dst_bank AS VARCHAR) AS dst_bank, CAST(dst_account AS VARCHAR) AS dst_account,
                   CAST(amount AS DECIMAL(18, 4)) AS amount, CAST({opt["currency"]} AS VARCHAR) AS currency,
                   CAST({opt["channel"]} AS VARCHAR) AS channel
            FROM {source}
            """
        ).fetchall()
    except Exception as exc:
        raise InputError(f"{path}: {str(exc).splitlines()[0]}", hint="native transaction columns expected") from None
    bad = con.execute(
        "SELECT count(*) FROM _screen_batch WHERE txn_id IS NULL OR ts IS NULL OR amount IS NULL OR amount <= 0 "
        "OR src_bank IS NULL OR src_account IS NULL OR dst_bank IS NULL OR dst_account IS NULL"
    ).fetchall()[0][0]
    if bad:
        raise InputError(f"{path}: {bad:,} payments lack an id, time, accounts or a positive amount")


def screen(
    ws, path: str | Path, settings: ScoreSettings | None = None, *, store: bool = True, out: str | Path | None = None
) -> dict:
    """Score the payments in ``path`` against the workspace state; return counts, timings and the decisions.

    The file is read, not loaded. Needs :func:`run` to have scored the accounts. With ``store`` the
    decisions are appended to payment_decisions (earlier decisions on the same txn_id are replaced);
    ``out`` writes them to a CSV or Parquet file (by extension) with DuckDB.
    """
    settings = _check(settings)
    path = Path(path)
    con = ws.con
    if not con.execute("SELECT count(*) FROM account_scores").fetchall()[0][0]:
        raise UsageError("no account scores yet", hint="run `fundtrace score` first")
    started = time.perf_counter()
    _read_batch(con, path)
    read_s = time.perf_counter() - started
    q = queries.get("screen_payments")
    last = DuckDBEngine(con).run_steps(q.steps, _params(q, settings))
    scored_s = time.perf_counter() - started
    if store:
        with ws.transaction() as tx:
            tx.execute(f'DELETE FROM payment_decisions WHERE txn_id IN (SELECT txn_id FROM "{last}")').fetchall()
            tx.execute(
                f"""INSERT INTO payment_decisions SELECT txn_id, ts, src_bank, src_account, dst_bank, dst_account,
                    amount, currency, decision, score, reasons, $source, $now FROM "{last}" """,
                {"source": str(path), "now": datetime.now(UTC).replace(tzinfo=None)},
            ).fetchall()
    if out is not None:
        out = Path(out)
        fmt = "FORMAT PARQUET" if out.suffix.lower() in (".parquet", ".pq") else "FORMAT CSV, HEADER"
        con.execute(f"COPY (SELECT * FROM \"{last}\" ORDER BY txn_id) TO '{_sql_path(out)}' ({fmt})").fetchall()
    counts = dict(con.execute(f'SELECT decision, count(*) FROM "{last}" GROUP BY 1').fetchall())
    rows = con.sql(f'SELECT * FROM "{last}" ORDER BY score DESC, txn_id').pl()
    for name in ("sp_batch", "sp_known_pairs", "sp_called", "sp_raw", "sp_scored", "_screen_batch"):
        con.execute(f'DROP TABLE IF EXISTS temp."{name}"').fetchall()
    return {
        "payments": rows.height,
        "allow": int(counts.get("allow", 0)),
        "review": int(counts.get("review", 0)),
        "hold": int(counts.get("hold", 0)),
        "read_seconds": round(read_s, 4),
        "score_seconds": round(scored_s - read_s, 4),
        "seconds": round(time.perf_counter() - started, 4),
        "decisions": rows,
    }


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


# --- returns ---------------------------------------------------------------------------------------------


def returns(ws, case_id: str, *, rule: str | None = None, now: datetime | str | None = None) -> dict:
    """Who gets what back from the frozen money of the accounts holding ``case_id``'s money.

    For every account on the freeze list holding this case's money, its amount_to_freeze is split among all
    the cases it holds with :func:`fundtrace.trace.allocate_returns` (direct return when the victims' deposits
    can be told apart, pro rata by loss otherwise). When pro rata applies, every victim sharing that account
    goes on the 30-day public notice list (notice_until = now + 30 days).
    """
    from fundtrace.trace import Claim, allocate_returns

    con = ws.con
    if not con.execute("SELECT count(*) FROM reports WHERE case_id = ?", [case_id]).fetchall()[0][0]:
        raise InputError(f"unknown case id: {case_id}", hint="see the reports table")
    listed = con.execute("SELECT any_value(rule) FROM freeze_list").fetchall()[0][0]
    rule = rule or listed or ScoreSettings().rule
    if rule not in RULES:
        raise UsageError(f"--rule must be one of {', '.join(RULES)}")
    now_ts = _parse_time(now, "--now") or data_time(ws) or datetime.now(UTC).replace(tzinfo=None)
    accounts = con.execute(
        """
        SELECT f.bank, f.account, f.amount_to_freeze FROM freeze_list f
        WHERE EXISTS (SELECT 1 FROM trace_holdings h WHERE h.case_id = ? AND h.bank = f.bank AND h.account = f.account)
        ORDER BY f.bank, f.account
        """,
        [case_id],
    ).fetchall()
    rows, notice = [], []
    for bank, account, frozen in accounts:
        claims_rows = con.execute(
            f"""
            SELECT h.case_id, (SELECT sum(amount_lost) FROM reports r WHERE r.case_id = h.case_id) AS loss,
                   sum(h.held_{rule}) AS held, min(h.first_tainted_at), max(h.last_tainted_at),
                   (SELECT any_value(victim_bank) FROM reports r WHERE r.case_id = h.case_id),
                   (SELECT any_value(victim_account) FROM reports r WHERE r.case_id = h.case_id)
            FROM trace_holdings h WHERE h.bank = ? AND h.account = ? GROUP BY h.case_id ORDER BY h.case_id
            """,
            [bank, account],
        ).fetchall()
        claims = [Claim(c, float(loss or 0), float(held or 0), f, la) for c, loss, held, f, la, _, _ in claims_rows]
        present = sorted((c for c in claims if c.held > 1e-9 and c.loss > 0), key=lambda c: c.first_at or now_ts)
        separable = len(present) <= 1 or (
            all(c.first_at is not None and c.last_at is not None for c in present)
            and all(present[k].last_at < present[k + 1].first_at for k in range(len(present) - 1))
        )
        shares = allocate_returns(float(frozen), claims)
        method = "direct" if separable else "pro_rata"
        victims = {c: (vb, va) for c, _, _, _, _, vb, va in claims_rows}
        rows.append(
            {
                "bank": bank,
                "account": account,
                "frozen": float(frozen),
                "method": method,
                "victims_sharing": len(present),
                "returned_to_case": shares.get(case_id, 0.0),
            }
        )
        if method == "pro_rata":
            until = now_ts + timedelta(days=30)
            for c in present:
                vb, va = victims[c.case_id]
                notice.append(
                    {
                        "bank": bank,
                        "account": account,
                        "case_id": c.case_id,
                        "victim_bank": vb,
                        "victim_account": va,
                        "loss": c.loss,
                        "share": shares.get(c.case_id, 0.0),
                        "notice_until": until,
                    }
                )
    return {
        "case_id": case_id,
        "rule": rule,
        "accounts": rows,
        "total_returned": round(sum(r["returned_to_case"] for r in rows), 2),
        "public_notice": notice,
    }
