"""Cycles: the bounded search and the static (any time order) kind against NetworkX, and pass/fail cases.

- :func:`bounded_simple_cycles` against ``nx.simple_cycles(G, length_bound=k)`` on seeded random graphs;
- the static pipeline (SQL candidates -> Python search -> SQL evidence) against NetworkX on random
  payments that fall in one window;
- temporal cycles (``cy_found``) with hubs left out against a brute-force enumeration of
  time-respecting payment sequences;
- table-driven cases through ``fundtrace.detect.run``.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import networkx as nx
import pytest

from fundtrace.detect import DetectSettings, run
from fundtrace.detect.base import alert_id
from fundtrace.detect.cycles import _peel, bounded_simple_cycles, canonical, detect_cycles
from fundtrace.detect.sqlfamilies import prepare, run_query
from fundtrace.engine import DuckDBEngine
from fundtrace.errors import ConfigError
from fundtrace.workspace import Workspace
from test_detect_helpers import T0, fill, full_state, incremental_state, snapshot


def _random_edges(seed: int, n: int, m: int) -> set[tuple[int, int]]:
    rng = random.Random(seed)
    return {(rng.randrange(n), rng.randrange(n)) for _ in range(m)}


def _nx_cycles(edges, max_len: int, min_len: int) -> list[tuple]:
    g = nx.DiGraph([(u, v) for u, v in edges if u != v])
    return sorted(canonical(c) for c in nx.simple_cycles(g, length_bound=max_len) if len(c) >= min_len)


@pytest.mark.parametrize("seed", range(40))
def test_bounded_simple_cycles_match_networkx(seed):
    rng = random.Random(1000 + seed)
    n = rng.randrange(3, 16)
    edges = _random_edges(seed, n, rng.randrange(n, 4 * n))
    max_len, min_len = rng.randrange(2, 8), rng.randrange(2, 4)
    got = bounded_simple_cycles(edges, max_len, min_len)
    assert sorted(map(tuple, got)) == _nx_cycles(edges, max_len, min_len)
    assert len(got) == len({tuple(c) for c in got})  # each cycle once
    assert seed > 0 or got  # the first graph does have cycles


@pytest.mark.parametrize("seed", range(15))
def test_busy_limit_equals_filtering_every_cycle(seed):
    rng = random.Random(seed)
    edges = _random_edges(seed, 12, 40)
    quiet = {v for v in range(12) if rng.random() < 0.5}
    every = bounded_simple_cycles(edges, 6)
    for limit in range(4):
        got = bounded_simple_cycles(edges, 6, quiet=quiet, max_busy=limit)
        assert got == [c for c in every if sum(v not in quiet for v in c) <= limit]
        rooted = bounded_simple_cycles(edges, 6, quiet=quiet, max_busy=limit, need_quiet=True)
        assert sorted(map(canonical, rooted)) == sorted(canonical(c) for c in got if set(c) & quiet)
        assert all(c[0] == min(set(c) & quiet) for c in rooted)


def _engine(tmp_path, rows, settings):
    ws = Workspace(tmp_path / "ws.duckdb")
    fill(ws, rows)
    engine = DuckDBEngine(ws.con)
    prepare(engine, settings)
    run_query(engine, "detect_pass_through", settings)
    return ws, engine


def _ids(ws) -> dict[int, str]:
    return dict(
        ws.con.execute(
            "SELECT src_id, src_account FROM transactions UNION SELECT dst_id, dst_account FROM transactions"
        ).fetchall()
    )


@pytest.mark.parametrize("seed", range(6))
def test_static_cycles_match_networkx(tmp_path, seed):
    """Payments in random time order within one bucket: the static kind finds every simple cycle."""
    rng = random.Random(seed)
    edges = sorted(_random_edges(seed, 9, 26))
    rows = [(f"t{i}", rng.randrange(600), f"a{u}", f"a{v}", rng.uniform(100, 900)) for i, (u, v) in enumerate(edges)]
    rows = [r for r in rows if r[2] != r[3]]
    settings = DetectSettings(
        cycle_kinds=("static",), cycle_window_hours=24 * 365, cycle_max_len=5, cycle_min_len=2,
        cycle_tolerance=-1, cycle_max_degree=1e9, cycle_pass_through_only=False, cycle_min_quiet_share=0.0,
    )  # fmt: skip
    ws, engine = _engine(tmp_path, rows, settings)
    det = detect_cycles(engine, settings)
    names = _ids(ws)
    cycles = {
        alert_id("cycle", akey): [names[int(a)] for a in akey.split(":")[2].split(",")]
        for (akey,) in ws.con.execute("SELECT akey FROM cs_found").fetchall()
    }
    expected = _nx_cycles([(f"a{u}", f"a{v}") for u, v in edges], 5, 2)
    assert sorted(canonical(c) for c in cycles.values()) == expected
    assert sorted(det.alerts["alert_id"].to_pylist()) == sorted(cycles)
    assert seed > 0 or expected
    # the evidence of each alert is exactly the payments on its edges
    by_edge = {(r[2], r[3]): r[0] for r in rows}
    evidence = defaultdict(list)
    for e in det.evidence.to_pylist():
        evidence[e["alert_id"]].append(e["txn_id"])
    for aid, summary in zip(det.alerts["alert_id"].to_pylist(), det.alerts["summary"].to_pylist(), strict=True):
        assert "static cycle" in summary
        c = cycles[aid]
        assert sorted(evidence[aid]) == sorted(by_edge[(c[i], c[(i + 1) % len(c)])] for i in range(len(c)))
    ws.close()


@pytest.mark.parametrize("seed", range(12))
def test_static_cycles_with_a_quiet_share_match_networkx(tmp_path, seed):
    """A busy random core with quiet accounts between core accounts (each paid once by one and paying one once, alone,
    two in a row or a longer run back to the same busy account), and a ring of quiet accounts only:
    with a quiet share the static kind finds exactly NetworkX's cycles with that share of quiet accounts
    (the candidate edges are pruned to those such a cycle can pass before the search)."""
    rng = random.Random(500 + seed)
    core = sorted(_random_edges(seed, 10, 18))
    pipes = [(rng.randrange(10), rng.randrange(10)) for _ in range(6)]
    edges = [(f"a{u}", f"a{v}") for u, v in core if u != v]
    for i, (u, v) in enumerate(pipes):  # one quiet account between u and v, or two in a row
        path = [f"a{u}", f"q{i}", *([f"r{i}"] if i % 2 else []), f"a{v}"]
        edges += list(itertools.pairwise(path))
    ring = [f"z{i}" for i in range(2 + seed % 5)]  # a ring of quiet accounts only, up to cycle_max_len of them
    loop = ["b0", *(f"x{i}" for i in range(seed % 7)), "b0"]  # quiet accounts from a busy one back to it
    edges += [*itertools.pairwise([*ring, ring[0]]), *itertools.pairwise(loop), ("b0", "b1")]
    rows = [(f"t{i}", rng.randrange(600), u, v, rng.uniform(100, 900)) for i, (u, v) in enumerate(edges)]
    share, max_len = rng.choice([0.25, 0.34, 0.5]), 6
    settings = DetectSettings(
        cycle_kinds=("static",), cycle_window_hours=24 * 365, cycle_max_len=max_len, cycle_min_len=2,
        cycle_tolerance=-1, cycle_max_degree=1e9, cycle_pass_through_only=False, cycle_min_quiet_share=share,
    )  # fmt: skip
    ws, engine = _engine(tmp_path, rows, settings)
    detect_cycles(engine, settings)
    names = _ids(ws)
    got = sorted(
        canonical([names[int(a)] for a in akey.split(":")[2].split(",")])
        for (akey,) in ws.con.execute("SELECT akey FROM cs_found").fetchall()
    )
    g = nx.DiGraph(edges)
    quiet = {v for v in g if g.in_degree(v) == 1 and g.out_degree(v) == 1}
    expected = [c for c in _nx_cycles(edges, max_len, 2) if sum(v in quiet for v in c) >= share * len(c) - 1e-9]
    assert got == expected
    assert seed > 0 or any(sum(v in quiet for v in c) < len(c) for c in expected)  # busy accounts on some cycles
    ws.close()


def _temporal_brute_force(rows, window_min, max_len, min_len, tolerance, max_degree, bucket_min):
    """Every time-respecting payment cycle, by extending payment sequences one payment at a time."""
    deg = Counter()
    for _, t, s, d, _ in rows:
        deg[(s, t // bucket_min)] += 1
        deg[(d, t // bucket_min)] += 1
    pays = [
        r
        for r in rows
        if deg[(r[2], r[1] // bucket_min)] <= max_degree and deg[(r[3], r[1] // bucket_min)] <= max_degree
    ]
    out_of = defaultdict(list)
    for p in pays:
        out_of[p[2]].append(p)
    found = set()

    def extend(seq, accts):
        last = seq[-1]
        for p in out_of[last[3]]:
            if p[1] <= last[1] or p[1] > seq[0][1] + window_min:
                continue
            if tolerance >= 0 and abs(p[4] - last[4]) > tolerance * last[4] + 1e-9:
                continue
            if p[3] == seq[0][2]:
                if len(seq) + 1 >= min_len:
                    found.add(tuple(x[0] for x in [*seq, p]))
            elif p[3] not in accts and len(seq) + 1 < max_len:
                extend([*seq, p], accts | {p[3]})

    for p in pays:
        extend([p], {p[2], p[3]})
    return found


@pytest.mark.parametrize("seed", range(5))
def test_temporal_cycles_match_brute_force_with_hubs(tmp_path, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(90):
        src, dst = rng.sample(range(9), 2)
        rows.append((f"t{i:03d}", rng.randrange(4 * 1440), f"a{src}", f"a{dst}", round(rng.uniform(900, 1100), 2)))
    settings = DetectSettings(
        cycle_kinds=("temporal",), cycle_window_hours=24, cycle_max_len=4, cycle_min_len=2,
        cycle_tolerance=0.1, cycle_max_degree=14, cycle_pass_through_only=False,
    )  # fmt: skip
    ws, engine = _engine(tmp_path, rows, settings)
    detect_cycles(engine, settings)
    got = {tuple(r[0]) for r in ws.con.execute("SELECT txns FROM cy_found").fetchall()}
    epoch_min = (T0 - datetime(1970, 1, 1)) // timedelta(minutes=1)  # SQL buckets count from the Unix epoch
    shifted = [(txn, t + epoch_min, s, d, a) for txn, t, s, d, a in rows]
    expected = _temporal_brute_force(shifted, 1440, 4, 2, 0.1, 14, 1440)
    assert got == expected
    assert expected or seed > 0
    ws.close()


@pytest.mark.parametrize(("setting", "value"), [("cycle_kinds", ("spiral",)), ("cycle_kinds", ()),
                                                ("cycle_min_quiet_share", 1.5)])  # fmt: skip
def test_bad_cycle_settings_are_config_errors(tmp_path, setting, value):
    settings = DetectSettings(**{setting: value})
    ws, engine = _engine(tmp_path, [("1", 0, "A", "B", 100.0)], settings)
    with pytest.raises(ConfigError, match=setting):
        detect_cycles(engine, settings)
    ws.close()


# --- table-driven cases: (name, payments, settings, expected number of cycle alerts, kind) ---------------------
RING = [("1", 0, "A", "B", 1000), ("2", 60, "B", "C", 990), ("3", 120, "C", "D", 980), ("4", 180, "D", "A", 970)]
SHUFFLED = [("1", 180, "A", "B", 1000), ("2", 0, "B", "C", 990), ("3", 120, "C", "D", 980), ("4", 60, "D", "A", 970)]
HUB = [(f"h{i}", 5 + i, "C", f"x{i}", 50) for i in range(70)]  # C makes 70 other payments: a hub
STATIC = {"cycle_kinds": ("static",), "corroborate": ("pass_through",)}
BOTH = {"cycle_kinds": ("temporal", "static"), "corroborate": ("pass_through",)}
CASES = [
    ("a ring in time order is one temporal alert, not also a static one", RING, BOTH, 1, "in time order"),
    ("a ring out of time order is a static cycle", SHUFFLED, STATIC, 1, "static cycle"),
    ("a ring out of time order is no temporal cycle", SHUFFLED, BOTH | {"cycle_kinds": ("temporal",)}, 0, None),
    ("static through a hub is skipped", SHUFFLED + HUB, STATIC, 0, None),
    ("temporal through a hub is skipped", RING + HUB, BOTH, 0, None),
    ("static through a hub is found when hubs are allowed", SHUFFLED + HUB, STATIC | {"cycle_max_degree": 100}, 1,
     "static cycle"),
    ("too long for cycle_max_len", SHUFFLED, STATIC | {"cycle_max_len": 3}, 0, None),
    ("too slow: spread over more than two buckets", [(t, m * 80, s, d, a) for t, m, s, d, a in SHUFFLED], STATIC,
     0, None),
    ("amounts drifting twice round the ring", [("1", 180, "A", "B", 1000), ("2", 0, "B", "C", 400),
                                                ("3", 120, "C", "D", 1000), ("4", 60, "D", "A", 400)], STATIC, 0, None),
    ("one jump round the ring is the closing hop", [("1", 180, "A", "B", 1000), ("2", 0, "B", "C", 900),
                                                     ("3", 120, "C", "D", 810), ("4", 60, "D", "A", 729)], STATIC,
     1, "static cycle"),
    ("amounts not compared when the tolerance is negative", [("1", 180, "A", "B", 1000), ("2", 0, "B", "C", 400),
                                                             ("3", 120, "C", "D", 1000), ("4", 60, "D", "A", 400)],
     STATIC | {"cycle_tolerance": -1.0}, 1, "static cycle"),
    ("two accounts paying back and forth are no cycle", [("1", 0, "A", "B", 1000), ("2", 60, "B", "A", 990)], BOTH,
     0, None),
    ("busy members: quiet share not reached", SHUFFLED + [("o1", 10, "A", "z1", 5), ("o2", 11, "z2", "B", 5),
                                                          ("o3", 12, "C", "z3", 5)], STATIC, 0, None),
    ("half the members quiet", SHUFFLED + [("o1", 10, "A", "z1", 5), ("o2", 11, "z2", "B", 5)], STATIC, 1,
     "static cycle"),
    ("busy members allowed without a quiet share", SHUFFLED + [("o1", 10, "A", "z1", 5), ("o2", 11, "z2", "B", 5),
                                                               ("o3", 12, "C", "z3", 5)],
     STATIC | {"cycle_min_quiet_share": 0.0}, 1, "static cycle"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rows", "settings", "expected", "kind"), CASES, ids=[c[0] for c in CASES])
def test_cycle_case(tmp_path, name, rows, settings, expected, kind):
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows)
        s = DetectSettings(**({"cycle_pass_through_only": False} | settings))
        run(ws, s, only=["cycle"], full=True)
        found = ws.con.execute("SELECT summary FROM alerts WHERE typology = 'cycle'").fetchall()
        members = {r[0] for r in ws.con.execute("SELECT DISTINCT account FROM alert_members").fetchall()}
    assert len(found) == expected, found
    if expected:
        assert kind in found[0][0]
        assert members == {"A", "B", "C", "D"}


def test_static_cycles_incremental_equals_full(tmp_path):
    """Static rings out of time order on both sides of a batch boundary: incremental == full rerun."""
    rng = random.Random(5)
    rows = []
    for p in range(16):  # a 4-ring every 18 h, its hops in shuffled order within 10 h
        t0 = p * 18 * 60
        for h, dt in enumerate(rng.sample(range(0, 600, 60), 4)):
            rows.append((f"r{p}-{h}", t0 + dt, f"p{p}a{h}", f"p{p}a{(h + 1) % 4}", 1000 - 10 * h))
    for n in range(400):  # busy background traffic among 30 accounts, also with cycles of its own
        s, d = rng.sample(range(30), 2)
        rows.append((f"n{n}", rng.randrange(16 * 18 * 60), f"x{s}", f"x{d}", rng.uniform(100, 2000)))
    cut = 8 * 18 * 60 + 300  # inside the ninth ring
    settings = DetectSettings(cycle_kinds=("static",), cycle_window_hours=12, cycle_pass_through_only=False,
                              corroborate=("pass_through",), dwell_hours=6)  # fmt: skip
    first, second = [r for r in rows if r[1] < cut], [r for r in rows if r[1] >= cut]
    got, inc = incremental_state(tmp_path / "inc.duckdb", [first, second], settings, only=["cycle"])
    expected = full_state(tmp_path / "full.duckdb", [first, second], settings, only=["cycle"])
    assert inc["mode"] == "incremental"
    assert got == expected
    rings = {m[2].split("a")[0] for m in expected[1]}
    assert len(rings) == 16 and len(expected[0]) == 16  # every ring once; the busy background raises nothing


def test_cycle_detector_releases_its_scratch_tables(tmp_path):
    from fundtrace.detect.sqlfamilies import detect_cycles as detect_and_release

    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, SHUFFLED)
        engine = DuckDBEngine(ws.con)
        settings = DetectSettings(cycle_pass_through_only=False)
        found = detect_and_release(engine, settings)
        temp = {r[0] for r in ws.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert found.alerts.num_rows == 1
    assert {"dt_tx", "pt_hits"} <= temp and not {t for t in temp if t.startswith(("cy_", "cs_"))}


def test_pass_through_is_judged_at_the_payment_not_anywhere_in_history(tmp_path):
    """Ring members that passed money through nine days earlier do not make a ring of unbalanced payments
    a candidate: the episode must span the payment, so an incremental run (which sees only a context
    window) equals a full one."""
    rows = []
    for i in range(4):  # day 0: every member passes money through
        rows += [(f"e{i}a", 100 + i, f"v{i}", f"P{i}", 1000.0), (f"e{i}b", 160 + i, f"P{i}", f"w{i}", 990.0)]
    filler = [(f"f{k}", 300 + 700 * k, f"n{k % 7}", f"n{(k + 3) % 7}", 50.0) for k in range(17)]
    ring = [(f"r{i}", 9 * 1440 + 30 * i, f"P{i}", f"P{(i + 1) % 4}", 2000.0 if i % 2 else 500.0) for i in range(4)]
    settings = DetectSettings(dwell_hours=6, cycle_window_hours=12, cycle_tolerance=-1.0, cycle_min_quiet_share=0.0,
                              corroborate=("pass_through",))  # fmt: skip
    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, rows + filler, batch_id=1)
        run(ws, settings, only=["pass_through", "cycle"])
        fill(ws, ring, batch_id=2)
        assert run(ws, settings, only=["pass_through", "cycle"])["mode"] == "incremental"
        got = snapshot(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, rows + filler, batch_id=1)
        fill(ws, ring, batch_id=2)
        full = run(ws, settings, only=["pass_through", "cycle"], full=True)
        expected = snapshot(ws)
        raw = dict(ws.con.execute("SELECT typology, count(*) FROM detect_raw_alerts GROUP BY 1").fetchall())
    assert raw.get("pass_through", 0) == 4 and "cycle" not in raw and "cycle" not in full["alerts"]
    assert got == expected


def test_nodes_on_no_cycle_are_peeled_before_the_search():
    """A long chain of forwarding accounts feeding a ring and leaving it: only the ring's nodes are searched."""
    edges = [(i, i + 1) for i in range(1000)] + [(1000, 2000), (2000, 2001), (2001, 1000), (2001, 3000)]
    succ, pred = defaultdict(set), defaultdict(set)
    for u, v in edges:
        succ[u].add(v)
        pred[v].add(u)
    _peel(succ, pred)
    assert {u for u, vs in succ.items() if vs} == {1000, 2000, 2001}
    assert bounded_simple_cycles(edges, max_len=6) == [[1000, 2000, 2001]]
