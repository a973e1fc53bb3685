"""Detection: run the detectors over the workspace and store their alerts.

"SQL for the wide, NetworkX for the deep": every detector that touches all transactions is a query
file under ``queries/detect/`` run through the engine; Python only handles the few candidates.

:func:`run` is incremental by default. Every windowed detector anchors an alert at its earliest
evidence payment (``start_ts``) and an alert depends only on payments in a bounded span after that,
bucketed on fixed boundaries. After new transaction batches, payments from ``since`` (the earliest
new payment time) on can only change alerts starting at or after ``since - span`` (floored to the
detector's bucket, the family's *cutoff*), so only those are deleted and recomputed, each family
reading payments from its own cutoff less its ``lookback``. Families whose alert is about one
account and depends only on that account's own payments (``key_role``: fans, structuring,
new-account burst, dormant then active) go further: they read only the payments of the accounts the
new batches touched and replace only those accounts' alerts. Card-farm rings depend on links and
accounts (the structure) and on their members' payments (times, amounts, evidence): they are
recomputed when a links batch arrived or a new payment touches a stored ring's member, and kept
otherwise. Corroboration needs every account's incoming money over its whole history; that total
is a stored per-account aggregate (``detect_in_totals``) brought up to date from the new batches.
The stored result equals a full rerun (``tests/test_detect_incremental.py`` checks it). A new
accounts batch, a new payment earlier than all stored ones, or changed settings force a full run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from fundtrace import queries
from fundtrace.detect.base import Detection, concat, params_for
from fundtrace.detect.settings import DetectSettings
from fundtrace.detect.sqlfamilies import (
    detect_chains,
    detect_cycles,
    detect_dormant_active,
    detect_fans,
    detect_layering,
    detect_new_account_burst,
    detect_pass_through,
    detect_structuring,
    prepare,
    run_query,
)
from fundtrace.engine import DuckDBEngine
from fundtrace.errors import UsageError

__all__ = ["TYPOLOGIES", "DetectSettings", "run"]

log = logging.getLogger("fundtrace.detect")

TYPOLOGIES = (
    "pass_through", "chain", "fan_in", "fan_out", "scatter_gather", "gather_scatter", "stacked", "bipartite",
    "cycle", "structuring", "card_farm_ring", "new_account_burst", "dormant_active",
)  # fmt: skip
_SCRATCH = ("dt_", "pt_", "ch_", "fan_", "ly_", "sg_", "gs_", "bp_", "cy_", "st_", "nb_", "da_", "dx_", "dc_", "cs_")


@dataclass(frozen=True)
class Family:
    """Detectors run together; ``bucket`` and ``span`` (hours) bound what new payments can change.

    ``span`` covers everything an alert reads after its start and before it (pass-through episodes
    that fans, cycles and bipartite layers consult may begin up to two dwell windows earlier). The
    episodes they consult are local: a bipartite window counts those that ended at most a dwell window
    before it starts and began before it ends; a cycle's payment those that ended at most a dwell window
    before it and began at most a cycle window after it. Widening those rules needs a wider span.
    ``lookback`` (hours) is how far before its cutoff the family must read payments for the alerts
    at or after the cutoff to come out exact; None: three dwell windows before the earliest cutoff
    of all such families (the pass-through episodes the family builds on, shared by all of them).
    ``key_role``: the role of the one account an alert is about, when the alert depends only on that
    account's own payments (and the account registry): an incremental run then reads only the
    payments of the accounts new payments touched and replaces only their alerts.
    """

    name: str
    typologies: tuple[str, ...]
    detect: Callable[..., Detection]
    bucket: Callable[[DetectSettings], float] | None  # None: not windowed (rings)
    span: Callable[[DetectSettings], float] | None = None
    lookback: Callable[[DetectSettings], float] | None = None
    key_role: str | None = None


def _rings(engine, settings, ring_settings=None) -> Detection:
    from fundtrace.detect.rings import detect_rings

    return detect_rings(engine, ring_settings)


def _bipartite(engine, settings) -> Detection:
    from fundtrace.detect.bipartite import detect_bipartite

    return detect_bipartite(engine, settings)


FAMILIES = (
    Family("pass_through", ("pass_through",), detect_pass_through, lambda s: s.dwell_hours,
           lambda s: 2 * s.dwell_hours),
    Family("chain", ("chain", "stacked"), detect_chains, lambda s: s.dwell_hours,
           lambda s: (s.max_hops + 1) * s.dwell_hours),
    Family("fans", ("fan_in", "fan_out"), detect_fans, lambda s: s.fan_window_hours,
           lambda s: 2 * s.fan_window_hours + 2 * s.dwell_hours, key_role="hub"),
    Family("layering", ("scatter_gather", "gather_scatter"), detect_layering, lambda s: s.layer_window_hours,
           lambda s: 3 * s.layer_window_hours, lambda s: 0.0),
    Family("bipartite", ("bipartite",), _bipartite, lambda s: s.layer_window_hours,
           lambda s: 2 * s.layer_window_hours + 2 * s.dwell_hours),
    Family("cycle", ("cycle",), detect_cycles, lambda s: s.cycle_window_hours,
           lambda s: 2 * s.cycle_window_hours + 2 * s.dwell_hours),
    Family("structuring", ("structuring",), detect_structuring, lambda s: s.structuring_window_hours,
           lambda s: 2 * s.structuring_window_hours, lambda s: 0.0, key_role="hub"),
    Family("new_account_burst", ("new_account_burst",), detect_new_account_burst, lambda s: 1.0,
           lambda s: s.burst_hours + 1, lambda s: s.burst_hours, key_role="hub"),
    Family("dormant_active", ("dormant_active",), detect_dormant_active, lambda s: 24.0,
           lambda s: s.active_hours + 24, lambda s: 24.0, key_role="hub"),
    Family("card_farm_ring", ("card_farm_ring",), _rings, None),
)  # fmt: skip
# A family narrowed to its own window or to the touched accounts runs after those reading the shared
# window, so that what they share (pass-through hits, layering degrees) is built from all of it.


@dataclass(frozen=True)
class _Plan:
    mode: str  # full | incremental | up_to_date
    since: datetime | None  # earliest new payment (None: no new payments)
    max_batch: int
    prev_batch: int | None  # payments of later batches are new (None: unknown, e.g. an explicit since)
    links: bool  # links arrived since the last run (rings are recomputed)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _floor(ts: datetime, hours: float) -> datetime:
    """``ts`` floored to a multiple of ``hours`` since the Unix epoch (the SQL buckets' boundaries)."""
    width = round(hours * 3600e6)
    us = (ts - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    return datetime(1970, 1, 1) + timedelta(microseconds=(us // width) * width)


def _drop_scratch(con, keep: tuple[str, ...] = ()) -> None:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    for (name,) in rows:
        if name.startswith(_SCRATCH) and not (keep and name.startswith(keep)):
            con.execute(f'DROP TABLE IF EXISTS temp."{name}"').fetchall()


def _settings_key(settings: DetectSettings, ring_settings=None) -> str:
    from fundtrace.detect.rings import RingSettings

    rings = dataclasses.asdict(ring_settings or RingSettings())
    return json.dumps({"detect": dataclasses.asdict(settings), "rings": rings}, sort_keys=True, default=str)


def _one(con, sql: str, params=None):
    return con.execute(sql, params or []).fetchall()[0][0]


def _plan(ws, key: str, typologies: list[str], since: datetime | None, full: bool) -> _Plan:
    """Decide full or incremental, from when, and which batches are new."""
    con = ws.con
    max_batch = _one(con, "SELECT coalesce(max(batch_id), 0) FROM batches")
    if full:
        return _Plan("full", None, max_batch, None, True)
    if since is not None:
        return _Plan("incremental", since, max_batch, None, True)
    last = con.execute(
        "SELECT max_batch_id, typologies, settings FROM detect_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchall()
    if not last or last[0][2] != key or not set(typologies) <= set(last[0][1].split(",")):
        return _Plan("full", None, max_batch, None, True)
    prev = last[0][0] or 0
    kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM batches WHERE batch_id > ?", [prev]).fetchall()}
    if "accounts" in kinds:  # kinds, holders, opening dates: every detector reads them
        return _Plan("full", None, max_batch, None, True)
    first_new = _one(con, "SELECT min(ts) FROM transactions WHERE batch_id > ?", [prev])
    if first_new is None:
        if "links" in kinds:
            return _Plan("incremental", None, max_batch, prev, True)
        return _Plan("up_to_date", None, max_batch, prev, False)
    first_old = _one(con, "SELECT min(ts) FROM transactions WHERE batch_id <= ?", [prev])
    if first_old is None or first_new < first_old:  # "opened while the workspace was watching" moves
        return _Plan("full", None, max_batch, None, True)
    return _Plan("incremental", first_new, max_batch, prev, "links" in kinds)


def run(
    ws,
    settings: DetectSettings | None = None,
    *,
    only: Iterable[str] | None = None,
    since: datetime | None = None,
    full: bool = False,
    debug_sql: bool = False,
    report: Callable[[str], None] | None = None,
    ring_settings=None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the detectors and store their alerts in ``alerts``, ``alert_members``, ``alert_evidence``.

    Parameters
    ----------
    ws : Workspace
        An open, writable workspace.
    settings : DetectSettings, optional
        Windows and thresholds; the defaults when None.
    only : iterable of str, optional
        Typologies to run (see :data:`TYPOLOGIES`); all when None. Others' stored alerts are kept.
    since : datetime, optional
        Recompute only what payments at or after this time can change. By default that time is the
        earliest payment of the transaction batches loaded since the last run (nothing when none).
    full : bool
        Recompute everything, whatever was stored before.

    Returns
    -------
    dict
        ``mode`` (full | incremental | up_to_date), ``since``, ``alerts`` per typology (stored, after
        the run), ``recomputed`` per typology, ``seconds``.
    """
    started = time.perf_counter()
    settings = settings or DetectSettings()
    problems = settings.validate()
    if problems:
        from fundtrace.errors import ConfigError

        raise ConfigError([(f"detect.{f}", m) for f, m in problems])
    wanted = list(only) if only else list(TYPOLOGIES)
    unknown = [t for t in wanted if t not in TYPOLOGIES]
    if unknown:
        raise UsageError(f"unknown typology {', '.join(unknown)} (known: {', '.join(TYPOLOGIES)})")
    key = _settings_key(settings, ring_settings)
    plan = _plan(ws, key, wanted, since, full)
    step = progress or (lambda s: None)
    engine = DuckDBEngine(ws.con, debug_sql=debug_sql, report=report)
    _drop_scratch(ws.con)
    _ensure_raw(ws.con)
    old_limit = ws.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    ws.con.execute(f"SET memory_limit = '{settings.memory_limit}'")  # validated: digits and a unit
    timings: dict[str, float] = {}
    results: list[tuple[Family, datetime | None, bool, Detection]] = []
    try:
        if plan.mode != "up_to_date":
            results = _detect(ws, engine, settings, plan, wanted, ring_settings, step, timings)
            pt_cutoff = None
            if plan.mode == "incremental" and plan.since is not None:
                pt_cutoff = _floor(plan.since - timedelta(hours=2 * settings.dwell_hours), settings.dwell_hours)
            t0 = time.perf_counter()
            _store(ws, engine, settings, plan, results, wanted, pt_cutoff, timings)
            timings["store"] = time.perf_counter() - t0 - timings.get("publish", 0.0)
    finally:
        _drop_scratch(ws.con)
        ws.con.execute(f"SET memory_limit = '{old_limit}'")
    recomputed: dict[str, int] = {}
    for fam, _, _, det in results:
        for t in fam.typologies:
            if t in wanted:
                recomputed[t] = int(pc.sum(pc.equal(det.alerts["typology"], t)).as_py() or 0)
    counts = dict(ws.con.execute("SELECT typology, count(*) FROM alerts GROUP BY 1 ORDER BY 1").fetchall())
    total = sum(counts.values())
    with ws.transaction() as con:
        run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM detect_runs").fetchall()[0][0]
        con.execute(
            "INSERT INTO detect_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, _now(), plan.mode, plan.since, plan.max_batch, ",".join(wanted), key, total],
        ).fetchall()
    return {
        "mode": plan.mode,
        "since": plan.since.isoformat(sep=" ") if plan.since else None,
        "alerts": counts,
        "recomputed": recomputed,
        "seconds": round(time.perf_counter() - started, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _detect(ws, engine, settings: DetectSettings, plan: _Plan, wanted, ring_settings, step, timings) -> list:
    """Run the families the plan needs; return (family, cutoff, by touched accounts, detection) per family.

    A family's cutoff is None when it is recomputed whole. "By touched accounts": only alerts about
    the accounts new payments touched were recomputed (``dx_touched``).
    """
    con = ws.con
    incremental = plan.mode == "incremental"
    families = [f for f in FAMILIES if set(f.typologies) & set(wanted)]
    if incremental and plan.since is None:  # only links arrived: nothing windowed can change
        families = [f for f in families if f.bucket is None]
    touched = incremental and plan.prev_batch is not None and plan.since is not None
    if touched:
        engine.materialise(
            "dx_touched",
            "SELECT src_id AS account_id FROM transactions WHERE batch_id > $b "
            "UNION SELECT dst_id FROM transactions WHERE batch_id > $b",
            {"b": plan.prev_batch},
        )
    if incremental and not plan.links and any(f.bucket is None for f in families):
        # Rings change with links (recomputed whole) or with their members' payments (times, evidence).
        hit = _one(
            con,
            "SELECT count(*) FROM detect_raw_members m JOIN detect_raw_alerts a USING (alert_id) "
            "WHERE a.typology = 'card_farm_ring' AND m.account_id IN (SELECT account_id FROM dx_touched)"
            if touched
            else "SELECT 1",
        )
        if not hit:
            families = [f for f in families if f.bucket is not None]
    cutoffs: dict[str, datetime | None] = {}
    ctxs: dict[str, datetime | None] = {}
    for fam in families:
        if incremental and fam.bucket is not None:
            cutoffs[fam.name] = _floor(plan.since - timedelta(hours=fam.span(settings)), fam.bucket(settings))
        else:
            cutoffs[fam.name] = None
    windowed = [f for f in families if f.bucket is not None]
    # Families building on pass-through episodes read them from up to two dwell windows before their cutoff;
    # episodes are bucketed on dwell boundaries, so that context starts on one, a further dwell earlier. The
    # episodes themselves (pt_hits) are built once, from the earliest of these contexts.
    shared_ctx = None
    if incremental and windowed:
        for f in windowed:
            back = 3 * settings.dwell_hours if f.lookback is None else f.lookback(settings)
            ctxs[f.name] = _floor(cutoffs[f.name] - timedelta(hours=back), settings.dwell_hours)
        # The stored pass-through profile is replaced from pass_through's cutoff whichever families run.
        pt_cutoff = _floor(plan.since - timedelta(hours=2 * settings.dwell_hours), settings.dwell_hours)
        pt_ctx = _floor(pt_cutoff - timedelta(hours=3 * settings.dwell_hours), settings.dwell_hours)
        shared_ctx = min([ctxs[f.name] for f in windowed if f.lookback is None] + [pt_ctx])
        ctxs["(pt_hits)"] = pt_ctx
    ctx_from = min(ctxs.values()) if ctxs else None
    out = []
    if windowed:
        step("preparing transactions")
        t0 = time.perf_counter()
        prepare(engine, settings, ctx_from)
        timings["prepare"] = time.perf_counter() - t0
    # Families on the shared window first, then those narrowed to their own window or the touched accounts.
    narrowed = [
        f
        for f in windowed
        if incremental
        and f.name != "pass_through"  # it builds pt_hits, which the others need from the whole shared window
        and (f.lookback is not None or ctxs[f.name] != shared_ctx or (touched and f.key_role))
    ]
    order = [f for f in windowed if f not in narrowed] + narrowed + [f for f in families if f.bucket is None]
    wide = "dt_tx"
    for fam in order:
        step(fam.name)
        t0 = time.perf_counter()
        by_account = touched and fam.key_role is not None
        if fam in narrowed:
            if wide == "dt_tx":
                if not engine.table_exists("pt_hits"):  # what the shared families build on, from all of it
                    run_query(engine, "detect_pass_through", settings)
                con.execute("ALTER TABLE temp.dt_tx RENAME TO dt_wide").fetchall()
                wide = "dt_wide"
            source = "dt_wide"
            if by_account:  # the touched accounts' payments, taken from the shared window once
                source = "dt_wide_touched"
                if not engine.table_exists(source):
                    engine.materialise(
                        source,
                        "SELECT * FROM dt_wide WHERE t >= epoch_us($c) AND (src_id IN (SELECT account_id FROM "
                        "dx_touched) OR dst_id IN (SELECT account_id FROM dx_touched))",
                        {"c": min(ctxs[f.name] for f in narrowed if f.key_role)},
                    )
            _drop_scratch(con, keep=("dt_wide", "pt_", "dx_"))  # nothing derived from another window is reused
            engine.materialise("dt_tx", f"SELECT * FROM {source} WHERE t >= epoch_us($c)", {"c": ctxs[fam.name]})
            engine.ctx_from = ctxs[fam.name]
        if fam.name == "card_farm_ring":
            try:
                det = _rings(engine, settings, ring_settings)
            except ImportError:
                log.warning("card-farm ring detector not installed (fundtrace.detect.rings); skipped")
                continue
        else:
            det = fam.detect(engine, settings)
        det = _keep(engine, det, wanted, cutoffs[fam.name], fam.key_role if by_account else None)
        timings[fam.name] = time.perf_counter() - t0
        log.info("%s: %d alerts in %.2fs", fam.name, det.alerts.num_rows, timings[fam.name])
        out.append((fam, cutoffs[fam.name], by_account, det))
    if wide == "dt_wide":
        con.execute("DROP TABLE IF EXISTS temp.dt_tx").fetchall()
        con.execute("ALTER TABLE temp.dt_wide RENAME TO dt_tx").fetchall()
        engine.ctx_from = ctx_from
    if windowed and not engine.table_exists("pt_hits"):
        run_query(engine, "detect_pass_through", settings)
    return out


def _keep(engine, det: Detection, wanted: list[str], cutoff: datetime | None, key_role: str | None) -> Detection:
    """Only the wanted typologies and, in an incremental run, alerts starting at or after ``cutoff``.

    With ``key_role``, only alerts whose account of that role is one the new payments touched: the
    detector read only those accounts' payments, so what it found about others is partial.
    """
    mask = pc.is_in(det.alerts["typology"], pa.array(wanted, pa.string()))
    if cutoff is not None:
        mask = pc.and_(mask, pc.greater_equal(det.alerts["start_ts"], pa.scalar(cutoff, pa.timestamp("us"))))
    if key_role is not None and det.alerts.num_rows:
        touched = engine.to_arrow("SELECT CAST(account_id AS UBIGINT) AS account_id FROM dx_touched")["account_id"]
        keyed = det.members.filter(
            pc.and_(pc.equal(det.members["role"], key_role), pc.is_in(det.members["account_id"], touched))
        )
        mask = pc.and_(mask, pc.is_in(det.alerts["alert_id"], keyed["alert_id"]))
    alerts = det.alerts.filter(mask)
    if alerts.num_rows == det.alerts.num_rows:
        return det
    ids = alerts["alert_id"]
    return Detection(
        alerts,
        det.members.filter(pc.is_in(det.members["alert_id"], ids)),
        det.evidence.filter(pc.is_in(det.evidence["alert_id"], ids)),
    )


_RAW = (
    ("detect_raw_alerts", "alerts"),
    ("detect_raw_members", "alert_members"),
    ("detect_raw_evidence", "alert_evidence"),
)


def _ensure_raw(con) -> None:
    """Create the raw alert tables (every alert found, before corroboration), the pass-through profile
    and the per-account incoming totals (with the newest batch they include).

    A workspace detected before these tables existed starts them from its published alerts.
    """
    have = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    for raw, published in _RAW:
        if raw not in have:
            con.execute(f"CREATE TABLE {raw} AS SELECT * FROM {published}").fetchall()
    if "detect_pt_episodes" not in have:
        con.execute(
            "CREATE TABLE detect_pt_episodes (acct UBIGINT, b BIGINT, first_ts TIMESTAMP, in_amt DOUBLE)"
        ).fetchall()
    if "detect_in_totals" not in have:
        # no key: an index costs more to keep up (1.7 s per rebuild at 10 M) than the joins it would save
        con.execute("CREATE TABLE detect_in_totals (acct UBIGINT, in_amt DECIMAL(38, 4))").fetchall()
    if "detect_in_state" not in have:
        con.execute("CREATE TABLE detect_in_state (max_batch_id INTEGER)").fetchall()


def _update_in_totals(con, max_batch: int, rebuild: bool) -> None:
    """Bring ``detect_in_totals`` (money each account ever received from another account) up to ``max_batch``.

    Exact DECIMAL sums, so adding a batch's sums gives what summing everything again gives.
    """
    rows = con.execute("SELECT max_batch_id FROM detect_in_state").fetchall()
    done = rows[0][0] if rows else None
    if rebuild or done is None or done > max_batch:
        con.execute("DELETE FROM detect_in_totals")
        con.execute(
            "INSERT INTO detect_in_totals SELECT dst_id, sum(amount) FROM transactions "
            "WHERE src_id <> dst_id AND batch_id <= $m GROUP BY dst_id",
            {"m": max_batch},
        )
    elif done < max_batch:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dx_in_new AS SELECT dst_id AS acct, sum(amount) AS in_amt FROM transactions "
            "WHERE src_id <> dst_id AND batch_id > $d AND batch_id <= $m GROUP BY dst_id",
            {"d": done, "m": max_batch},
        )
        con.execute(
            "UPDATE detect_in_totals AS t SET in_amt = t.in_amt + n.in_amt FROM dx_in_new AS n WHERE t.acct = n.acct"
        )
        con.execute(
            "INSERT INTO detect_in_totals SELECT acct, in_amt FROM dx_in_new "
            "WHERE acct NOT IN (SELECT acct FROM detect_in_totals)"
        )
    con.execute("DELETE FROM detect_in_state")
    con.execute("INSERT INTO detect_in_state VALUES ($m)", {"m": max_batch})


def _store(ws, engine, settings: DetectSettings, plan: _Plan, results, wanted: list[str], pt_cutoff, timings) -> None:
    """Replace the recomputed part of the raw alerts and of the pass-through profile, then publish.

    Raw alerts are replaced per family: all of them, those from the family's cutoff on, or those from
    the cutoff on about the touched accounts. The published ``alerts`` are rebuilt from the raw ones
    by ``queries/detect/corroborate.sql`` on every run, since corroboration looks at each account's
    whole history (kept up to date in ``detect_pt_episodes`` and ``detect_in_totals``).
    """
    combined = concat([d for *_, d in results])
    engine.register("dx_new_alerts", combined.alerts)
    engine.register("dx_new_members", combined.members)
    engine.register("dx_new_evidence", combined.evidence)
    # Alerts whose mule or hub is a business, merchant, utility ... account are ordinary commerce.
    innocent = list(settings.innocent_kinds)
    engine.materialise(
        "dx_innocent",
        "SELECT DISTINCT m.alert_id FROM dx_new_members m JOIN accounts a ON a.account_id = m.account_id "
        "WHERE m.role IN ('mule', 'hub') AND lower(a.kind) IN (SELECT unnest($kinds))",
        {"kinds": innocent or [""]},
    )
    detected_at = _now()
    has_pt = engine.table_exists("pt_hits")
    with ws.transaction() as con:
        gone, params = [], {}
        for i, (fam, cutoff, by_account, _) in enumerate(results):
            params[f"t{i}"] = [t for t in fam.typologies if t in wanted]
            where = f"typology IN (SELECT unnest($t{i}))"
            if cutoff is not None:
                where += f" AND start_ts >= $c{i}"
                params[f"c{i}"] = cutoff
            if by_account:
                where += (
                    f" AND alert_id IN (SELECT alert_id FROM detect_raw_members WHERE role = $r{i}"
                    " AND account_id IN (SELECT account_id FROM dx_touched))"
                )
                params[f"r{i}"] = fam.key_role
            gone.append(f"SELECT alert_id FROM detect_raw_alerts WHERE {where}")
        if gone:
            con.execute("CREATE OR REPLACE TEMP TABLE dx_gone AS " + " UNION ALL ".join(gone), params)
            con.execute("DELETE FROM detect_raw_members WHERE alert_id IN (SELECT alert_id FROM dx_gone)")
            con.execute("DELETE FROM detect_raw_evidence WHERE alert_id IN (SELECT alert_id FROM dx_gone)")
            con.execute("DELETE FROM detect_raw_alerts WHERE alert_id IN (SELECT alert_id FROM dx_gone)")
        keep = "alert_id NOT IN (SELECT alert_id FROM dx_innocent)"
        con.execute(
            "INSERT INTO detect_raw_alerts SELECT alert_id, typology, score, start_ts, end_ts, amount, n_accounts, "
            f"n_txns, summary, $at FROM dx_new_alerts WHERE {keep}",
            {"at": detected_at},
        )
        con.execute(
            "INSERT INTO detect_raw_members SELECT alert_id, bank, account, account_id, role, level "
            f"FROM dx_new_members WHERE {keep}"
        )
        con.execute(
            f"INSERT INTO detect_raw_evidence SELECT DISTINCT alert_id, txn_id FROM dx_new_evidence WHERE {keep}"
        )
        # The pass-through profile: every episode's money in, replaced from the same cutoff as pass_through.
        if has_pt and plan.mode == "full":
            con.execute("DELETE FROM detect_pt_episodes")
            con.execute("INSERT INTO detect_pt_episodes SELECT acct, b, first_ts, in_amt FROM pt_hits")
        elif has_pt and pt_cutoff is not None:
            con.execute("DELETE FROM detect_pt_episodes WHERE first_ts >= $c", {"c": pt_cutoff})
            con.execute(
                "INSERT INTO detect_pt_episodes SELECT acct, b, first_ts, in_amt FROM pt_hits WHERE first_ts >= $c",
                {"c": pt_cutoff},
            )
        _update_in_totals(con, plan.max_batch, plan.mode == "full")
        t0 = time.perf_counter()
        _publish(con, engine, settings)
        timings["publish"] = time.perf_counter() - t0
    for name in ("dx_new_alerts", "dx_new_members", "dx_new_evidence"):
        ws.con.unregister(name)


def _publish(con, engine, settings: DetectSettings) -> None:
    """Rebuild ``alerts``, ``alert_members``, ``alert_evidence`` from the raw alerts that are corroborated."""
    q = queries.get("detect_corroborate")
    engine.run_steps(q.steps, q.bind(params_for(q, settings)))
    con.execute("DELETE FROM alert_members")
    con.execute("DELETE FROM alert_evidence")
    con.execute("DELETE FROM alerts")
    con.execute("INSERT INTO alerts SELECT * FROM detect_raw_alerts WHERE alert_id IN (SELECT alert_id FROM dc_keep)")
    con.execute("INSERT INTO alert_members SELECT * FROM dc_members")
    con.execute(
        "INSERT INTO alert_evidence SELECT * FROM detect_raw_evidence WHERE alert_id IN (SELECT alert_id FROM dc_keep)"
    )
