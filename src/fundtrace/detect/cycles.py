"""Cycles: money that goes round a ring of accounts and comes back to where it started.

Two kinds, selected by the setting ``cycle_kinds`` (both by default), published as typology ``cycle``
with the kind named in the alert's sentence:

- **temporal** (as in 2SCENT): payments a1 -> a2 -> ... -> a1 at strictly increasing times, all within
  ``cycle_window_hours`` of the first, amounts changing by at most ``cycle_tolerance`` per hop. A
  SQL walk one payment further per round (``queries/detect/cycles.sql``, rounds run by :func:`_walk`)
  that keeps only walks which can still come back; past ``cycle_max_walks`` open walks it stops with
  :class:`~fundtrace.errors.TooManyWalks`.
- **static**: length-bounded simple cycles of the account-to-account graph of one window (a bucket of
  ``cycle_window_hours`` and the next), the hops in any time order. SQL picks, aggregates and trims
  the candidate edges, or prunes them around the quiet accounts (``queries/detect/cycles_static.sql``);
  :func:`bounded_simple_cycles` finds the cycles in Python on those few edges; SQL gathers the evidence
  (``queries/detect/cycles_static_alerts.sql``). A static cycle that is also a temporal cycle of the
  same window is reported once, as temporal.

Both kinds use the same candidate payments (hubs and, unless switched off, payments with no
pass-through account at either end left out), lengths ``cycle_min_len`` to ``cycle_max_len``.
A static cycle also needs ``cycle_min_quiet_share`` of its accounts to be *quiet*: no payments in the
window but the cycle's own. Ordinary people pay each other round in circles too (in the simulated
world a 3-cycle of busy personal accounts over four days; in AMLSim's normal traffic thousands of
cycles up to length 10), but their accounts are busy with other payments; in AMLSim's laundering
cycles at least half the members do nothing else in the window.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable

import pyarrow as pa

from fundtrace import queries
from fundtrace.detect.base import Detection, collect, concat, params_for
from fundtrace.detect.settings import DetectSettings
from fundtrace.errors import ConfigError, TooManyWalks

__all__ = [
    "QUERIES", "TABLES", "bounded_simple_cycles", "canonical", "detect_cycles", "static_cycles", "temporal_cycles",
]  # fmt: skip

QUERIES = ("detect_cycles", "detect_cycles_static", "detect_cycles_static_alerts", "detect_cycles_scope")  # scratch
TABLES = ("cs_found", "cs_found_edges", "cy_came_back", "cy_walk_next")  # scratch made here, besides the queries' steps
SCOPED = "cy_sc_tx"  # made by fundtrace.detect.cycle_scope: cy_tx and cy_deg are ready, cy_tx narrowed to the scope


def bounded_simple_cycles(
    edges: Iterable[tuple[Hashable, Hashable]],
    max_len: int,
    min_len: int = 2,
    *,
    quiet: set | frozenset = frozenset(),
    max_busy: int | None = None,
    need_quiet: bool = False,
) -> list[list[Hashable]]:
    """Every simple cycle of ``min_len`` to ``max_len`` edges of a directed graph, once each.

    Parameters
    ----------
    edges : iterable of (u, v)
        The directed edges; nodes must be mutually comparable. Self-loops and repeats are ignored.
    max_len, min_len : int
        Bounds on the number of edges (= accounts) of a cycle.
    quiet, max_busy : set, int, optional
        With ``max_busy``, only cycles with at most ``max_busy`` nodes outside ``quiet``.
    need_quiet : bool
        Only cycles through at least one node of ``quiet``.

    Returns
    -------
    list of list
        Each cycle as its nodes, starting at its smallest node (with ``need_quiet``, its smallest
        quiet node), in a deterministic order.

    Notes
    -----
    A depth-first search from every node ``s`` in increasing order through nodes greater than ``s``
    only, so each cycle is found once, from its smallest node. Before each search a backwards
    breadth-first search gives every node's distance back to ``s`` within ``max_len // 2`` hops (a node
    farther away counts one hop more); the search never enters a node from which ``s`` is too far to
    close a cycle in time. Half the depth bounds the deep end of the search as tightly, where its paths
    are many, and costs far less: the ball grows with every hop (AMLSim's development set replicated
    10 times, 956 k candidate edges: 8.5-11.9 s against 14.7-17.8 s to the full depth, alternating runs). With
    ``need_quiet`` only quiet nodes are roots, and the searches may pass busy nodes in any order, so
    a graph with few quiet nodes costs few searches. The work is
    bounded by the number of simple paths of length up to ``max_len`` that can still close, unlike
    NetworkX's ``simple_cycles``, which recomputes strongly connected components per node (minutes
    on a few thousand nodes with one large component; ../shared/PERFORMANCE.md lesson 6).

    Examples
    --------
    >>> bounded_simple_cycles([(1, 2), (2, 3), (3, 1), (2, 1), (3, 4), (4, 1)], max_len=3)
    [[1, 2], [1, 2, 3]]
    """
    succ: dict = defaultdict(set)
    pred: dict = defaultdict(set)
    for u, v in edges:
        if u != v:
            succ[u].add(v)
            pred[v].add(u)
    _peel(succ, pred)
    ordered = {u: sorted(vs) for u, vs in succ.items()}
    found = []
    depth = max(1, max_len // 2)
    for s in sorted(q for q in succ if q in quiet) if need_quiet else sorted(succ):
        dist, frontier = {s: 0}, [s]
        for d in range(1, depth + 1):
            nxt = []
            for v in frontier:
                for u in pred[v]:
                    if (u > s or (need_quiet and u not in quiet)) and u not in dist:
                        dist[u] = d
                        nxt.append(u)
            frontier = nxt
        if len(dist) == 1:
            continue
        limit = len(succ) if max_busy is None else max_busy
        busy = [int(s not in quiet)]  # busy nodes on the path so far, per depth
        if busy[0] > limit:
            continue
        path, on_path, stack = [s], {s}, [iter(ordered[s])]
        while stack:
            for v in stack[-1]:
                if v == s:
                    if len(path) >= min_len:
                        found.append(list(path))
                elif (
                    (v > s or (need_quiet and v not in quiet))
                    and v not in on_path
                    and len(path) + dist.get(v, depth + 1) <= max_len
                ):
                    b = busy[-1] + (v not in quiet)
                    if b > limit:
                        continue
                    busy.append(b)
                    path.append(v)
                    on_path.add(v)
                    stack.append(iter(ordered.get(v, ())))
                    break
            else:
                stack.pop()
                busy.pop()
                on_path.discard(path.pop())
    return found


def _peel(succ: dict, pred: dict) -> None:
    """Take out of ``succ`` and ``pred`` every node no cycle passes: one that nobody pays or that pays nobody, again
    and again as their neighbours lose edges. Linear in the edges; a graph with no cycle goes entirely (a chain of
    a million forwarding accounts: 76 s of searches before, one per node)."""
    queue = [n for n in {*succ, *pred} if not succ.get(n) or not pred.get(n)]
    gone = set()
    while queue:
        n = queue.pop()
        if n in gone:
            continue
        gone.add(n)
        for v in succ.pop(n, ()):
            pred[v].discard(n)
            if not pred[v]:
                queue.append(v)
        for u in pred.pop(n, ()):
            succ[u].discard(n)
            if not succ[u]:
                queue.append(u)


def canonical(accts: list) -> tuple:
    """A cycle's accounts rotated to start at the smallest (the same cycle read from any start)."""
    i = accts.index(min(accts))
    return tuple(accts[i:] + accts[:i])


def _drifts(amounts: list[float], tolerance: float) -> bool:
    """True when the hop amounts change by more than ``tolerance`` twice or more round the cycle.

    A cycle read from a suitable start has every hop within ``tolerance`` of the one before except
    the closing one (as a temporal cycle, whose first hop is not compared with its last).
    """
    if tolerance < 0:
        return False
    k = len(amounts)
    jumps = sum(abs(amounts[(i + 1) % k] - amounts[i]) > tolerance * amounts[i] + 1e-9 for i in range(k))
    return jumps > 1


def static_cycles(
    rows: list[dict], settings: DetectSettings, skip: set | None = None, quiet: set | None = None
) -> list[dict]:
    """The static cycles among candidate edges ``rows`` (w, src_id, dst_id, amt, in_first) per window.

    A cycle is kept for window ``w`` when one of its edges is paid in bucket ``w`` (else it belongs
    to the next window), its edge amounts do not drift (see :func:`_drifts`), at least
    ``cycle_min_quiet_share`` of its accounts are in ``quiet`` (pairs (w, account): no other payments
    in the window) and ``(w, accounts)`` is not in ``skip`` (found as temporal). Returns rows
    (w, accts) sorted by window and accounts.
    """
    by_window: dict[int, dict] = defaultdict(dict)
    for r in rows:
        by_window[r["w"]][(r["src_id"], r["dst_id"])] = (r["amt"], r["in_first"])
    quiet_by_window: dict[int, set] = defaultdict(set)
    for w, acct in quiet or ():
        quiet_by_window[w].add(acct)
    share, max_len = settings.cycle_min_quiet_share, settings.cycle_max_len
    # the same bound prunes the candidate edges before the search (cs_keep in queries/detect/cycles_static.sql)
    max_busy = math.floor((1 - share) * max_len + 1e-9) if share > 0 else None
    out = []
    for w in sorted(by_window):
        edges, calm = by_window[w], quiet_by_window[w]
        every = bounded_simple_cycles(
            edges, max_len, settings.cycle_min_len, quiet=calm, max_busy=max_busy, need_quiet=share > 0
        )
        for cyc in sorted(list(canonical(c)) for c in every):
            hops = [edges[(cyc[i], cyc[(i + 1) % len(cyc)])] for i in range(len(cyc))]
            if not any(first for _, first in hops) or _drifts([a for a, _ in hops], settings.cycle_tolerance):
                continue
            if share > 0 and sum(a in calm for a in cyc) < share * len(cyc) - 1e-9:
                continue
            if skip and (w, tuple(cyc)) in skip:
                continue
            out.append({"w": w, "accts": cyc})
    return out


def _kinds(settings: DetectSettings) -> set[str]:
    """The kinds to run, after checking the cycle settings (the detector also runs without ``detect.run``)."""
    problems = [(f"detect.{f}", m) for f, m in settings.validate() if f.startswith("cycle_")]
    if problems:
        raise ConfigError(problems)
    return set(settings.cycle_kinds)


def _run(engine, name: str, settings: DetectSettings, upto: str | None = None, after: str | None = None) -> str:
    """Run query ``name``'s steps (up to and including step ``upto``, those after step ``after``); return the last
    table (``after``'s when no step is left)."""
    q = queries.get(name)
    steps, names = q.steps, [n for n, _ in q.steps]
    if upto:
        steps = steps[: names.index(upto) + 1]
    if after:
        steps = steps[names.index(after) + 1 :]
    return engine.run_steps(steps, q.bind(params_for(q, settings))) if steps else after or ""


def temporal_cycles(engine, settings: DetectSettings, after: str | None = None) -> str:
    """Run ``queries/detect/cycles.sql`` (its steps after step ``after``), the walk's rounds included; return
    its alert table. Reads ``dt_tx`` and ``pt_hits``."""
    _run(engine, "detect_cycles", settings, upto="cy_closed", after=after)
    _walk(engine, settings)
    return _run(engine, "detect_cycles", settings, after="cy_extend")


def _walk(engine, settings: DetectSettings) -> None:
    """The temporal walk's later rounds: ``cy_extend`` makes each round's walks from the last round's (``cy_walk``,
    made with ``cy_closed`` by the query's own steps), and ``cy_closed`` gains those that came back.

    Raises TooManyWalks past ``cycle_max_walks`` open walks in a round, before the next round multiplies them.
    """
    q = queries.get("detect_cycles")
    sql, params = dict(q.steps), q.bind(params_for(q, settings))
    for depth in range(2, settings.cycle_max_len + 1):
        open_walks = engine.to_arrow("SELECT count(*) AS n FROM cy_walk WHERE cur <> start_acct").column(0)[0].as_py()
        if open_walks > settings.cycle_max_walks:
            raise TooManyWalks(
                f"temporal cycles: {open_walks:,} walks of {depth - 1} payments are still open, more than "
                f"cycle_max_walks ({settings.cycle_max_walks:,}): the candidate payments form a dense mesh",
                hint="lower detect.cycle_max_len or cycle_window_hours, set cycle_kinds to static, raise "
                "cycle_max_walks, or leave cycles out with --only",
            )
        if not open_walks:
            return
        engine.run_steps([("cy_walk_next", sql["cy_extend"])], params)
        engine.execute("DROP TABLE cy_walk")
        engine.execute("ALTER TABLE cy_walk_next RENAME TO cy_walk")
        engine.run_steps([("cy_came_back", sql["cy_closed"])], params)
        engine.execute("INSERT INTO cy_closed SELECT * FROM cy_came_back")


def detect_cycles(engine, settings: DetectSettings) -> Detection:
    """Temporal and/or static cycles (``cycle_kinds``); see the module docstring.

    Reads ``dt_tx`` and ``pt_hits``, which the caller prepares
    (:func:`fundtrace.detect.sqlfamilies.detect_cycles` does). In an incremental run the family's
    scope (:func:`fundtrace.detect.cycle_scope.cycles_scope`) has already made the candidate payments
    ``cy_tx``, narrowed to the cycles through the touched accounts, and their degrees ``cy_deg``
    (``SCOPED`` then exists): the search starts from them.
    """
    kinds = _kinds(settings)
    width = round(settings.cycle_window_hours * 3600e6)
    after = "cy_tx" if engine.table_exists(SCOPED) else None
    if "temporal" in kinds:
        found = [collect(engine, temporal_cycles(engine, settings, after))]
        temporal = engine.to_arrow("SELECT start_t, accts FROM cy_found").to_pylist()
    else:
        _run(engine, "detect_cycles", settings, upto="cy_tx", after=after)  # only the candidate payments
        found, temporal = [], []
    if "static" in kinds:
        # with a quiet share the edges are pruned around the quiet accounts, else trimmed (cycles_static.sql)
        quiet_share = settings.cycle_min_quiet_share > 0
        edges = "cs_keep" if quiet_share else "cs_cand"
        q = queries.get("detect_cycles_static")
        steps = (
            "cs_edge",
            "cs_win",
            *(("cs_quiet", "cs_live", "cs_keep") if quiet_share else ("cs_trim1", "cs_trim2", "cs_cand")),
        )
        engine.run_steps([s for s in q.steps if s[0] in steps], q.bind(params_for(q, settings)))
        rows = engine.to_arrow(f"SELECT w, src_id, dst_id, amt, in_first FROM {edges}").to_pylist()
        quiet = None
        if quiet_share:
            quiet = {(r["w"], r["acct"]) for r in engine.to_arrow("SELECT w, acct FROM cs_quiet").to_pylist()}
        skip = {(r["start_t"] // width, canonical(r["accts"][:-1])) for r in temporal}
        cycles = static_cycles(rows, settings, skip, quiet)
        akeys = [f"static:{c['w']}:{','.join(map(str, c['accts']))}" for c in cycles]
        engine.register(
            "cs_found_in",
            pa.table({
                "cid": pa.array(range(len(cycles)), pa.int64()),
                "w": pa.array([c["w"] for c in cycles], pa.int64()),
                "length": pa.array([len(c["accts"]) for c in cycles], pa.int32()),
                "akey": pa.array(akeys, pa.string()),
            }),
        )  # fmt: skip
        k = [(i, c["w"], c["accts"][j], c["accts"][(j + 1) % len(c["accts"])])
             for i, c in enumerate(cycles) for j in range(len(c["accts"]))]  # fmt: skip
        engine.register(
            "cs_found_edges_in",
            pa.table({
                "cid": pa.array([e[0] for e in k], pa.int64()),
                "w": pa.array([e[1] for e in k], pa.int64()),
                "src_id": pa.array([e[2] for e in k], pa.uint64()),
                "dst_id": pa.array([e[3] for e in k], pa.uint64()),
            }),
        )  # fmt: skip
        engine.materialise("cs_found", "SELECT * FROM cs_found_in")
        engine.materialise("cs_found_edges", "SELECT * FROM cs_found_edges_in")
        found.append(collect(engine, _run(engine, "detect_cycles_static_alerts", settings)))
    return concat(found)
