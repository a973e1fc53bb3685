"""Connected components on the engine: min-label hooking with pointer jumping, as plain SQL steps.

The graph is an edge table with two integer columns ``a`` and ``b`` (undirected). The result is a
table ``(node, component)`` in which every node carries the smallest node id of its component.

Each round works on a *contracted* graph whose nodes are the current representatives:

1. **hook** -- every representative with a smaller neighbour points to its smallest neighbour
   (``parent(v) = min(u : u ~ v, u < v)``); parents strictly decrease, so there are no cycles;
2. **jump** -- pointer jumping (``parent(v) = parent(parent(v))``) until every tree is a star;
   a chain of depth k needs about log2(k) jumps;
3. **relabel** -- every node's label moves to its representative's root;
4. **contract** -- edges are replaced by the distinct pairs of roots they join; pairs whose ends
   fell into the same tree disappear. The exit query is "no edge left".

Every representative with an edge either hooks onto a smaller one or is a local minimum that some
neighbour hooks onto, so the number of representatives per component at least halves each round:
at most ceil(log2(n)) rounds, usually far fewer (../shared/PERFORMANCE.md lesson 9: 8 rounds on a
2.3 M-node graph, where label propagation to a fixed point needed more than 124).

The SQL is the portable subset (joins, GROUP BY, least/greatest, coalesce); table names are the
only text put into it, through :func:`_ident`, never values.
"""

from __future__ import annotations

import logging
import math
import re

from fundtrace.engine.base import Engine
from fundtrace.errors import FundtraceError, UsageError

__all__ = ["ComponentsDidNotConverge", "connected_components"]

log = logging.getLogger("fundtrace.detect.components")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ComponentsDidNotConverge(FundtraceError):
    """The hooking loop hit its iteration cap with edges still joining different trees."""


def _ident(name: str) -> str:
    """Quote a table name; only plain identifiers are accepted."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"not a plain table name: {name!r}")
    return f'"{name}"'


def connected_components(engine: Engine, edges_table: str, out_table: str, *, max_iterations: int = 50) -> int:
    """Label every node of an undirected graph with the smallest node id of its component.

    Parameters
    ----------
    engine : Engine
        Runs the SQL; the edge table must be visible to it.
    edges_table : str
        Table with integer columns ``a`` and ``b``, one row per undirected edge. Self-loops and
        duplicate edges are allowed; a self-loop ``(v, v)`` or a row with ``b`` NULL declares an
        isolated node ``v``.
    out_table : str
        Name of the temporary table to create (replaced if it exists) with columns ``node`` and
        ``component`` (the minimum node id of the component), one row per node.
    max_iterations : int
        Cap on hooking rounds; reaching it raises :class:`ComponentsDidNotConverge`. A graph of
        n nodes needs at most ceil(log2(n)) rounds, so 50 is never reached by a correct run.

    Returns
    -------
    int
        The number of hooking rounds used (0 for a graph without edges between distinct nodes).

    Notes
    -----
    Each round costs one hook, a few jumps and one contraction, all on the shrinking contracted
    graph, plus one pass over the node labels. Intermediate tables are named
    ``<out_table>__cc_*`` and dropped at the end.

    Examples
    --------
    >>> import duckdb
    >>> from fundtrace.engine import DuckDBEngine
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE e AS SELECT * FROM (VALUES (1, 2), (2, 3), (7, 5), (9, 9)) t(a, b)")
    >>> connected_components(DuckDBEngine(con), "e", "cc")
    1
    >>> con.sql("SELECT node, component FROM cc ORDER BY node").fetchall()
    [(1, 1), (2, 1), (3, 1), (5, 5), (7, 5), (9, 9)]

    References
    ----------
    Y. Shiloach and U. Vishkin, "An O(log n) parallel connectivity algorithm", J. Algorithms 3 (1982).
    """
    if not isinstance(max_iterations, int) or max_iterations < 1:
        raise UsageError(f"max_iterations must be a whole number >= 1, got {max_iterations!r}")
    edges = _ident(edges_table)
    _ident(out_table)
    prefix = out_table + "__cc_"
    # Two tables per kind of state, used in turn, so no step copies a table into itself.
    names = {kind: [f"{prefix}{kind}{i}" for i in (0, 1)] for kind in ("labels", "edges", "parent")}
    cur = {kind: 0 for kind in names}

    def now(kind: str) -> str:
        return names[kind][cur[kind]]

    def write(kind: str, sql: str) -> None:
        """Materialise the next version of ``kind`` from ``sql`` (which may read the current one)."""
        cur[kind] ^= 1
        engine.materialise(now(kind), sql)

    rounds = 0
    try:
        write(
            "labels",
            f"SELECT node, node AS component FROM ("
            f"SELECT a AS node FROM {edges} WHERE a IS NOT NULL "
            f"UNION SELECT b AS node FROM {edges} WHERE b IS NOT NULL) AS nodes",
        )
        write(
            "edges",
            f"SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b FROM {edges} "
            f"WHERE a IS NOT NULL AND b IS NOT NULL AND a <> b",
        )
        remaining = engine.count(now("edges"))
        max_jumps = max(2, math.ceil(math.log2(max(engine.count(now("labels")), 2))) + 2)
        while remaining > 0:
            if rounds >= max_iterations:
                raise ComponentsDidNotConverge(
                    f"connected components of {edges_table} did not converge in {max_iterations} rounds "
                    f"({remaining:,} edges still join different trees)",
                    hint="raise max_iterations; a correct run needs at most log2(nodes) rounds",
                )
            rounds += 1
            e = _ident(now("edges"))
            # hook: each representative points to its smallest neighbour (edges are stored a < b).
            write("parent", f"SELECT b AS node, min(a) AS parent, 1 AS moved FROM {e} GROUP BY b")
            jumps = 0
            while True:
                # jump: parent(v) = parent(parent(v)); a root (absent from the table) stays put.
                p = _ident(now("parent"))
                write(
                    "parent",
                    f"SELECT c.node, coalesce(g.parent, c.parent) AS parent, "
                    f"CASE WHEN g.parent IS NULL THEN 0 ELSE 1 END AS moved "
                    f"FROM {p} AS c LEFT JOIN {p} AS g ON c.parent = g.node",
                )
                jumps += 1
                moved = engine.to_arrow(f"SELECT coalesce(sum(moved), 0) AS n FROM {_ident(now('parent'))}")
                if moved.column(0)[0].as_py() == 0:
                    break
                if jumps >= max_jumps:  # depth <= nodes, so log2(nodes) jumps always suffice
                    raise ComponentsDidNotConverge(
                        f"pointer jumping on {edges_table} did not reach stars in {max_jumps} steps"
                    )
            p = _ident(now("parent"))
            # relabel every node whose representative hooked this round
            write(
                "labels",
                f"SELECT l.node, coalesce(h.parent, l.component) AS component "
                f"FROM {_ident(now('labels'))} AS l LEFT JOIN {p} AS h ON l.component = h.node",
            )
            # contract: edges between the new roots; edges inside one tree disappear (exit query).
            write(
                "edges",
                f"SELECT DISTINCT least(x, y) AS a, greatest(x, y) AS b FROM ("
                f"SELECT coalesce(ha.parent, e.a) AS x, coalesce(hb.parent, e.b) AS y FROM {e} AS e "
                f"LEFT JOIN {p} AS ha ON e.a = ha.node LEFT JOIN {p} AS hb ON e.b = hb.node) AS c WHERE x <> y",
            )
            remaining = engine.count(now("edges"))
            log.debug("components round %d: %d jumps, %d contracted edges left", rounds, jumps, remaining)
        engine.materialise(out_table, f"SELECT node, component FROM {_ident(now('labels'))}")
    finally:
        for pair in names.values():
            for name in pair:
                engine.execute(f"DROP TABLE IF EXISTS {_ident(name)}")
    log.info("components of %s: %d rounds", edges_table, rounds)
    return rounds
