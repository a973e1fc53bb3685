"""Detection: run the detectors over the workspace and store their alerts.

"SQL for the wide, NetworkX for the deep": every detector that touches all transactions is a query
file under ``queries/detect/`` run through the engine; Python only handles the few candidates.

:func:`run` is incremental by default. Every windowed detector anchors an alert at its earliest
evidence payment (``start_ts``) and an alert depends only on payments in a bounded span after that,
bucketed on fixed boundaries. After new transaction batches, payments from ``since`` (the earliest
new payment time) on can only change alerts starting at or after ``since - span`` (floored to the
detector's bucket, the family's *cutoff*; for families that consult pass-through episodes also
``ep_since - ep_span``, from the earliest episode that changed), so only those are deleted and
recomputed, each family reading payments from its own cutoff less its ``lookback``.

Pass-through episodes are per account: the workspace keeps all of them (``detect_pt_hits``) and an
incremental run recomputes only those of the accounts new payments touched (``dx_touched``: their
ends, and the other accounts of their holders, since a holder's own transfer counts by the payments
of both its ends), from the pass-through cutoff on; with the stored ones they make the complete
``pt_hits`` every later family reads. Chains are keyed by their root payment: the hops are stored
(``detect_chain_hops``), those of the touched accounts recomputed, and only the roots whose walk
reaches a hop that was added or removed are walked again (``queries/detect/chain_dirty.sql``).
Families whose alert is about one account and depends only on that account's own payments
(``key_role``: pass-through, fans, structuring, new-account burst, dormant then active) read only the
payments of the touched accounts and replace only those accounts' alerts; families whose alerts involve
several accounts may declare a ``scope`` (see :class:`Family`): the key accounts whose alerts can change
and the payments needed to recompute exactly those. A dense batch, whose touched accounts hold at least
``DENSE_SHARE`` of the prepared payments (:func:`_dense`), is recomputed unscoped instead: every windowed
family reads every payment of its window and replaces all its alerts from its cutoff. Card-farm rings depend on
links and accounts (the structure) and on their members' payments (times, amounts, evidence): they are
recomputed when a links batch arrived or a new payment touches a stored ring's member, and kept
otherwise. Corroboration needs every account's incoming money over its whole history; that total is a
stored per-account aggregate (``detect_in_totals``) brought up to date from the new batches; the
share of an alert's money each sink received is stored per raw alert (``detect_sink_paid``) and looked
up only for new or newly kept alerts; the published alerts are updated by difference. Dormant then
active reads the history before its window from each account's stored last payment
(``detect_last_pay``, kept up from each batch) and every stored silence of ``dormant_days``
(``detect_dormant_gaps``) instead of every earlier payment. The stored result equals a full rerun
(``tests/test_detect_incremental.py``, ``tests/test_detect_incremental_state.py`` check it). A new
accounts batch, a new payment earlier than all stored ones, changed settings or a workspace without
the stored state (``detect_state``) force a full run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc

from fundtrace import queries
from fundtrace.detect import scopes
from fundtrace.detect.base import (
    ALERT_SCHEMA,
    EVIDENCE_SCHEMA,
    MEMBER_SCHEMA,
    Detection,
    alert_id_sql,
    collect,
    name_members,
    params_for,
)
from fundtrace.detect.cycle_scope import cycles_scope
from fundtrace.detect.fit import fit
from fundtrace.detect.settings import TYPOLOGIES, DetectSettings, fx_rate
from fundtrace.detect.sqlfamilies import (
    _ensure_episode_payments,
    _ensure_pass_through,
    detect_chains,
    detect_cycles,
    detect_fans,
    detect_layering,
    detect_new_account_burst,
    detect_pass_through,
    detect_structuring,
    prepare,
    release,
    run_query,
)
from fundtrace.engine import DuckDBEngine
from fundtrace.errors import QueryError, UsageError

__all__ = ["TYPOLOGIES", "DetectSettings", "run"]

log = logging.getLogger("fundtrace.detect")

_SCRATCH = ("dt_", "pt_", "ch_", "fan_", "ly_", "sg_", "gs_", "bp_", "cy_", "st_", "nb_", "da_", "dx_", "dc_", "cs_")


@dataclass(frozen=True)
class Family:
    """Detectors run together; ``bucket``, ``span`` and ``ep_span`` (hours) bound what new payments can change.

    Alerts are anchored at the bucket of their first payment; an alert of a window of two buckets
    (fans, bipartite, cycles, structuring) reads payments of those two buckets, a scatter-gather path
    one bucket further. ``span``: an alert starting at or after ``since - span`` floored to the bucket
    covers every alert that reads a payment from ``since`` on. ``ep_span``, for the families that
    consult pass-through episodes, does the same for the episodes that changed (added, removed or
    different, from the earliest one's start): a fan counts those overlapping it, a bipartite window
    those that ended at most a dwell window before it starts and began before it ends, a cycle's payment
    those that ended at most a dwell window before it and began at most a cycle window after it.
    Widening those rules needs a wider ``ep_span``.
    ``lookback`` (hours) is how far before its cutoff the family must read payments for the alerts
    at or after the cutoff to come out exact (the episodes they build on are complete: every stored
    episode and the recomputed ones, see :func:`_detect`).
    ``key_role``: the role of the one account an alert is about, when the alert depends only on that
    account's own payments (and the account registry): an incremental run then reads only the
    payments of the accounts new payments touched and replaces only their alerts.
    ``by_hops``: chains, recomputed from the stored hops (see ``queries/detect/chain_dirty.sql``).
    ``scope``: for a family whose alerts involve several accounts, what an incremental run recomputes.
    Called as ``scope(engine, settings, table)`` with ``dt_tx`` a view of every payment from the
    family's context, ``pt_hits`` complete and ``dx_touched`` the touched accounts, it creates the temp
    table ``table`` (``account_id``: the key accounts), may narrow ``dt_tx`` to the payments the
    family needs for them, and returns for each typology the roles that key an alert: the family's
    alerts from its cutoff with a key account in one of those roles are exactly the ones that can
    change, and those it finds on the narrowed payments are exact.
    """

    name: str
    typologies: tuple[str, ...]
    detect: Callable[..., Detection]
    bucket: Callable[[DetectSettings], float] | None  # None: not windowed (rings)
    span: Callable[[DetectSettings], float] | None = None
    lookback: Callable[[DetectSettings], float] = lambda s: 0.0
    ep_span: Callable[[DetectSettings], float] | None = None
    key_role: str | None = None
    by_hops: bool = False
    scope: Callable[..., dict[str, tuple[str, ...]]] | None = None


def _rings(engine, settings, ring_settings=None) -> Detection:
    from fundtrace.detect.rings import detect_rings

    return detect_rings(engine, ring_settings)


def _dormant(engine, settings, stored_history: bool = False) -> Detection:
    """Dormant then active (``queries/detect/dormant_active.sql``); its silences are left in ``dx_da_wake``.

    ``stored_history``: the history before the window comes from ``detect_last_pay`` and
    ``detect_dormant_gaps`` (see :func:`_last_pay_ready`) instead of every earlier payment.
    """
    if not engine.table_exists("dt_tx"):
        prepare(engine, settings)
    last = run_query(engine, "detect_dormant_active", settings, {"stored_history": stored_history})
    engine.materialise("dx_da_wake", "SELECT acct, wake_t, prev_t FROM da_wake")
    detection = collect(engine, last)
    release(engine, "detect_dormant_active")
    return detection


def _bipartite(engine, settings) -> Detection:
    from fundtrace.detect.bipartite import detect_bipartite

    return detect_bipartite(engine, settings)


FAMILIES = (
    Family("pass_through", ("pass_through",), detect_pass_through, lambda s: s.dwell_hours,
           lambda s: 2 * s.dwell_hours, key_role="mule"),
    Family("chain", ("chain", "stacked"), detect_chains, lambda s: s.dwell_hours,
           lambda s: (s.max_hops + 1) * s.dwell_hours, by_hops=True),
    Family("fans", ("fan_in", "fan_out"), detect_fans, lambda s: s.fan_window_hours,
           lambda s: s.fan_window_hours, ep_span=lambda s: s.fan_window_hours, key_role="hub"),
    Family("layering", ("scatter_gather", "gather_scatter"), detect_layering, lambda s: s.layer_window_hours,
           lambda s: 2 * s.layer_window_hours, scope=scopes.layering_scope),
    Family("bipartite", ("bipartite",), _bipartite, lambda s: s.layer_window_hours,
           lambda s: s.layer_window_hours, ep_span=lambda s: s.layer_window_hours),
    Family("cycle", ("cycle",), detect_cycles, lambda s: s.cycle_window_hours,
           lambda s: s.cycle_window_hours, ep_span=lambda s: 2 * s.cycle_window_hours, scope=cycles_scope),
    Family("structuring", ("structuring",), detect_structuring, lambda s: s.structuring_window_hours,
           lambda s: s.structuring_window_hours, key_role="hub"),
    Family("new_account_burst", ("new_account_burst",), detect_new_account_burst, lambda s: 1.0,
           lambda s: s.burst_hours + 1, lambda s: s.burst_hours, key_role="hub"),
    Family("dormant_active", ("dormant_active",), _dormant, lambda s: 24.0,
           lambda s: s.active_hours + 24, lambda s: 24.0, key_role="hub"),
    Family("card_farm_ring", ("card_farm_ring",), _rings, None),
)  # fmt: skip
_STATE = "3"  # format of the stored incremental state (detect_state 'format'); another value forces a full run


@dataclass(frozen=True)
class _Plan:
    mode: str  # full | incremental | up_to_date
    since: datetime | None  # earliest new payment (None: no new payments)
    max_batch: int
    prev_batch: int | None  # payments of later batches are new (None: unknown, e.g. an explicit since)
    links: bool  # links arrived since the last run (rings are recomputed)

    def new_payments(self) -> tuple[str, dict]:
        """A filter on ``transactions`` for the new payments, with its parameters: those of the batches
        loaded after the last run, or with an explicit ``since`` every payment from then on."""
        if self.since is None:
            return "false", {}
        if self.prev_batch is not None:
            return "batch_id > $b", {"b": self.prev_batch}
        return "ts >= $s", {"s": self.since}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _floor(ts: datetime, hours: float) -> datetime:
    """``ts`` floored to a multiple of ``hours`` since the Unix epoch (the SQL buckets' boundaries)."""
    width = round(hours * 3600e6)
    us = (ts - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    return datetime(1970, 1, 1) + timedelta(microseconds=(us // width) * width)


def _drop_scratch(con, keep: tuple[str, ...] = ()) -> None:
    """Drop the run's temporary tables and views (names starting with one of ``_SCRATCH``) except those starting
    with one of ``keep``; all in one call (one statement each, sent together)."""
    rows = con.execute(
        "SELECT table_name, 'TABLE' FROM duckdb_tables() WHERE temporary "
        "UNION ALL SELECT view_name, 'VIEW' FROM duckdb_views() WHERE temporary"
    ).fetchall()
    drops = [
        f'DROP {kind} IF EXISTS temp."{name}"'
        for name, kind in rows
        if name.startswith(_SCRATCH) and not (keep and name.startswith(keep))
    ]
    if drops:
        con.execute("; ".join(drops)).fetchall()


def _settings_key(settings: DetectSettings, ring_settings=None) -> str:
    from fundtrace.detect.rings import RingSettings

    rings = dataclasses.asdict(ring_settings or RingSettings())
    return json.dumps({"detect": dataclasses.asdict(settings), "rings": rings}, sort_keys=True, default=str)


def _one(con, sql: str, params=None):
    return con.execute(sql, params or []).fetchall()[0][0]


def _plan(ws, key: str, typologies: list[str], since: datetime | None, full: bool) -> _Plan:
    """Decide full or incremental, from when, and which batches are new.

    An explicit ``since`` only widens what the plan without it recomputes: when that plan is a full run
    (changed settings or typologies, a new accounts batch, a new payment earlier than every stored one, no
    stored state) the run is full; otherwise it is incremental from the earlier of ``since`` and the first
    payment of the batches loaded since the last run, so that every batch the run is recorded as covering
    is covered. A ``since`` before the first payment is moved to it (the payments from then on are the same).
    """
    con = ws.con
    max_batch = _one(con, "SELECT coalesce(max(batch_id), 0) FROM batches")
    if full:
        return _Plan("full", None, max_batch, None, True)
    state = con.execute("SELECT value FROM detect_state WHERE name = 'format'").fetchall()
    if not state or state[0][0] != _STATE:  # stored episodes and hops missing or of another format
        return _Plan("full", None, max_batch, None, True)
    if since is not None:
        plan = _plan(ws, key, typologies, None, False)
        if plan.mode == "full":
            return plan
        first = _one(con, "SELECT min(ts) FROM transactions")
        if first is None:  # no payments: nothing windowed to recompute (rings still are, as after links)
            return _Plan("incremental", None, max_batch, None, True)
        since = max(since, first) if plan.since is None else min(max(since, first), plan.since)
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
        earliest payment of the transaction batches loaded since the last run (nothing when none); a later
        time is moved back to it, and when a full run is due (changed settings or typologies, a new
        accounts batch, no stored state) the run is full.
    full : bool
        Recompute everything, whatever was stored before.

    Returns
    -------
    dict
        ``mode`` (full | incremental | up_to_date), ``since``, ``scale`` (hours | days: which defaults
        applied, see :mod:`fundtrace.detect.fit`), ``notes`` (how the settings were fitted to the data),
        ``alerts`` per typology (stored, after the run), ``recomputed`` per typology, ``seconds``.
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
    settings, notes = fit(ws.con, settings)  # before the key: a change of scale or kinds forces a full run
    settings, notes = _published(settings, notes, only)
    key = _settings_key(settings, ring_settings)
    plan = _plan(ws, key, wanted, since, full)
    step = progress or (lambda s: None)
    engine = DuckDBEngine(ws.con, debug_sql=debug_sql, report=report)
    # Every family's members are named once, when stored (see _store): a look-up in the payments reads the name
    # columns of nearly every row group however few accounts it names (~0.1-0.2 s at 10 M, ~0.3 s in a full run).
    engine.names_later = True
    _drop_scratch(ws.con)
    _ensure_raw(ws.con)
    _store_fx(ws, settings)
    old_limit = ws.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    ws.con.execute(f"SET memory_limit = '{settings.memory_limit}'")  # validated: digits and a unit
    clock = _Clock()
    results: list[_Result] = []
    try:
        if plan.mode != "up_to_date":
            results = _detect(ws, engine, settings, plan, wanted, ring_settings, step, clock)
            _store(ws, engine, settings, plan, results, wanted, clock)
    except QueryError as exc:
        if "Out of Memory" in str(exc):  # e.g. chains through a dense mesh of equal payments at one time
            exc.hint = (
                f"the payments outgrew detect.memory_limit ({settings.memory_limit}): raise it in fundtrace.toml, "
                "or leave that step's typologies out with --only; nothing was stored"
            )
        raise
    finally:
        _drop_scratch(ws.con)
        ws.con.execute(f"SET memory_limit = '{old_limit}'")
    recomputed: dict[str, int] = {}
    for r in results:
        for t in r.family.typologies:
            if t in wanted:
                recomputed[t] = r.counts.get(t, 0)
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
        "scale": settings.scale,
        "notes": notes,
        "alerts": counts,
        "recomputed": recomputed,
        "seconds": round(time.perf_counter() - started, 3),
        "timings": {k: round(v, 3) for k, v in clock.wall.items()},
        "cpu": {k: round(v, 3) for k, v in clock.cpu.items()},
    }


def _published(settings: DetectSettings, notes: list[str], only: Iterable[str] | None):
    """An unpublished typology named by ``only`` is published: the user asked for it by name."""
    asked = set(only or ())
    if asked & set(settings.unpublished):
        settings = replace(settings, unpublished=tuple(t for t in settings.unpublished if t not in asked))
    if settings.unpublished:
        held = ", ".join(settings.unpublished)
        notes = [*notes, f"detected but not published: {held} (unpublished; `detect --only TYPOLOGY` publishes one)"]
    return settings, notes


class _Clock:
    """Wall and CPU seconds (every thread of the process) per part of a run."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu


@dataclass(frozen=True)
class _Keys:
    """Only alerts with an account of ``table`` in one of its typology's ``roles`` were recomputed."""

    table: str
    roles: dict[str, tuple[str, ...]]  # typology -> roles

    @staticmethod
    def touched(fam: Family, dense: bool = False) -> _Keys | None:
        """A one-account family's keys: the touched accounts in its ``key_role``; None (every alert from the
        cutoff, recomputed from every payment of the window) when the batch is dense (see :func:`_dense`)."""
        return None if dense else _Keys("dx_touched", {t: (fam.key_role,) for t in fam.typologies})


@dataclass
class _Result:
    family: Family
    cutoff: datetime | None  # alerts from here on were recomputed (None: all, or those ``gone`` names)
    keys: _Keys | None  # only alerts keyed by these accounts were recomputed (None: every one from the cutoff)
    counts: dict[str, int]  # its alerts per typology (the alerts themselves are staged, see _stage)
    gone: str | None = None  # a table of the stored alert ids replaced (chains)


def _touched(engine, plan: _Plan, settings: DetectSettings) -> None:
    """``dx_touched``: the accounts whose payments the new ones can change.

    The ends of every new payment (with an explicit ``since``, of every payment from then on) and,
    when a holder's own transfers count only if the money transits the holder (``same_holder_onward``),
    every account of those holders: whether such a transfer is evidence depends on the payments of its
    two ends, so an untouched account's transfer to a touched sibling can change.
    """
    where, params = plan.new_payments()
    engine.materialise(
        "dx_touched",
        f"SELECT src_id AS account_id FROM transactions WHERE {where} "
        f"UNION SELECT dst_id FROM transactions WHERE {where}",
        params,
    )
    if settings.skip_same_holder and settings.same_holder_onward:
        engine.execute(
            "INSERT INTO dx_touched SELECT account_id FROM accounts WHERE holder_id IN (SELECT holder_id FROM accounts "
            "WHERE holder_id IS NOT NULL AND account_id IN (SELECT account_id FROM dx_touched)) "
            "AND account_id NOT IN (SELECT account_id FROM dx_touched)"
        )


def _known_names(engine, plan: _Plan) -> None:
    """Start the run's name cache (``dx_names``, see ``base.name_accounts``) with the names in the new payments;
    the members named nowhere there are looked up in the names stored by earlier runs (``detect_names``),
    then in the payments, without a pass over every payment (~2.5 s at 10 M) nor a copy of every stored name.

    The families' members are named once, when they are stored (``engine.names_later``, set by :func:`run`)."""
    where, params = plan.new_payments()
    engine.materialise(
        "dx_names",
        f"""SELECT account_id, any_value(bank) AS bank, any_value(account) AS account FROM (
              SELECT src_id AS account_id, src_bank AS bank, src_account AS account FROM transactions WHERE {where}
              UNION ALL SELECT dst_id, dst_bank, dst_account FROM transactions WHERE {where}
            ) GROUP BY account_id""",
        params,
    )


def _detect(ws, engine, settings: DetectSettings, plan: _Plan, wanted, ring_settings, step, clock) -> list[_Result]:
    """Run the families the plan needs; return what each recomputed.

    A full run prepares every payment once and runs each family over all of them. An incremental run:

    - pass-through episodes are per account: they are recomputed only for the touched accounts
      (``dx_touched``), from the pass-through cutoff, out of those accounts' payments; with the stored
      episodes of every other account (``detect_pt_hits``) they make the complete ``pt_hits`` the
      later families read;
    - chains are recomputed only from the roots whose walk can reach a hop that changed
      (``_chains``; hops of the touched accounts recomputed, the others stored in ``detect_chain_hops``);
    - one-account families (``key_role``) read only the touched accounts' payments from their own
      context and replace only those accounts' alerts;
    - the other windowed families read every payment from their own context (cutoff less lookback).
    """
    con = ws.con
    incremental = plan.mode == "incremental"
    families = [f for f in FAMILIES if set(f.typologies) & set(wanted)]
    if incremental and plan.since is None:  # only links arrived: nothing windowed can change
        families = [f for f in families if f.bucket is None]
    touched = incremental and plan.since is not None
    if touched:
        _touched(engine, plan, settings)
    if incremental:
        with clock.part("names"):
            _known_names(engine, plan)
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
    windowed = [f for f in families if f.bucket is not None]
    rings = [f for f in families if f.bucket is None]
    out: list[_Result] = []
    for name, schema in _STAGED:
        engine.register("dx_stage", schema.empty_table())
        engine.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM dx_stage")
        engine.unregister("dx_stage")

    def run_family(fam, cutoff=None, keys=None, from_b=None, nothing=False, detect=None) -> None:
        step(fam.name)
        with clock.part(fam.name):
            if nothing:  # the family cannot find anything: its stored alerts in scope (none) are replaced by none
                det = Detection.empty()
            elif fam.name == "card_farm_ring":
                try:
                    det = _rings(engine, settings, ring_settings)
                except ImportError:
                    log.warning("card-farm ring detector not installed (fundtrace.detect.rings); skipped")
                    return
            elif fam.by_hops:
                det = _chains(engine, settings, from_b)
            else:
                det = (detect or fam.detect)(engine, settings)
            det = _keep(engine, det, wanted, cutoff, keys)
        log.info("%s: %d alerts in %.2fs", fam.name, det.alerts.num_rows, clock.wall[fam.name])
        counts = _stage(engine, det)
        out.append(_Result(fam, cutoff, keys, counts, "dx_chain_gone" if (fam.by_hops and incremental) else None))

    if not incremental:
        if windowed:
            step("preparing transactions")
            with clock.part("prepare"):
                prepare(engine, settings, None)
        for fam in windowed + rings:
            run_family(fam)
        if windowed and not engine.table_exists("pt_hits"):  # the stored episodes, whatever families ran
            run_query(engine, "detect_pass_through", settings)
        return out
    if windowed:
        _detect_incremental(engine, settings, plan, windowed, run_family, step, clock)
    for fam in rings:
        run_family(fam)
    return out


# The run's new alerts, members and evidence, family after family (dx_ tables live until the run ends).
_STAGED = (("dx_new_alerts", ALERT_SCHEMA), ("dx_new_members", MEMBER_SCHEMA), ("dx_new_evidence", EVIDENCE_SCHEMA))


def _stage(engine, det: Detection) -> dict[str, int]:
    """Append a family's hits to the run's ``dx_new_*`` tables and return its alerts per typology: the engine holds
    them (and may spill them), not Python until the store (a dense mesh of 10 M payments: 240 MB of raw alerts,
    1.7 M members)."""
    for (name, _), table in zip(_STAGED, (det.alerts, det.members, det.evidence), strict=True):
        if table.num_rows:
            engine.register("dx_stage", table)
            engine.execute(f"INSERT INTO {name} BY NAME SELECT * FROM dx_stage")
            engine.unregister("dx_stage")
    return dict(Counter(det.alerts["typology"].to_pylist()))


def _can_wake(con, settings: DetectSettings) -> bool:
    """Whether an account can be dormant then active at all: only when the payments span ``dormant_days``.

    ``queries/detect/dormant_active.sql`` measures the silence from an account's last earlier payment or
    from its opening while the workspace was watching (at or after the first payment), both within the
    payments' span. When it is shorter the detector finds nothing, and an incremental run skips its scan
    of every earlier payment.
    """
    span = _one(con, "SELECT epoch_us(max(ts)) - epoch_us(min(ts)) FROM transactions")
    return span is not None and span >= settings.dormant_days * 86400e6


def _last_pay_ready(con, plan: _Plan) -> bool:
    """Make ``detect_last_pay`` hold each account's last and first payment of the batches before the new ones;
    whether it can.

    It is kept up to date from each batch once built (``_update_last_pay``); a full run builds it when the
    payments span ``dormant_days``, an incremental run the first time it needs it (once, from every earlier
    payment). With an explicit ``since`` the new payments are not whole batches: the detector reads the history.
    """
    if plan.prev_batch is None:
        return False
    if _last_pay_batch(con) != plan.prev_batch:
        _build_last_pay(con, plan.prev_batch)
    return True


def _last_pay_batch(con) -> int | None:
    rows = con.execute("SELECT value FROM detect_state WHERE name = 'last_pay_batch'").fetchall()
    return int(rows[0][0]) if rows else None


# Each account's last and first payment (acct, last_t, first_t in epoch us) in the batches after $d up to $m.
_LAST_PAYS = (
    "SELECT acct, max(last_t) AS last_t, min(first_t) AS first_t FROM ("
    "SELECT src_id AS acct, epoch_us(max(ts)) AS last_t, epoch_us(min(ts)) AS first_t FROM transactions "
    "WHERE batch_id > $d AND batch_id <= $m GROUP BY 1 "
    "UNION ALL SELECT dst_id, epoch_us(max(ts)), epoch_us(min(ts)) FROM transactions "
    "WHERE batch_id > $d AND batch_id <= $m GROUP BY 1"
    ") GROUP BY acct"
)


def _build_last_pay(con, max_batch: int | None) -> None:
    """``detect_last_pay`` from every payment of batches up to ``max_batch`` (None: emptied, not kept up)."""
    con.execute("DELETE FROM detect_last_pay")
    con.execute("DELETE FROM detect_state WHERE name = 'last_pay_batch'")
    if max_batch is None:
        return
    con.execute(f"INSERT INTO detect_last_pay {_LAST_PAYS}", {"d": -1, "m": max_batch})
    con.execute("INSERT INTO detect_state VALUES ('last_pay_batch', $v)", {"v": str(max_batch)})


# The touched accounts' payments from $c on (``dt_touched``): those they made, then those they received from
# others. Two semi-joins, each filtering dt_all through a hash of the touched accounts, cost ~15 % less CPU at
# 10 M payments (3.7 M prepared, 0.7 M touched) than one pass testing ``src_id IN (...) OR dst_id IN (...)``.
_TOUCHED_PAYMENTS = (
    "SELECT * FROM dt_all WHERE t >= epoch_us($c) AND src_id IN (SELECT account_id FROM dx_touched) "
    "UNION ALL SELECT * FROM dt_all WHERE t >= epoch_us($c) AND dst_id IN (SELECT account_id FROM dx_touched) "
    "AND src_id NOT IN (SELECT account_id FROM dx_touched)"
)


# One-account families that select a few payments by their own columns (structuring: amounts just under the
# reporting threshold): they read the touched accounts' payments through this view of every prepared payment, so
# the copy ``dt_touched`` starts at the other families' contexts, not at their longer one (at 10 M payments with
# the 100 k batch structuring's two weeks made it 0.72 M rows instead of 0.50 M).
_SELECTIVE = ("structuring",)
_TOUCHED_VIEW = (
    "(SELECT * FROM dt_all WHERE src_id IN (SELECT account_id FROM dx_touched) "
    "OR dst_id IN (SELECT account_id FROM dx_touched))"
)


def _pt_cutoff(settings: DetectSettings, since: datetime) -> datetime:
    """Pass-through episodes starting from here on can change with payments from ``since`` on (a payment
    out feeds the episode of the bucket before; a holder's transfer counts by payments a dwell window away;
    an episode's payments out end at the account's next money in, see pt_hits in queries/detect/pass_through.sql)."""
    return _floor(since - timedelta(hours=2 * settings.dwell_hours), settings.dwell_hours)


def _detect_incremental(engine, settings: DetectSettings, plan: _Plan, windowed, run_family, step, clock) -> None:
    """The windowed families of an incremental run (see :func:`_detect`)."""
    con = engine.con
    pt_cutoff = _pt_cutoff(settings, plan.since)

    def cutoffs_for(ep_since: datetime | None) -> tuple[dict, dict]:
        cutoffs, ctxs = {}, {}
        for fam in windowed:
            start = plan.since - timedelta(hours=fam.span(settings))
            if fam.ep_span is not None and ep_since is not None:
                start = min(start, ep_since - timedelta(hours=fam.ep_span(settings)))
            cutoffs[fam.name] = _floor(start, fam.bucket(settings))
            ctxs[fam.name] = _floor(cutoffs[fam.name] - timedelta(hours=fam.lookback(settings)), settings.dwell_hours)
        cutoffs["pass_through"] = ctxs["pass_through"] = pt_cutoff
        return cutoffs, ctxs

    # Before the episodes are known: every changed one starts at or after the pass-through cutoff. The window
    # families' contexts lie between those with a changed episode there and those with none (``late``): the
    # payments from the latest are prepared now, the slice before it only if the changed episodes need it.
    cutoffs, ctxs = cutoffs_for(pt_cutoff)
    _, late = cutoffs_for(None)
    by_account = [f for f in windowed if f.key_role or f.by_hops]
    by_window = [f for f in windowed if not (f.key_role or f.by_hops)]
    account_ctx = min([pt_cutoff] + [ctxs[f.name] for f in by_account if f.key_role and f.name not in _SELECTIVE])
    wide = min([account_ctx] + [ctxs[f.name] for f in by_account if f.name in _SELECTIVE])
    ctx_from = min([wide] + [late[f.name] for f in by_window])
    step("preparing transactions")
    with clock.part("prepare"):
        prepare(engine, settings, ctx_from)
        con.execute("ALTER TABLE temp.dt_tx RENAME TO dt_all").fetchall()
        engine.materialise(
            "dt_touched",
            _TOUCHED_PAYMENTS,
            {"c": account_ctx},
        )
        dense = _dense(con, account_ctx)
        engine.key_accounts = None if dense else "dx_touched"  # the one-account families' keys (sqlfamilies)
        if not by_window and not dense and wide == account_ctx:
            con.execute("DROP TABLE temp.dt_all").fetchall()

    def use(source: str, ctx: datetime, drop: bool = True) -> None:
        """``dt_tx``: a view of ``source`` from ``ctx`` on (a copy per family cost more than the filter);
        ``drop``: drop what the previous family derived (from another window or other payments)."""
        with clock.part("narrow"):
            if drop:
                _drop_scratch(con, keep=("dt_all", "dt_touched", "pt_", "dx_"))
            since_us = (ctx - datetime(1970, 1, 1)) // timedelta(microseconds=1)
            con.execute(f"CREATE OR REPLACE TEMP VIEW dt_tx AS SELECT * FROM {source} WHERE t >= {int(since_us)}")
            engine.ctx_from = ctx

    # Pass-through episodes of the touched accounts, from the pass-through cutoff, out of their own payments.
    use("dt_all" if dense else "dt_touched", pt_cutoff)
    pass_through = [f for f in windowed if f.name == "pass_through"]
    if pass_through:
        run_family(pass_through[0], pt_cutoff, _Keys.touched(pass_through[0], dense))
    with clock.part("pass_through"):
        _ensure_pass_through(engine, settings)  # when pass_through itself is not wanted
        # payments of other accounts to or from touched ones made partial episodes of those accounts: dropped
        engine.materialise(
            "dx_pt_new",
            "SELECT * FROM pt_hits WHERE b >= $cb AND acct IN (SELECT account_id FROM dx_touched)",
            {"cb": _bucket(pt_cutoff, settings.dwell_hours)},
        )
        engine.materialise("pt_hits", "SELECT * FROM dx_pt_new")
    chain = [f for f in windowed if f.by_hops]
    if chain:  # new hops from the new episodes and the touched accounts' payments
        run_family(chain[0], from_b=_bucket(pt_cutoff, settings.dwell_hours))
    with clock.part("pass_through"):
        cutoffs, ctxs = cutoffs_for(_changed_episodes(engine, settings, pt_cutoff))
        _complete_episodes(engine, settings, ctxs, pt_cutoff)
    need = min((ctxs[f.name] for f in by_window), default=ctx_from)
    if need < ctx_from:  # a changed episode widened a window family's context: its payments before ctx_from too
        with clock.part("prepare"):
            con.execute("DROP VIEW IF EXISTS temp.dt_tx").fetchall()
            prepare(engine, settings, need, ctx_to=ctx_from)
            con.execute("INSERT INTO dt_all SELECT * FROM dt_tx").fetchall()
            con.execute("DROP TABLE temp.dt_tx").fetchall()
        log.debug("prepared the payments from %s to %s too", need, ctx_from)
    for fam in [f for f in by_account if f.key_role and f.name != "pass_through"]:
        keys = _Keys.touched(fam, dense)
        if fam.name == "dormant_active" and not _can_wake(con, settings):
            run_family(fam, cutoffs[fam.name], keys, nothing=True)
            continue
        use("dt_all" if dense else _TOUCHED_VIEW if fam.name in _SELECTIVE else "dt_touched", ctxs[fam.name])
        if fam.name == "dormant_active":  # the (touched) accounts' history from the stored state
            stored = _last_pay_ready(con, plan)
            run_family(fam, cutoffs[fam.name], keys, detect=partial(_dormant, stored_history=stored))
            continue
        run_family(fam, cutoffs[fam.name], keys)
    # Bipartite builds on layering's hub buckets (ly_hub, ly_acct): with the same context it reuses them (a wider
    # context for layering, its largest cost, would cost more than computing them again).
    shared = {"layering", "bipartite"} <= {f.name for f in by_window} and ctxs["layering"] == ctxs["bipartite"]
    if plan.prev_batch is not None and _one(con, "SELECT max(value) FROM detect_state WHERE name = 'ly_hub'") == str(
        plan.prev_batch
    ):  # layering's hub buckets are stored up to the new payments: its scope counts only the touched accounts'
        con.execute("CREATE OR REPLACE TEMP VIEW dx_ly_stored AS SELECT acct, b, n FROM detect_ly_hub").fetchall()
    for fam in by_window:
        use("dt_all", ctxs[fam.name], drop=not (shared and fam.name == "bipartite"))
        keys = None
        if fam.scope is not None and not dense:
            with clock.part(fam.name):
                keys = _Keys(f"dx_keys_{fam.name}", fam.scope(engine, settings, f"dx_keys_{fam.name}"))
        run_family(fam, cutoffs[fam.name], keys)
        if dense and fam.name == "layering" and engine.table_exists("dx_ly_stored"):
            _ly_hub_after_dense(engine, settings)
    con.execute("DROP VIEW IF EXISTS temp.dt_tx").fetchall()
    for name in ("dt_all", "dt_touched"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}").fetchall()


def _ly_hub_after_dense(engine, settings: DetectSettings) -> None:
    """Keep the stored hub buckets current after layering ran unscoped (a dense batch): its ``ly_hub`` counted
    every payment of its context, so the touched accounts' buckets from the first one wholly inside it are
    exact (``dx_ly_fb``, ``dx_ly_hn``: what :func:`_store_ly_hub` stores, as after a scoped run)."""
    run_query(engine, "detect_layering_scope", settings, only=("dx_ly_fb",))
    engine.materialise(
        "dx_ly_hn",
        "SELECT acct, b, n FROM ly_hub WHERE b >= (SELECT fb FROM dx_ly_fb) "
        "AND acct IN (SELECT account_id FROM dx_touched)",
    )


# A batch is dense when the touched accounts' payments are at least this share of the prepared payments (see _dense).
# Measured (incremental CPU s, unscoped vs scoped): 10 M bench batches at share 0.19: 12.0-12.7 vs 7.0-8.3; 0.37:
# 11.8-12.1 vs 11.6-11.8 (even); 0.58: 15.2 vs 16.3-17.9; 0.77: 14.2-14.3 vs 17.1-20.8; 0.83: 16.2-19.2 vs 22.3-26.0.
# Simulated 1 M world (every account busy): 0.09: 1.96-2.04 vs 1.78-1.90; 0.27: 2.86-3.01 vs 2.52-2.95; 0.50: 2.30-2.52
# vs 2.36-3.13; 0.73: 2.78-2.96 vs 3.07-3.46; 0.89: 1.94-2.17 vs 2.78-3.02; 0.96-1.0: 20-30 % cheaper unscoped.
DENSE_SHARE = 0.5


def _dense(con, since: datetime) -> bool:
    """Whether an incremental run recomputes every windowed family unscoped, as a full run of its window would.

    The touched accounts' payments (``dt_touched``, from ``since``: the one-account families' earliest context
    but the selective ones') against every prepared payment from then on (``dt_all``): when they are at least
    :data:`DENSE_SHARE` of them, a scoped recomputation reads nearly every payment anyway and only adds its
    own steps (key accounts, narrowing, keyed filtering). Then the one-account families read every payment
    of their window (``dt_all``) and the families with a ``scope`` skip it; each replaces every one of its
    alerts from its cutoff. The counts are of a whole temp table and of one column of another (~5 ms).
    """
    touched = _one(con, "SELECT count(*) FROM dt_touched")
    window = _one(con, "SELECT count(*) FROM dt_all WHERE t >= epoch_us($c)", {"c": since})
    dense = window > 0 and touched >= DENSE_SHARE * window
    log.info("touched accounts' payments: %d of %d prepared (%s)", touched, window, "dense" if dense else "scoped")
    return dense


def _changed_episodes(engine, settings: DetectSettings, pt_cutoff: datetime) -> datetime | None:
    """The start of the earliest episode that was added, removed or changed what the families consult
    (account, bucket, first payment in, last payment out); None when none did."""
    cols = "acct, b, first_in, last_out"
    old = f"SELECT {cols} FROM detect_pt_hits WHERE b >= $cb AND acct IN (SELECT account_id FROM dx_touched)"
    first = (
        engine.to_arrow(
            f"SELECT min(first_in) AS t FROM ((SELECT {cols} FROM dx_pt_new EXCEPT {old}) "
            f"UNION ALL ({old} EXCEPT SELECT {cols} FROM dx_pt_new))",
            {"cb": _bucket(pt_cutoff, settings.dwell_hours)},
        )
        .column(0)[0]
        .as_py()
    )
    return None if first is None else datetime(1970, 1, 1) + timedelta(microseconds=first)


def _complete_episodes(engine, settings: DetectSettings, ctxs: dict, pt_cutoff: datetime) -> None:
    """``pt_hits`` for the families after chains: the stored episodes, but those of the touched accounts from
    the pass-through cutoff on, and the new ones (``dx_pt_new``); only those that can matter to a family
    reading from its context (consulted episodes end at most two of the widest windows and two dwell
    windows before it)."""
    widest = max(settings.layer_window_hours, settings.cycle_window_hours, settings.fan_window_hours)
    lo = min(ctxs.values()) - timedelta(hours=2 * widest + 2 * settings.dwell_hours)
    engine.materialise(
        "pt_hits",
        "SELECT * FROM detect_pt_hits WHERE last_out >= epoch_us($lo) "
        "AND NOT (b >= $cb AND acct IN (SELECT account_id FROM dx_touched)) "
        "UNION ALL BY NAME SELECT * FROM dx_pt_new",
        {"lo": lo, "cb": _bucket(pt_cutoff, settings.dwell_hours)},
    )


def _bucket(ts: datetime, hours: float) -> int:
    """The bucket number of ``ts`` (``t // width`` in the SQL, t in microseconds since the epoch)."""
    width = round(hours * 3600e6)
    return ((ts - datetime(1970, 1, 1)) // timedelta(microseconds=1)) // width


CHAIN, STACKED = "'chain'", "'stacked'"  # the chain family's typologies as SQL literals


def _chains(engine, settings: DetectSettings, from_b: int | None) -> Detection:
    """Chains and stacked layers (``queries/detect/chain.sql``); incremental (``from_b``): only the dirty roots.

    In an incremental run ``pt_hits`` holds the touched accounts' new episodes and ``dt_tx`` their
    payments: the hops found are those of the touched accounts from the pass-through cutoff, which
    replace the stored ones from episode bucket ``from_b`` on (``ch_old``); every other stored hop is
    kept. Only roots whose walk can reach a changed hop (``queries/detect/chain_dirty.sql``) are
    walked; their stored alerts, as chain or stacked, are replaced (``dx_chain_gone``). The new hops
    are left in ``dx_chain_new``.
    """
    _ensure_episode_payments(engine, settings)
    q = queries.get("detect_chain")
    params = q.bind(params_for(q, settings))
    if from_b is None:
        last = engine.run_steps(q.steps, params)
    else:
        engine.run_steps(q.steps[:1], params)
        engine.execute("DROP TABLE pt_pay")  # the episodes' payments: read by ch_hops only
        scope = "acct IN (SELECT account_id FROM dx_touched) AND b >= $cb"
        engine.materialise("ch_old", f"SELECT * FROM detect_chain_hops WHERE {scope}", {"cb": from_b})
        engine.materialise(
            "ch_all",
            f"SELECT * FROM detect_chain_hops WHERE NOT ({scope}) UNION ALL BY NAME SELECT * FROM ch_hops",
            {"cb": from_b},
        )
        dirty = queries.get("detect_chain_dirty")
        engine.run_steps(dirty.steps, dirty.bind(params_for(dirty, settings)))
        engine.materialise(
            "dx_chain_gone",
            f"SELECT {alert_id_sql(CHAIN, 'txn_id')} AS alert_id FROM ch_up "
            f"UNION ALL SELECT {alert_id_sql(STACKED, 'txn_id')} FROM ch_up",
        )
        last = engine.run_steps([s for s in q.steps if s[0] not in ("ch_hops", "ch_all", "ch_roots")], params)
    detection = collect(engine, last)
    engine.materialise("dx_chain_new", "SELECT * FROM ch_hops")
    for name, _ in q.steps + queries.get("detect_chain_dirty").steps + [("ch_old", ""), ("pt_pay", "")]:
        engine.execute(f'DROP TABLE IF EXISTS "{name}"')
    return detection


def _keep(engine, det: Detection, wanted: list[str], cutoff: datetime | None, keys: _Keys | None) -> Detection:
    """Only the wanted typologies and, in an incremental run, alerts starting at or after ``cutoff``.

    With ``keys``, only alerts with a key account in one of their typology's key roles: the detector
    read only the payments those accounts need, so what it found about others may be partial.
    """
    mask = pc.is_in(det.alerts["typology"], pa.array(wanted, pa.string()))
    if cutoff is not None:
        mask = pc.and_(mask, pc.greater_equal(det.alerts["start_ts"], pa.scalar(cutoff, pa.timestamp("us"))))
    if keys is not None and det.alerts.num_rows:
        accounts = engine.to_arrow(f"SELECT CAST(account_id AS UBIGINT) AS account_id FROM {keys.table}")["account_id"]
        keyed = det.members.filter(pc.is_in(det.members["account_id"], accounts))
        ids = []
        for typology, roles in keys.roles.items():
            of_typology = det.alerts.filter(pc.equal(det.alerts["typology"], typology))["alert_id"]
            in_role = pc.and_(
                pc.is_in(keyed["role"], pa.array(roles, pa.string())), pc.is_in(keyed["alert_id"], of_typology)
            )
            ids.append(keyed.filter(in_role)["alert_id"])
        mask = pc.and_(mask, pc.is_in(det.alerts["alert_id"], pa.chunked_array(ids, det.alerts["alert_id"].type)))
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


def _store_fx(ws, settings: DetectSettings) -> None:
    """``detect_fx``: the rates this run compares amounts at (``settings.fx``), read wherever an amount is."""
    rates = sorted(fx_rate(e) for e in settings.fx)
    if rates == [tuple(r) for r in ws.con.execute("SELECT currency, rate FROM detect_fx ORDER BY 1").fetchall()]:
        return
    with ws.transaction() as con:
        con.execute("DELETE FROM detect_fx")
        if rates:
            con.executemany("INSERT INTO detect_fx VALUES (?, ?)", rates)


def _ensure_raw(con) -> None:
    """Create the raw alert tables (every alert found, before corroboration) and the per-account incoming
    totals (with the newest batch they include); migration 0005 made the stored episodes and hops.

    A workspace detected before these tables existed starts them from its published alerts.
    """
    have = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    for raw, published in _RAW:
        if raw not in have:
            con.execute(f"CREATE TABLE {raw} AS SELECT * FROM {published}").fetchall()
    if "detect_in_totals" not in have:
        # no key: an index costs more to keep up (1.7 s per rebuild at 10 M) than the joins it would save
        con.execute("CREATE TABLE detect_in_totals (acct UBIGINT, in_amt DECIMAL(38, 4), n_in BIGINT)").fetchall()
    elif not con.execute(
        "SELECT 1 FROM duckdb_columns() WHERE table_name = 'detect_in_totals' AND column_name = 'n_in'"
    ).fetchall():  # totals of an older workspace, without the counts: summed again by the next run
        con.execute("ALTER TABLE detect_in_totals ADD COLUMN n_in BIGINT").fetchall()
        con.execute("DELETE FROM detect_in_state").fetchall()
    if "detect_in_state" not in have:
        con.execute("CREATE TABLE detect_in_state (max_batch_id INTEGER)").fetchall()
    if "detect_last_pay" not in have:  # each account's last and first payment (epoch us); see _last_pay_ready
        con.execute("CREATE TABLE detect_last_pay (acct UBIGINT, last_t BIGINT, first_t BIGINT)").fetchall()
    elif not con.execute(
        "SELECT 1 FROM duckdb_columns() WHERE table_name = 'detect_last_pay' AND column_name = 'first_t'"
    ).fetchall():  # kept by an older version, without the first payments: built again when next needed
        con.execute("ALTER TABLE detect_last_pay ADD COLUMN first_t BIGINT").fetchall()
        _build_last_pay(con, None)
    if "detect_dormant_gaps" not in have:  # every silence of dormant_days (da_wake), kept by dormant_active's runs
        con.execute("CREATE TABLE detect_dormant_gaps (acct UBIGINT, wake_t BIGINT, prev_t BIGINT)").fetchall()
    if "detect_sink_paid" not in have:  # empty: the next publish computes what it needs
        con.execute("CREATE TABLE detect_sink_paid (alert_id VARCHAR, account_id UBIGINT, paid_share DOUBLE)")


# The money an account received, in the currency detection compares amounts in (detect_fx), each payment rounded as
# stored: exact DECIMAL sums, so adding a batch's sums gives what summing everything again gives.
_IN_AMOUNT = (
    "CASE WHEN fx.rate IS NULL THEN x.amount ELSE CAST(CAST(x.amount AS DOUBLE) * fx.rate AS DECIMAL(38, 4)) END"
)
_IN_PAYMENTS = "transactions x LEFT JOIN detect_fx fx ON fx.currency = x.currency WHERE x.src_id <> x.dst_id"


def _in_totals_delta(con, max_batch: int, rebuild: bool) -> bool:
    """``dx_in_new`` (acct, in_amt, n_in): the money and payments each account received from another in the
    batches ``detect_in_totals`` does not include yet; False when the totals must be summed again instead."""
    rows = con.execute("SELECT max_batch_id FROM detect_in_state").fetchall()
    done = rows[0][0] if rows else None
    if rebuild or done is None or done > max_batch:
        return False
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE dx_in_new AS SELECT dst_id AS acct, sum({_IN_AMOUNT}) AS in_amt, "
        f"count(*) AS n_in FROM {_IN_PAYMENTS} AND batch_id > $d AND batch_id <= $m GROUP BY dst_id",
        {"d": done, "m": max_batch},
    )
    return True


def _update_in_totals(con, max_batch: int, delta: bool) -> None:
    """Bring ``detect_in_totals`` (money and payments each account ever received from another) up to ``max_batch``:
    add ``dx_in_new`` (see :func:`_in_totals_delta`), or sum everything again when not ``delta``.

    Exact DECIMAL sums, so adding a batch's sums gives what summing everything again gives. The changed
    accounts' rows are deleted and inserted again rather than updated: an update of rows spread over the
    whole table made the next checkpoint rewrite the table (0.3 s at 1 M accounts), a delete and an
    append do not.
    """
    if not delta:
        con.execute("DELETE FROM detect_in_totals")
        con.execute(
            f"INSERT INTO detect_in_totals SELECT dst_id, sum({_IN_AMOUNT}), count(*) FROM {_IN_PAYMENTS} "
            "AND batch_id <= $m GROUP BY dst_id",
            {"m": max_batch},
        )
    elif _one(con, "SELECT count(*) FROM dx_in_new"):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dx_in_sum AS SELECT n.acct, coalesce(t.in_amt, 0) + n.in_amt AS in_amt, "
            "coalesce(t.n_in, 0) + n.n_in AS n_in FROM dx_in_new n LEFT JOIN detect_in_totals t ON t.acct = n.acct"
        )
        con.execute("DELETE FROM detect_in_totals WHERE acct IN (SELECT acct FROM dx_in_new)")
        con.execute("INSERT INTO detect_in_totals SELECT acct, in_amt, n_in FROM dx_in_sum")
    con.execute("DELETE FROM detect_in_state")
    con.execute("INSERT INTO detect_in_state VALUES ($m)", {"m": max_batch})


def _update_last_pay(con, settings: DetectSettings, max_batch: int, full: bool) -> None:
    """Bring ``detect_last_pay`` up to ``max_batch`` when it is kept: a full run builds it when accounts can wake up
    (the payments span ``dormant_days``) and drops it otherwise; later batches add their last payments."""
    done = _last_pay_batch(con)
    if full or done is None or done > max_batch:
        _build_last_pay(con, max_batch if (full and _can_wake(con, settings)) else None)
        return
    if done < max_batch:
        con.execute(f"CREATE OR REPLACE TEMP TABLE dx_last_new AS {_LAST_PAYS}", {"d": done, "m": max_batch})
        # deleted and inserted again, not updated in place (see _update_in_totals)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dx_last_sum AS SELECT n.acct, greatest(l.last_t, n.last_t) AS last_t, "
            "least(l.first_t, n.first_t) AS first_t FROM dx_last_new n LEFT JOIN detect_last_pay l ON l.acct = n.acct"
        )
        con.execute("DELETE FROM detect_last_pay WHERE acct IN (SELECT acct FROM dx_last_new)")
        con.execute("INSERT INTO detect_last_pay SELECT acct, last_t, first_t FROM dx_last_sum")
        con.execute("UPDATE detect_state SET value = $v WHERE name = 'last_pay_batch'", {"v": str(max_batch)})


def _update_gaps(con, engine, plan: _Plan, results: list) -> None:
    """``detect_dormant_gaps``: replaced by a full run of dormant_active; an incremental one replaces the touched
    accounts' silences from its cutoff on (earlier ones end before any new payment)."""
    done = [r for r in results if r.family.name == "dormant_active"]
    if not done or not engine.table_exists("dx_da_wake"):
        return
    if plan.mode == "full":
        con.execute("DELETE FROM detect_dormant_gaps")
        con.execute("INSERT INTO detect_dormant_gaps SELECT acct, wake_t, prev_t FROM dx_da_wake")
        return
    scope = "acct IN (SELECT account_id FROM dx_touched) AND wake_t >= epoch_us($c)"
    con.execute(f"DELETE FROM detect_dormant_gaps WHERE {scope}", {"c": done[0].cutoff})
    con.execute(
        f"INSERT INTO detect_dormant_gaps SELECT acct, wake_t, prev_t FROM dx_da_wake WHERE {scope}",
        {"c": done[0].cutoff},
    )


def _store(ws, engine, settings: DetectSettings, plan: _Plan, results: list[_Result], wanted: list[str], clock) -> None:
    """Replace the recomputed part of the raw alerts, the stored episodes and hops, then publish.

    Corroboration (``queries/detect/corroborate.sql``) looks at each account's whole history (kept up to date
    in ``detect_pt_hits`` and ``detect_in_totals``). A full run judges every raw alert and rewrites the
    published ones; an incremental run judges only those whose inputs changed (see :func:`_publish`), so
    it notes first the standing of the accounts whose episodes or incoming money this run changes.
    """
    full = plan.mode == "full"
    with clock.part("names"):  # every family's members at once (see _known_names)
        name_members(engine, "dx_new_members")
    with clock.part("store_alerts"):
        # Alerts whose mule or hub is a business, merchant, utility ... account are ordinary commerce.
        innocent = list(settings.innocent_kinds)
        engine.materialise(
            "dx_innocent",
            "SELECT DISTINCT m.alert_id FROM dx_new_members m JOIN accounts a ON a.account_id = m.account_id "
            "WHERE m.role IN ('mule', 'hub') AND lower(a.kind) IN (SELECT unnest($kinds))",
            {"kinds": innocent or [""]},
        )
    with clock.part("store_totals"):
        delta = _in_totals_delta(ws.con, plan.max_batch, full)
        judge_all = (
            full or not delta or bool(settings.life_corroborates or settings.life_members or settings.fans_yield)
        )
        _share_before(engine, judge_all)
    with ws.transaction() as con:
        with clock.part("store_alerts"):
            _store_alerts(con, results, wanted)
        with clock.part("store_state"):
            _store_state(con, engine, settings, plan, any(r.family.by_hops for r in results))
        with clock.part("store_totals"):
            _update_in_totals(con, plan.max_batch, delta)
            _update_last_pay(con, settings, plan.max_batch, full)
            _update_gaps(con, engine, plan, results)
        with clock.part("publish"):
            _publish(con, engine, settings, full, judge_all)


def _share_before(engine, judge_all: bool) -> None:
    """``dx_share_old`` (acct, share, n_in): before this run's changes, the pass-through share (step ``dc_share``
    of ``queries/detect/corroborate.sql``, run here on the stored episodes and totals as they still are) and the
    payments received of every account whose episodes (the touched accounts, ``dx_touched``) or incoming money
    (``dx_in_new``) the run changes, NULL when it has none; no other account's share or count can change. Empty
    when everything is judged again."""
    if judge_all:
        engine.materialise(
            "dx_share_old",
            "SELECT CAST(NULL AS UBIGINT) AS acct, CAST(NULL AS DOUBLE) AS share, CAST(NULL AS BIGINT) AS n_in "
            "WHERE false",
        )
        return
    cand = "SELECT acct FROM dx_in_new"
    if engine.table_exists("dx_touched"):
        cand += " UNION SELECT account_id FROM dx_touched"
    share = dict(queries.get("detect_corroborate").steps)["dc_share"]
    engine.materialise(
        "dx_share_old",
        f"""WITH c AS ({cand})
            SELECT c.acct, s.share, i.n_in FROM c
            LEFT JOIN (SELECT acct, share FROM (
{share}
                       ) WHERE acct IN (SELECT acct FROM c)) s ON s.acct = c.acct
            LEFT JOIN detect_in_totals i ON i.acct = c.acct""",
    )


def _store_alerts(con, results: list[_Result], wanted: list[str]) -> None:
    """Replace the raw alerts each family recomputed: all of them, those from the family's cutoff on, those
    from the cutoff on keyed by the accounts of ``keys``, or those named in the family's ``gone`` table (chains)."""
    gone, params = [], {}
    for i, r in enumerate(results):
        params[f"t{i}"] = [t for t in r.family.typologies if t in wanted]
        where = f"typology IN (SELECT unnest($t{i}))"
        if r.gone is not None:
            where += f" AND alert_id IN (SELECT alert_id FROM {r.gone})"
        if r.cutoff is not None:
            where += f" AND start_ts >= $c{i}"
            params[f"c{i}"] = r.cutoff
        if r.keys is None:
            gone.append(f"SELECT alert_id FROM detect_raw_alerts WHERE {where}")
            continue
        for j, (typology, roles) in enumerate(r.keys.roles.items()):
            params[f"y{i}_{j}"], params[f"r{i}_{j}"] = typology, list(roles)
            gone.append(
                f"SELECT alert_id FROM detect_raw_alerts WHERE {where} AND typology = $y{i}_{j} AND alert_id IN "
                f"(SELECT alert_id FROM detect_raw_members WHERE role IN (SELECT unnest($r{i}_{j})) "
                f"AND account_id IN (SELECT account_id FROM {r.keys.table}))"
            )
    if gone:
        con.execute("CREATE OR REPLACE TEMP TABLE dx_gone AS " + " UNION ALL ".join(gone), params)
        # the mules, hubs and members of the structural ones: corroboration judges again their pass-through alerts
        con.execute(
            "CREATE OR REPLACE TEMP TABLE dx_gone_members AS SELECT DISTINCT m.account_id FROM detect_raw_members m "
            "JOIN detect_raw_alerts a ON a.alert_id = m.alert_id WHERE m.alert_id IN (SELECT alert_id FROM dx_gone) "
            "AND a.typology <> 'pass_through' AND m.role IN ('mule', 'hub', 'member')"
        )
        con.execute("DELETE FROM detect_raw_members WHERE alert_id IN (SELECT alert_id FROM dx_gone)")
        con.execute("DELETE FROM detect_raw_evidence WHERE alert_id IN (SELECT alert_id FROM dx_gone)")
        con.execute("DELETE FROM detect_raw_alerts WHERE alert_id IN (SELECT alert_id FROM dx_gone)")
    keep = "alert_id NOT IN (SELECT alert_id FROM dx_innocent)"
    con.execute(
        "INSERT INTO detect_raw_alerts SELECT alert_id, typology, score, start_ts, end_ts, amount, n_accounts, "
        f"n_txns, summary, $at FROM dx_new_alerts WHERE {keep}",
        {"at": _now()},
    )
    con.execute(
        "INSERT INTO detect_raw_members SELECT alert_id, bank, account, account_id, role, level "
        f"FROM dx_new_members WHERE {keep}"
    )
    con.execute(f"INSERT INTO detect_raw_evidence SELECT DISTINCT alert_id, txn_id FROM dx_new_evidence WHERE {keep}")


def _store_state(con, engine, settings: DetectSettings, plan: _Plan, chain_ran: bool) -> None:
    """Every pass-through episode and chain hop: all replaced by a full run, those of the touched accounts
    from the pass-through cutoff on by an incremental one; the names learnt; then the state's format."""
    full = plan.mode == "full"
    scope = "b >= $cb AND acct IN (SELECT account_id FROM dx_touched)"
    cb = {"cb": _bucket(_pt_cutoff(settings, plan.since), settings.dwell_hours)} if plan.since else {}
    if full and engine.table_exists("pt_hits"):
        con.execute("CREATE OR REPLACE TABLE detect_pt_hits AS SELECT * FROM pt_hits")
    elif not full and engine.table_exists("dx_pt_new"):
        con.execute(f"DELETE FROM detect_pt_hits WHERE {scope}", cb)
        con.execute("INSERT INTO detect_pt_hits BY NAME SELECT * FROM dx_pt_new")
    if chain_ran and full:
        con.execute("CREATE OR REPLACE TABLE detect_chain_hops AS SELECT * FROM dx_chain_new")
    elif chain_ran:
        con.execute(f"DELETE FROM detect_chain_hops WHERE {scope}", cb)
        con.execute("INSERT INTO detect_chain_hops BY NAME SELECT * FROM dx_chain_new")
    if engine.table_exists("dx_names"):  # names never change (an id is a hash of them): only new ones are added
        con.execute(
            "INSERT INTO detect_names SELECT account_id, bank, account FROM dx_names "
            "WHERE account_id NOT IN (SELECT account_id FROM detect_names)"
        )
    _store_ly_hub(con, engine, plan)
    con.execute("INSERT OR REPLACE INTO detect_state VALUES ('format', $v)", {"v": _STATE})


def _store_ly_hub(con, engine, plan: _Plan) -> None:
    """Layering's hub buckets over every payment (``detect_ly_hub``) and the batch they are current for (detect_state
    'ly_hub'): written by a full run of layering; an incremental one replaces the touched accounts' from the first
    bucket of its context (``dx_ly_hn``, see ``queries/detect/layering_scope.sql``). A run that changes payments
    without doing either leaves them stale: the next incremental layering counts every payment of its context."""
    current = True
    if plan.mode == "full" and engine.table_exists("ly_hub"):
        con.execute("DELETE FROM detect_ly_hub")
        con.execute("INSERT INTO detect_ly_hub SELECT acct, b, n FROM ly_hub")
    elif plan.mode != "full" and engine.table_exists("dx_ly_hn"):
        con.execute(
            "DELETE FROM detect_ly_hub WHERE acct IN (SELECT account_id FROM dx_touched) "
            "AND b >= (SELECT fb FROM dx_ly_fb)"
        )
        con.execute("INSERT INTO detect_ly_hub SELECT acct, b, n FROM dx_ly_hn")
    elif plan.mode == "full" or plan.since is not None:
        current = False
    else:  # no payment changed: current still if it was
        current = _one(con, "SELECT max(value) FROM detect_state WHERE name = 'ly_hub'") == str(plan.prev_batch)
    if current:
        con.execute("INSERT OR REPLACE INTO detect_state VALUES ('ly_hub', $v)", {"v": str(plan.max_batch)})
    else:
        con.execute("DELETE FROM detect_state WHERE name = 'ly_hub'")


def _rewrite(con, table: str, select: str) -> None:
    """Replace every row of ``table`` (one with a primary key) by those of ``select``: the table is dropped and
    created again from its own definition in the catalog. Deleting every row instead made DuckDB rework the
    stored primary-key index at commit: 19 s for the 12 k published alerts of a 10 M workspace (13 s of it for
    their 50 k evidence rows), against 0.5 s this way."""
    ddl = con.execute(
        "SELECT sql FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = $t",
        {"t": table},
    ).fetchall()[0][0]
    con.execute(f"DROP TABLE {table}")
    con.execute(ddl)
    con.execute(f"INSERT INTO {table} {select}")


def _publish(con, engine, settings: DetectSettings, full: bool, judge_all: bool) -> None:
    """Bring ``alerts``, ``alert_members``, ``alert_evidence`` to the raw alerts that are corroborated.

    A full run rewrites them. An incremental run judges only the alerts whose inputs changed (``dc_scope`` of
    ``queries/detect/corroborate.sql``: those it replaced, those with a member whose standing changed, and the
    pass-through alerts of their members; unless ``judge_all``) and writes only the difference: alerts no longer
    kept or whose raw alert was replaced go, kept ones not published yet come in, and the evidence and members
    of the judged alerts are matched row by row (deleting and inserting again the same rows of a keyed table is
    what cost most).

    The share of an alert's money each of its sinks received is stored per raw alert (``detect_sink_paid``):
    a full run starts it again, an incremental one drops the rows of the alerts it replaced; corroboration
    adds those of the kept alerts it had to look up.
    """
    if engine.table_exists("dx_gone"):
        engine.materialise("dx_replaced", "SELECT alert_id FROM dx_new_alerts UNION SELECT alert_id FROM dx_gone")
    else:
        engine.materialise("dx_replaced", "SELECT alert_id FROM dx_new_alerts")
        engine.materialise("dx_gone_members", "SELECT CAST(NULL AS UBIGINT) AS account_id WHERE false")
    if full:
        con.execute("DELETE FROM detect_sink_paid")
    else:
        con.execute("DELETE FROM detect_sink_paid WHERE alert_id IN (SELECT alert_id FROM dx_replaced)")
    q = queries.get("detect_corroborate")
    # Steps that cannot find anything when their settings name no typology (the defaults) are not run; each leaves its
    # empty table (each reads every raw alert or member: ~15-20 ms in all at 10 M payments).
    off = {}
    if not settings.life_corroborates and not settings.life_members:
        off["dc_life_cand"] = "SELECT CAST(NULL AS UBIGINT) AS account_id WHERE false"
        off["dc_life"] = "SELECT CAST(NULL AS UBIGINT) AS acct, CAST(NULL AS BOOLEAN) AS pays_out WHERE false"
        off["dc_life_ok"] = "SELECT CAST(NULL AS VARCHAR) AS alert_id WHERE false"
    if not settings.fans_yield:
        off["dc_yielded"] = "SELECT CAST(NULL AS VARCHAR) AS alert_id WHERE false"
    if off:  # sent together: a statement costs ~2 ms of its own here
        engine.execute("; ".join(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {empty}' for name, empty in off.items()))
    steps = [s for s in q.steps if s[0] not in off]
    engine.run_steps(steps, q.bind(params_for(q, settings) | {"incremental": not judge_all}))
    con.execute("INSERT INTO detect_sink_paid SELECT alert_id, account_id, paid_share FROM dc_sink_new")
    if full:
        _rewrite(con, "alerts", "SELECT * FROM detect_raw_alerts WHERE alert_id IN (SELECT alert_id FROM dc_keep)")
        _rewrite(con, "alert_members", "SELECT * FROM dc_members")
        _rewrite(
            con, "alert_evidence", "SELECT * FROM detect_raw_evidence WHERE alert_id IN (SELECT alert_id FROM dc_keep)"
        )
        return
    engine.materialise("dx_judged", "SELECT alert_id FROM dc_scope UNION SELECT alert_id FROM dx_replaced")
    con.execute(
        "DELETE FROM alerts WHERE alert_id IN (SELECT alert_id FROM dx_replaced) "
        "OR (alert_id IN (SELECT alert_id FROM dx_judged) AND alert_id NOT IN (SELECT alert_id FROM dc_keep))"
    )
    con.execute(
        "INSERT INTO alerts SELECT * FROM detect_raw_alerts WHERE alert_id IN (SELECT alert_id FROM dc_keep) "
        "AND alert_id NOT IN (SELECT alert_id FROM alerts)"
    )
    # the kept alerts' evidence, read once from the raw evidence for both statements below
    engine.materialise(
        "dx_keep_evidence",
        "SELECT alert_id, txn_id FROM detect_raw_evidence WHERE alert_id IN (SELECT alert_id FROM dc_keep)",
    )
    con.execute(
        """DELETE FROM alert_evidence WHERE rowid IN (
             SELECT e.rowid FROM alert_evidence e
             LEFT JOIN dx_keep_evidence r ON r.alert_id = e.alert_id AND r.txn_id = e.txn_id
             WHERE e.alert_id IN (SELECT alert_id FROM dx_judged) AND r.alert_id IS NULL)"""
    )
    con.execute(
        "INSERT INTO alert_evidence SELECT alert_id, txn_id FROM dx_keep_evidence "
        "EXCEPT SELECT alert_id, txn_id FROM alert_evidence WHERE alert_id IN (SELECT alert_id FROM dc_keep)"
    )
    con.execute(
        """DELETE FROM alert_members WHERE rowid IN (
             SELECT m.rowid FROM alert_members m
             LEFT JOIN dc_members d ON d.alert_id = m.alert_id AND d.account_id = m.account_id AND d.role = m.role
               AND d.bank = m.bank AND d.account = m.account AND d.level IS NOT DISTINCT FROM m.level
             WHERE m.alert_id IN (SELECT alert_id FROM dx_judged) AND d.alert_id IS NULL)"""
    )
    con.execute(
        "INSERT INTO alert_members SELECT * FROM dc_members "
        "EXCEPT SELECT * FROM alert_members WHERE alert_id IN (SELECT alert_id FROM dc_keep)"
    )
