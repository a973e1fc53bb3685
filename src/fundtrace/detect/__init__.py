"""Detection: run the detectors over the workspace and store their alerts.

"SQL for the wide, NetworkX for the deep": every detector that touches all transactions is a query
file under ``queries/detect/`` run through the engine; Python only handles the few candidates.

:func:`run` is incremental by default. Every windowed detector anchors an alert at its earliest
evidence payment (``start_ts``) and an alert depends only on payments in a bounded span after that,
bucketed on fixed boundaries. After new transaction batches, payments from ``since`` (the earliest
new payment time) on can only change alerts starting at or after ``since - span`` (floored to the
detector's bucket), so only those are deleted and recomputed, reading a context window before them.
The stored result equals a full rerun (``tests/test_detect_incremental.py`` checks it). A new
accounts or links batch, or changed settings, forces a full run.
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
_SCRATCH = ("dt_", "pt_", "ch_", "fan_", "ly_", "sg_", "gs_", "bp_", "cy_", "st_", "nb_", "da_", "dx_", "dc_")


@dataclass(frozen=True)
class Family:
    """Detectors run together; ``bucket`` and ``span`` (hours) bound what new payments can change.

    ``span`` covers everything an alert reads after its start and before it (pass-through episodes
    that fans, cycles and bipartite layers consult may begin up to two dwell windows earlier).
    """

    name: str
    typologies: tuple[str, ...]
    detect: Callable[..., Detection]
    bucket: Callable[[DetectSettings], float] | None  # None: not windowed, always recomputed whole
    span: Callable[[DetectSettings], float] | None = None


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
           lambda s: 2 * s.fan_window_hours + 2 * s.dwell_hours),
    Family("layering", ("scatter_gather", "gather_scatter"), detect_layering, lambda s: s.layer_window_hours,
           lambda s: 3 * s.layer_window_hours),
    Family("bipartite", ("bipartite",), _bipartite, lambda s: s.layer_window_hours,
           lambda s: 2 * s.layer_window_hours + 2 * s.dwell_hours),
    Family("cycle", ("cycle",), detect_cycles, lambda s: s.cycle_window_hours,
           lambda s: 2 * s.cycle_window_hours + 2 * s.dwell_hours),
    Family("structuring", ("structuring",), detect_structuring, lambda s: s.structuring_window_hours,
           lambda s: 2 * s.structuring_window_hours),
    Family("new_account_burst", ("new_account_burst",), detect_new_account_burst, lambda s: 1.0,
           lambda s: s.burst_hours + 1),
    Family("dormant_active", ("dormant_active",), detect_dormant_active, lambda s: 24.0,
           lambda s: s.active_hours + 24),
    Family("card_farm_ring", ("card_farm_ring",), _rings, None),
)  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _floor(ts: datetime, hours: float) -> datetime:
    """``ts`` floored to a multiple of ``hours`` since the Unix epoch (the SQL buckets' boundaries)."""
    width = round(hours * 3600e6)
    us = (ts - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    return datetime(1970, 1, 1) + timedelta(microseconds=(us // width) * width)


def _drop_scratch(con) -> None:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    for (name,) in rows:
        if name.startswith(_SCRATCH):
            con.execute(f'DROP TABLE IF EXISTS temp."{name}"').fetchall()


def _settings_key(settings: DetectSettings) -> str:
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)


def _plan(ws, settings: DetectSettings, typologies: list[str], since: datetime | None, full: bool):
    """Decide full or incremental, and from when: returns (mode, since, max_batch_id)."""
    con = ws.con
    max_batch = con.execute("SELECT coalesce(max(batch_id), 0) FROM batches").fetchall()[0][0]
    if full:
        return "full", None, max_batch
    if since is not None:
        return "incremental", since, max_batch
    last = con.execute(
        "SELECT max_batch_id, typologies, settings FROM detect_runs ORDER BY run_id DESC LIMIT 1"
    ).fetchall()
    if not last or last[0][2] != _settings_key(settings) or not set(typologies) <= set(last[0][1].split(",")):
        return "full", None, max_batch
    prev_batch = last[0][0] or 0
    kinds = con.execute("SELECT DISTINCT kind FROM batches WHERE batch_id > ?", [prev_batch]).fetchall()
    if any(k[0] != "transactions" for k in kinds):
        return "full", None, max_batch
    first_new = con.execute("SELECT min(ts) FROM transactions WHERE batch_id > ?", [prev_batch]).fetchall()[0][0]
    if first_new is None:
        return "up_to_date", None, max_batch
    return "incremental", first_new, max_batch


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
    families = [f for f in FAMILIES if set(f.typologies) & set(wanted)]
    mode, since, max_batch = _plan(ws, settings, wanted, since, full)
    step = progress or (lambda s: None)
    engine = DuckDBEngine(ws.con, debug_sql=debug_sql, report=report)
    _drop_scratch(ws.con)
    old_limit = ws.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    ws.con.execute(f"SET memory_limit = '{settings.memory_limit}'")  # validated: digits and a unit
    recomputed: dict[str, int] = {}
    results: list[tuple[Family, datetime | None, Detection]] = []
    try:
        if mode != "up_to_date":
            cutoffs = {}
            for fam in families:
                if mode == "incremental" and fam.bucket is not None:
                    cutoffs[fam.name] = _floor(since - timedelta(hours=fam.span(settings)), fam.bucket(settings))
                else:
                    cutoffs[fam.name] = None
            # Alerts starting at or after their family's cutoff read payments from the cutoff on, plus the
            # pass-through episodes (and chain predecessors) up to two dwell windows before it; episodes are
            # bucketed on dwell boundaries, so the context starts on one, a further dwell earlier.
            starts = [c for fam in families if (c := cutoffs[fam.name]) is not None]
            windowed = [f for f in families if f.bucket is not None]
            ctx_from = None
            if starts and len(starts) == len(windowed):
                ctx_from = _floor(min(starts) - timedelta(hours=3 * settings.dwell_hours), settings.dwell_hours)
            step("preparing transactions")
            prepare(engine, settings, ctx_from)
            for fam in families:
                step(fam.name)
                t0 = time.perf_counter()
                if fam.name == "card_farm_ring":
                    try:
                        det = _rings(engine, settings, ring_settings)
                    except ImportError:
                        log.warning("card-farm ring detector not installed (fundtrace.detect.rings); skipped")
                        continue
                else:
                    det = fam.detect(engine, settings)
                det = _keep(det, wanted, cutoffs[fam.name])
                log.info("%s: %d alerts in %.2fs", fam.name, det.alerts.num_rows, time.perf_counter() - t0)
                results.append((fam, cutoffs[fam.name], det))
            if not engine.table_exists("pt_hits"):
                run_query(engine, "detect_pass_through", settings)
            pt_cutoff = None
            if mode == "incremental":
                pt_cutoff = _floor(since - timedelta(hours=2 * settings.dwell_hours), settings.dwell_hours)
            _store(ws, engine, settings, results, wanted, pt_cutoff, mode != "incremental")
    finally:
        _drop_scratch(ws.con)
        ws.con.execute(f"SET memory_limit = '{old_limit}'")
    for fam, _, det in results:
        for t in fam.typologies:
            if t in wanted:
                recomputed[t] = int(pc.sum(pc.equal(det.alerts["typology"], t)).as_py() or 0)
    counts = dict(ws.con.execute("SELECT typology, count(*) FROM alerts GROUP BY 1 ORDER BY 1").fetchall())
    total = sum(counts.values())
    with ws.transaction() as con:
        run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM detect_runs").fetchall()[0][0]
        con.execute(
            "INSERT INTO detect_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, _now(), mode, since, max_batch, ",".join(wanted), _settings_key(settings), total],
        ).fetchall()
    return {
        "mode": mode,
        "since": since.isoformat(sep=" ") if since else None,
        "alerts": counts,
        "recomputed": recomputed,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _keep(det: Detection, wanted: list[str], cutoff: datetime | None) -> Detection:
    """Only the wanted typologies and, in an incremental run, alerts starting at or after ``cutoff``."""
    mask = pc.is_in(det.alerts["typology"], pa.array(wanted, pa.string()))
    if cutoff is not None:
        mask = pc.and_(mask, pc.greater_equal(det.alerts["start_ts"], pa.scalar(cutoff, pa.timestamp("us"))))
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
    """Create the raw alert tables (every alert found, before corroboration) and the pass-through profile.

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


def _store(ws, engine, settings: DetectSettings, results, wanted: list[str], pt_cutoff, full_profile: bool) -> None:
    """Replace the recomputed part of the raw alerts and of the pass-through profile, then publish.

    Raw alerts and the profile are replaced by time span like before (incremental runs); the published
    ``alerts`` are rebuilt from the raw ones by ``queries/detect/corroborate.sql`` on every run, since
    an account's pass-through share depends on its whole history.
    """
    combined = concat([d for _, _, d in results])
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
    _ensure_raw(ws.con)
    with ws.transaction() as con:
        for fam, cutoff, _ in results:
            typs = [t for t in fam.typologies if t in wanted]
            where = "typology IN (SELECT unnest($t))" + (" AND start_ts >= $c" if cutoff is not None else "")
            params = {"t": typs} | ({"c": cutoff} if cutoff is not None else {})
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE dx_gone AS SELECT alert_id FROM detect_raw_alerts WHERE {where}", params
            )
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
        if full_profile:
            con.execute("DELETE FROM detect_pt_episodes")
        else:
            con.execute("DELETE FROM detect_pt_episodes WHERE first_ts >= $c", {"c": pt_cutoff})
        cond = "" if full_profile else " WHERE first_ts >= $c"
        con.execute(
            f"INSERT INTO detect_pt_episodes SELECT acct, b, first_ts, in_amt FROM pt_hits{cond}",
            {} if full_profile else {"c": pt_cutoff},
        )
        _publish(con, engine, settings)
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
