"""The detectors written in SQL: each runs its query file's steps through the engine and collects alerts.

Every detector reads ``dt_tx`` (the prepared transactions of ``queries/detect/prep.sql``); when it is
missing the detector prepares it over the whole workspace, so each one also runs alone::

    detect_fans(DuckDBEngine(ws.con), DetectSettings())

An incremental run that recomputes only the alerts of some accounts (the touched ones) sets the engine's
``key_accounts`` to the name of a table of their ids (``account_id``); a one-account family may then look
only for those accounts' alerts (the others' are dropped anyway, see ``fundtrace.detect._keep``).
"""

from __future__ import annotations

from datetime import datetime

from fundtrace import queries
from fundtrace.detect.base import Detection, collect, params_for
from fundtrace.detect.settings import DetectSettings

__all__ = [
    "detect_chains",
    "detect_cycles",
    "detect_dormant_active",
    "detect_fans",
    "detect_layering",
    "detect_new_account_burst",
    "detect_pass_through",
    "detect_structuring",
    "prepare",
]

EPOCH = datetime(1970, 1, 1)


def run_query(engine, name: str, settings: DetectSettings, extra: dict | None = None, *, only=None, skip=()) -> str:
    """Materialise the steps of query ``name`` (those named in ``only`` when given, but not those in ``skip``)
    with parameters from ``settings`` and the engine's ``ctx_from``; return the last step."""
    q = queries.get(name)
    given = params_for(q, settings)
    if any(p.name == "ctx_from" for p in q.params):
        given["ctx_from"] = getattr(engine, "ctx_from", EPOCH)
    steps = [s for s in q.steps if (only is None or s[0] in only) and s[0] not in skip]
    return engine.run_steps(steps, q.bind(given | (extra or {})))


def prepare(
    engine, settings: DetectSettings, ctx_from: datetime | None = None, *, ctx_to: datetime | None = None
) -> None:
    """Build ``dt_tx`` from the transactions at or after ``ctx_from`` (all when None) and before ``ctx_to``.

    Whether a payment is kept depends on that payment alone (a holder's own transfer on the payments
    around it, read from ``transactions`` whatever the range), so the rows of two adjacent ranges are
    exactly those of their union.
    """
    engine.ctx_from = ctx_from or EPOCH  # later queries read history before it from transactions
    run_query(engine, "detect_prep", settings, {"ctx_to": ctx_to} if ctx_to is not None else None)


# Tables that detectors after the one making them read (and the runner stores pt_hits): kept until the run
# ends. Every other intermediate table is dropped as soon as its detector has collected its alerts, so that
# the next detector's joins and aggregates have the memory (at 10 M payments they spilled to disk before).
# pt_pay (each episode's payments) is kept for chains' hops, which drop it (a later family reads the complete pt_hits of
# an incremental run, not the episodes pt_pay was made for).
SHARED = frozenset({"dt_holder", "dt_tx", "pt_hits", "pt_pay", "ly_acct", "ly_hub"})


def release(engine, name: str) -> None:
    """Drop the intermediate tables of query ``name`` that no later detector reads (see ``SHARED``)."""
    for step, _ in queries.get(name).steps:
        if step not in SHARED:
            engine.execute(f'DROP TABLE IF EXISTS "{step}"')


def _run_and_collect(engine, name: str, settings: DetectSettings) -> Detection:
    detection = collect(engine, run_query(engine, name, settings))
    release(engine, name)
    return detection


def _ensure(engine, settings: DetectSettings) -> None:
    if not engine.table_exists("dt_tx"):
        prepare(engine, settings)


def detect_pass_through(engine, settings: DetectSettings) -> Detection:
    """Pass-through mules: money in, out within ``dwell_hours``, out close to in.

    Notes
    -----
    One alert per (account, dwell bucket) whose money in that bucket left again within the dwell
    window with at most ``keep_max`` left behind; score from FlowScope's flow balance
    ``min(in, out) - alpha * |in - out|`` over the money in. Linear in the transactions: ins are
    joined to outs on (account, bucket) against the same and the next bucket.
    """
    _ensure(engine, settings)
    detection = collect(engine, run_query(engine, "detect_pass_through", settings), "pt_members", "pt_evidence")
    release(engine, "detect_pass_through")
    return detection


def _ensure_pass_through(engine, settings: DetectSettings) -> None:
    """Chains, fans and cycles build on the pass-through hits; compute them once per session."""
    _ensure(engine, settings)
    if not engine.table_exists("pt_hits"):
        run_query(engine, "detect_pass_through", settings)
        release(engine, "detect_pass_through")


def _ensure_episode_payments(engine, settings: DetectSettings) -> None:
    """``pt_hits`` and ``pt_pay`` (the episodes' payments) for chain hops."""
    _ensure_pass_through(engine, settings)
    if not engine.table_exists("pt_pay"):
        run_query(engine, "detect_pass_through", settings, only=("pt_pay",))


def detect_chains(engine, settings: DetectSettings) -> Detection:
    """Chains (one account per level) and stacked layers (several) of pass-through hops."""
    _ensure_episode_payments(engine, settings)
    detection = _run_and_collect(engine, "detect_chain", settings)
    engine.execute("DROP TABLE IF EXISTS pt_pay")
    return detection


def detect_fans(engine, settings: DetectSettings) -> Detection:
    """Fan-in and fan-out within ``fan_window_hours`` buckets (a bucket and the next).

    With the engine's ``key_accounts`` set (a table of account ids, see the module docstring) only fans of
    those hubs are looked for: a hub's fan is exact when ``dt_tx`` holds every payment of the hub's window.
    """
    _ensure_pass_through(engine, settings)
    keys = getattr(engine, "key_accounts", None)
    if keys is None:
        return _run_and_collect(engine, "detect_fans", settings)
    # only the key accounts' episodes, so only their hub buckets: the payments of the others are left out of
    # fan_pairs on (~50 % of its rows at 10 M with the 100 k batch) and only the key accounts' fans are kept anyway
    q = queries.get("detect_fans")
    eps = dict(q.steps)["fan_eps"]
    run_query(engine, "detect_fans", settings, only=("fan_innocent",))
    engine.run_steps(
        [("fan_eps", f'SELECT * FROM ({eps}) WHERE acct IN (SELECT account_id FROM "{keys}")')],
        q.bind(params_for(q, settings)),
    )
    detection = collect(engine, run_query(engine, "detect_fans", settings, skip=("fan_innocent", "fan_eps")))
    release(engine, "detect_fans")
    return detection


def detect_layering(engine, settings: DetectSettings) -> Detection:
    """Scatter-gather and gather-scatter within ``layer_window_hours`` buckets.

    In an incremental run the layering scope (``fundtrace.detect.scopes.layering_scope``) has already
    counted the hub buckets (``ly_acct``, ``ly_hub``) over every payment of the context and built the key
    alerts' two-hop paths (``sg_paths``) before narrowing ``dt_tx``: those steps of the query are left out.
    """
    _ensure(engine, settings)
    made = ({"ly_acct", "ly_hub"} if engine.table_exists("ly_hub") else set()) | (
        {"sg_paths"} if engine.table_exists("sg_paths") else set()
    )
    detection = collect(engine, run_query(engine, "detect_layering", settings, skip=made))
    release(engine, "detect_layering")
    return detection


def detect_cycles(engine, settings: DetectSettings) -> Detection:
    """Temporal (2SCENT-like) and static length-bounded cycles, ``cycle_kinds``; see fundtrace.detect.cycles."""
    from fundtrace.detect import cycles

    _ensure_pass_through(engine, settings)
    detection = cycles.detect_cycles(engine, settings)
    for name in cycles.QUERIES:
        release(engine, name)
    for table in cycles.TABLES:
        engine.execute(f'DROP TABLE IF EXISTS "{table}"')
    return detection


def detect_structuring(engine, settings: DetectSettings) -> Detection:
    """Repeated amounts just under the reporting ``threshold``."""
    _ensure(engine, settings)
    return _run_and_collect(engine, "detect_structuring", settings)


def detect_new_account_burst(engine, settings: DetectSettings) -> Detection:
    """Many payments or much money within ``burst_hours`` of an account's opening."""
    _ensure(engine, settings)
    return _run_and_collect(engine, "detect_new_account_burst", settings)


def detect_dormant_active(engine, settings: DetectSettings) -> Detection:
    """An account silent for ``dormant_days`` that suddenly moves many payments or much money."""
    _ensure(engine, settings)
    return _run_and_collect(engine, "detect_dormant_active", settings)
