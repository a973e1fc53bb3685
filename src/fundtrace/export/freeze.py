"""The freeze list for banks: one CSV row per account per request, spreadsheet-safe and deterministic.

:func:`issue` compares the latest decisions (``freeze_list``, written by :func:`fundtrace.score.run`) with
the requests already issued (``freeze_requests``) and emits only what changes at ``now``:

- ``STOP_PAY_48H``: a first-level account with fresh victims' money (at ``now`` too) and no active request;
- ``FREEZE``: any other listed account without an active request, or one whose stop-payment is still
  justified (the stop-payment is turned into a freeze);
- ``RENEW``: an active freeze that is still justified and expires within ``renew_before_days``, or whose
  justified amount grew; the new request replaces it with a new deadline;
- ``UNFREEZE``: an active request for an account no longer on the list.

An active request that is still justified, not near expiry and not grown is not repeated. Requests are
remembered in freeze_requests (unless ``record=False``). Same workspace and same ``now`` give the same
file byte for byte: request ids are derived from their content and rows are sorted by priority.

Spreadsheet safety (CSV injection): every text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with a single quote; amounts and scores are written as plain numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fundtrace.errors import InputError, UsageError
from fundtrace.score import RULES, ScoreSettings

__all__ = ["COLUMNS", "REQUEST_TYPES", "FreezeResult", "issue", "safe_cell", "write_csv"]

REQUEST_TYPES = ("STOP_PAY_48H", "FREEZE", "RENEW", "UNFREEZE")
COLUMNS = (
    "request_id", "request_type", "case_ids", "bank", "account", "holder_name", "hop_level", "traced_amount",
    "amount_to_freeze", "currency", "rule", "score", "reason_codes", "evidence_txn_ids", "evidence_sha256",
    "requested_at", "expires_at",
)  # fmt: skip
_NUMERIC = {"hop_level", "traced_amount", "amount_to_freeze", "score"}
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_TYPE_ORDER = {"STOP_PAY_48H": 0, "FREEZE": 1, "RENEW": 2, "UNFREEZE": 3}


@dataclass
class FreezeResult:
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    files: list[str]
    now: datetime


def safe_cell(value: Any) -> Any:
    """A text value a spreadsheet will not run as a formula: a leading =, +, -, @, tab or CR gets a quote."""
    if isinstance(value, str) and value.startswith(_DANGEROUS):
        return "'" + value
    return value


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return value


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(rows: list[dict[str, Any]], path: Path, *, bom: bool = False) -> None:
    """Write ``rows`` with :data:`COLUMNS`, text cells neutralised, numbers bare; optionally with a UTF-8 BOM."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        cells = []
        for name in COLUMNS:
            value = row.get(name)
            if value is None:
                cells.append("")
            elif name in _NUMERIC:
                cells.append(_number(value))
            elif isinstance(value, datetime):
                cells.append(_time(value))
            else:
                cells.append(safe_cell(str(value)))
        writer.writerow(cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8", newline="")


def _request_id(kind: str, bank: str, account: str, requested_at: datetime, evidence: str) -> str:
    text = "\x1f".join((kind, bank, account, _time(requested_at), evidence or ""))
    return "FR-" + hashlib.sha256(text.encode()).hexdigest()[:16].upper()


def _bank_file(bank: str) -> str:
    return "freeze_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", bank).strip("._") or "bank") + ".csv"


def issue(
    ws,
    *,
    now: datetime | str | None = None,
    rule: str | None = None,
    settings: ScoreSettings | None = None,
    out: Path | None = None,
    split_by_bank: Path | None = None,
    bom: bool = False,
    record: bool = True,
) -> FreezeResult:
    """Decide the requests to issue at ``now`` (default: the current UTC time) and write them out.

    ``rule``: when it differs from the rule of the latest freeze list, the scores and the list are decided
    again under it (at the same data time) first. ``record=False`` previews without remembering anything.
    """
    from fundtrace.score import _parse_time

    settings = settings or ScoreSettings()
    con = ws.con
    now_ts = _parse_time(now, "--now") or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    if not con.execute("SELECT count(*) FROM account_scores").fetchall()[0][0]:
        raise UsageError("no scores yet, so no freeze list", hint="run `fundtrace score` first")
    listed_rule = con.execute("SELECT any_value(rule) FROM freeze_list").fetchall()[0][0]
    if rule is not None:
        if rule not in RULES:
            raise UsageError(f"--rule must be one of {', '.join(RULES)}")
        if rule != (listed_rule or settings.rule):
            # decide the list again under that rule, at the same data time as the scores
            from fundtrace.score import run as rescore

            as_of = con.execute("SELECT max(as_of) FROM account_scores").fetchall()[0][0]
            rescore(ws, dataclasses.replace(settings, rule=rule), as_of=as_of)
    rule = rule or listed_rule or settings.rule
    current = con.sql("SELECT * FROM freeze_list ORDER BY priority").pl().to_dicts()
    active = con.sql("SELECT * FROM freeze_requests WHERE status = 'active' ORDER BY bank, account, requested_at").pl()
    previous: dict[tuple[str, str], dict] = {}
    for r in active.to_dicts():
        previous[(r["bank"], r["account"])] = r  # the latest active one per account

    renew_window = timedelta(days=settings.renew_before_days)
    rows: list[dict[str, Any]] = []
    ended: list[tuple[str, str]] = []  # (request_id, new status)
    seen: set[tuple[str, str]] = set()
    for item in current:
        key = (item["bank"], item["account"])
        seen.add(key)
        prev = previous.get(key)
        if prev is not None and prev["expires_at"] is not None and prev["expires_at"] <= now_ts:
            ended.append((prev["request_id"], "expired"))
            prev = None
        if prev is None:
            fresh = now_ts - item["last_tainted_at"] <= timedelta(hours=settings.fresh_hours)
            kind = "STOP_PAY_48H" if item["stop_pay"] and fresh else "FREEZE"
        elif prev["request_type"] == "STOP_PAY_48H":
            kind = "FREEZE"  # still justified: the stop-payment becomes a freeze
        elif prev["expires_at"] - now_ts <= renew_window or item["amount_to_freeze"] > prev["amount_to_freeze"]:
            kind = "RENEW"
        else:
            continue  # already covered: not repeated
        if prev is not None:
            ended.append((prev["request_id"], "superseded"))
        life = (
            timedelta(hours=settings.stop_pay_hours) if kind == "STOP_PAY_48H" else timedelta(days=settings.freeze_days)
        )
        rows.append(
            {
                "request_id": _request_id(kind, item["bank"], item["account"], now_ts, item["evidence_sha256"]),
                "request_type": kind,
                "case_ids": item["case_ids"],
                "bank": item["bank"],
                "account": item["account"],
                "holder_name": item["holder_name"],
                "hop_level": item["hop_level"],
                "traced_amount": item["traced_amount"],
                "amount_to_freeze": item["amount_to_freeze"],
                "currency": item["currency"],
                "rule": item["rule"],
                "score": item["score"],
                "reason_codes": item["reason_codes"],
                "evidence_txn_ids": item["evidence_txn_ids"],
                "evidence_sha256": item["evidence_sha256"],
                "requested_at": now_ts,
                "expires_at": now_ts + life,
                "_priority": item["priority"],
            }
        )
    holders = dict(
        ((b, a), n) for b, a, n in con.execute("SELECT bank, account, holder_name FROM accounts").fetchall()
    ) if previous else {}  # fmt: skip
    for key, prev in sorted(previous.items()):
        if key in seen:
            continue
        if prev["expires_at"] is not None and prev["expires_at"] <= now_ts:
            ended.append((prev["request_id"], "expired"))
            continue
        ended.append((prev["request_id"], "lifted"))
        rows.append(
            {
                "request_id": _request_id("UNFREEZE", key[0], key[1], now_ts, prev["evidence_sha256"]),
                "request_type": "UNFREEZE",
                "case_ids": prev["case_ids"],
                "bank": key[0],
                "account": key[1],
                "holder_name": holders.get(key),
                "hop_level": None,
                "traced_amount": Decimal("0"),
                "amount_to_freeze": Decimal("0"),
                "currency": None,
                "rule": prev["rule"],
                "score": None,
                "reason_codes": "NO_LONGER_JUSTIFIED",
                "evidence_txn_ids": "",
                "evidence_sha256": prev["evidence_sha256"],
                "requested_at": now_ts,
                "expires_at": None,
                "_priority": 1 << 30,
            }
        )
    rows.sort(key=lambda r: (_TYPE_ORDER[r["request_type"]] == 3, r["_priority"], r["bank"], r["account"]))
    for r in rows:
        r.pop("_priority")

    files = []
    if out is not None:
        write_csv(rows, Path(out), bom=bom)
        files.append(str(out))
    if split_by_bank is not None:
        directory = Path(split_by_bank)
        if directory.exists() and not directory.is_dir():
            raise InputError(f"--split-by-bank {directory}: exists and is not a directory")
        for bank in sorted({r["bank"] for r in rows}):
            path = directory / _bank_file(bank)
            write_csv([r for r in rows if r["bank"] == bank], path, bom=bom)
            files.append(str(path))
    if record and (rows or ended):
        with ws.transaction() as tx:
            for request_id, status in ended:
                tx.execute(
                    "UPDATE freeze_requests SET status = ? WHERE request_id = ?", [status, request_id]
                ).fetchall()
            for r in rows:
                tx.execute(
                    "INSERT OR REPLACE INTO freeze_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        r["request_id"],
                        r["request_type"],
                        r["bank"],
                        r["account"],
                        r["case_ids"],
                        r["amount_to_freeze"],
                        r["rule"],
                        r["requested_at"],
                        r["expires_at"],
                        "lifted" if r["request_type"] == "UNFREEZE" else "active",
                        r["evidence_sha256"],
                    ],  # fmt: skip
                ).fetchall()
    counts = {t: sum(1 for r in rows if r["request_type"] == t) for t in REQUEST_TYPES}
    return FreezeResult(rows=rows, counts=counts, files=files, now=now_ts)
