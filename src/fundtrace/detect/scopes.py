"""What an incremental run of the layering family recomputes (its ``Family.scope``).

A scope is called with ``dt_tx`` a view of every payment of the family's context, ``pt_hits`` complete and
``dx_touched`` the accounts new payments touched. It makes the temp table of key accounts, narrows ``dt_tx``
to the payments an exact recomputation of the keyed alerts reads, and returns the roles that key an alert
per typology: the stored alerts from the family's cutoff with a key account in one of those roles are
replaced by those found on the narrowed payments, every other one is kept (see ``fundtrace.detect``).

It rests on two facts about the payments the detectors read (``dt_tx``): every payment a new batch adds
(the new payments, and a holder's own transfers that now count as money passing through) has both ends
touched, and a batch only adds payments, never takes one away. So hub buckets (more than ``layer_max``
payments in a bucket) are only gained, and only by touched accounts; the hub buckets themselves are
counted over every payment of the context, never over the narrowed ones.

Scatter-gather (source, sink, window) depends on the two-hop paths source -> intermediate -> sink and on
the hub buckets of the three: a new path has a new payment, so a touched source or sink; a changed hub
bucket of the source or sink makes it touched; an intermediate that became a hub in a bucket removes the
paths whose payment in or out is in that bucket, and their sources or sinks are its counterparties there.
Gather-scatter (hub, window) depends on the hub's payments and hub buckets and on its counterparties' hub
buckets: a counterparty that became a hub in a bucket makes its counterparties there keys too.

Bipartite has no scope: its candidate graph comes from one scan of the window's payments between accounts
that pass money through, and recomputing every window's graph (0.10-0.12 s wall at 10 M payments, a 100 k
batch) cost half of narrowing it to the components of the touched accounts first (0.20-0.24 s), which
itself scanned the window's payments once.
"""

from __future__ import annotations

from datetime import timedelta

from fundtrace.detect.settings import DetectSettings
from fundtrace.detect.sqlfamilies import EPOCH, run_query

__all__ = ["layering_scope"]

_HUBS = ("ly_band", "ly_acct", "ly_hub")  # layering's first steps: the amount bands and the hub buckets
_STORED = ("dx_ly_fb", "dx_ly_hn", "ly_hub")  # the scope's steps that make ly_hub from the stored hub buckets


def layering_scope(engine, settings: DetectSettings, table: str) -> dict[str, tuple[str, ...]]:
    """Key accounts of scatter-gather (source or sink) and gather-scatter (hub), and their payments.

    ``ly_hub`` from every payment of the context, or, when the runner made ``dx_ly_stored`` (the stored hub
    buckets, ``detect_ly_hub``, current up to the new payments), from those and the touched accounts' buckets
    counted again (``dx_ly_hn``, which the runner stores); ``queries/detect/layering_scope.sql`` for the keys (the
    touched accounts and the counterparties of an account that may have become a hub, in that bucket), for
    the two-hop paths from a key source or to a key sink (``sg_paths``, from every payment of the context:
    :func:`detect_layering` leaves out its own step) and for the payments the rest of layering reads
    (``ly_kn``: the key accounts' own that are not a hub's, and ``ly_px``: the paths' others).
    """
    stored = engine.table_exists("dx_ly_stored")  # the runner's: detect_ly_hub is current up to the new payments
    engine.execute(f"CREATE OR REPLACE TEMP VIEW dx_ly_tt AS {_touched_payments(engine)}")
    run_query(engine, "detect_layering", settings, only=_HUBS[:1] if stored else _HUBS)
    run_query(engine, "detect_layering_scope", settings, skip=() if stored else _STORED)
    engine.materialise(table, "SELECT account_id FROM ly_keys")
    cols = "txn_id, t, src_id, dst_id, amt"  # dt_tx's (queries/detect/prep.sql)
    engine.execute(f"CREATE OR REPLACE TEMP VIEW dt_tx AS SELECT {cols} FROM ly_kn UNION ALL SELECT {cols} FROM ly_px")
    for name in ("ly_hc", "ly_keys"):
        engine.execute(f'DROP TABLE IF EXISTS "{name}"')
    engine.execute("DROP VIEW IF EXISTS dx_ly_tt")
    return {"scatter_gather": ("source", "sink"), "gather_scatter": ("hub",)}


def _touched_payments(engine) -> str:
    """Where ``ly_tt`` finds the touched accounts' payments of the context: the runner's ``dt_touched`` (every payment
    of ``dt_all`` with a touched end from the one-account families' context on) when it starts at or before this
    context, so a fifth of the payments is read instead of every one (at 10 M payments, a 100 k batch: 0.72 M rows
    against 2.4 M); otherwise ``dt_tx``. Its earliest payment at or before the context's start proves that it does:
    it starts at or before its earliest payment."""
    start = f"{round((getattr(engine, 'ctx_from', EPOCH) - EPOCH) / timedelta(microseconds=1))}"
    if engine.table_exists("dt_touched"):
        first = engine.to_arrow("SELECT min(t) AS t FROM dt_touched").column(0)[0].as_py()
        if first is not None and first <= int(start):
            return f"SELECT * FROM dt_touched WHERE t >= {start}"
    return "SELECT * FROM dt_tx"
