"""What an incremental run of the layering and bipartite families recomputes (their ``Family.scope``).

A scope is called with ``dt_tx`` a view of every payment of the family's context, ``pt_hits`` complete and
``dx_touched`` the accounts new payments touched. It makes the temp table of key accounts, narrows ``dt_tx``
to the payments an exact recomputation of the keyed alerts reads, and returns the roles that key an alert
per typology: the stored alerts from the family's cutoff with a key account in one of those roles are
replaced by those found on the narrowed payments, every other one is kept (see ``fundtrace.detect``).

Both rest on two facts about the payments the detectors read (``dt_tx``): every payment a new batch adds
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
Bipartite: see :func:`bipartite_scope`.
"""

from __future__ import annotations

import networkx as nx
import pyarrow as pa

from fundtrace.detect.settings import DetectSettings
from fundtrace.detect.sqlfamilies import run_query

__all__ = ["bipartite_scope", "layering_scope"]

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
    run_query(engine, "detect_layering", settings, only=_HUBS[:1] if stored else _HUBS)
    run_query(engine, "detect_layering_scope", settings, skip=() if stored else _STORED)
    engine.materialise(table, "SELECT account_id FROM ly_keys")
    cols = "txn_id, t, src_id, dst_id, amt"  # dt_tx's (queries/detect/prep.sql)
    engine.execute(f"CREATE OR REPLACE TEMP VIEW dt_tx AS SELECT {cols} FROM ly_kn UNION ALL SELECT {cols} FROM ly_px")
    for name in ("ly_hc", "ly_keys"):
        engine.execute(f'DROP TABLE IF EXISTS "{name}"')
    return {"scatter_gather": ("source", "sink"), "gather_scatter": ("hub",)}


def bipartite_scope(engine, settings: DetectSettings, table: str) -> dict[str, tuple[str, ...]]:
    """Key accounts of bipartite alerts (source or sink), and their payments: see the notes.

    Notes
    -----
    A window's candidate graph joins accounts that pass money through near it, by payments between them
    (neither end a hub in the payment's bucket); it is trimmed by degrees and its dense components are the
    alerts, so an alert depends on the whole component of the untrimmed graph it lies in. Every edge new
    payments change has a touched end: the payments, hub buckets and pass-through episodes that changed
    are touched accounts'. ``queries/detect/bipartite_scope.sql`` builds a graph holding every window's
    graph before and after (touched accounts pass money through by their old or new episodes and are never
    hubs); the keys are the touched accounts and every account of a component, over all windows of the
    context, that holds one. A component without a touched account is the same before and after, and so
    are the alerts in it; every payment between two keys is kept, so the components of the keys' alerts
    are whole. Hub buckets come from every payment of the context (layering's when it shares the context).
    """
    if engine.table_exists("ly_hub"):  # layering's, over the same context: detect_bipartite reuses them too
        engine.materialise("bp_hub", "SELECT acct, b FROM ly_hub")
    else:
        run_query(engine, "detect_bipartite_candidates", settings, only=("bp_busy", "bp_hub"))
    run_query(engine, "detect_bipartite_scope", settings)
    edges = engine.to_arrow("SELECT src, dst FROM bp_sx")
    g = nx.Graph()
    g.add_edges_from(zip(edges["src"].to_pylist(), edges["dst"].to_pylist(), strict=True))
    engine.register("bp_nodes", pa.table({"account_id": pa.array(list(g.nodes), pa.uint64())}))
    seeds = engine.to_arrow("SELECT account_id FROM bp_nodes WHERE account_id IN (SELECT account_id FROM dx_touched)")
    keys = set()
    for seed in seeds["account_id"].to_pylist():
        if seed not in keys:
            keys |= nx.node_connected_component(g, seed)
    engine.register("bp_keyed", pa.table({"account_id": pa.array(sorted(keys), pa.uint64())}))
    engine.materialise(table, "SELECT account_id FROM dx_touched UNION SELECT account_id FROM bp_keyed")
    engine.materialise(
        "bp_ntx",
        f"SELECT * FROM dt_tx WHERE src_id IN (SELECT account_id FROM {table}) "
        f"AND dst_id IN (SELECT account_id FROM {table})",
    )
    engine.execute("CREATE OR REPLACE TEMP VIEW dt_tx AS SELECT * FROM bp_ntx")
    for name in ("bp_nodes", "bp_keyed"):
        engine.con.unregister(name)
    for name in ("bp_ep", "bp_sx"):
        engine.execute(f'DROP TABLE IF EXISTS "{name}"')
    return {"bipartite": ("source", "sink")}
