"""connected_components (SQL, on the engine) against networkx.connected_components on seeded graphs."""

from __future__ import annotations

import random

import duckdb
import networkx as nx
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrace.detect.components import ComponentsDidNotConverge, connected_components
from fundtrace.engine import DuckDBEngine
from fundtrace.errors import UsageError


def run(edges: list[tuple[int, int | None]], *, max_iterations: int = 50) -> tuple[dict[int, int], int]:
    con = duckdb.connect()
    frame = pa.table(
        {"a": pa.array([a for a, _ in edges], pa.int64()), "b": pa.array([b for _, b in edges], pa.int64())}
    )
    engine = DuckDBEngine(con)
    engine.register("frame", frame)
    con.execute("CREATE TABLE edges AS SELECT * FROM frame").fetchall()
    rounds = connected_components(engine, "edges", "cc", max_iterations=max_iterations)
    labels = dict(con.execute("SELECT node, component FROM cc").fetchall())
    leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'cc__cc_%'").fetchall()
    assert leftovers[0][0] == 0, "intermediate tables must be dropped"
    return labels, rounds


def oracle(edges: list[tuple[int, int | None]]) -> dict[int, int]:
    g = nx.Graph()
    for a, b in edges:
        g.add_node(a)
        if b is not None:
            g.add_edge(a, b)
    return {node: low for comp in nx.connected_components(g) for low in [min(comp)] for node in comp}


def random_graph(seed: int, n: int, m: int, *, chain: bool = False) -> list[tuple[int, int | None]]:
    rng = random.Random(seed)
    ids = rng.sample(range(1, 50 * n + 1), n)  # sparse, unordered ids
    edges: list[tuple[int, int | None]] = []
    if chain:  # long paths with shuffled ids: the worst case for hooking depth
        for start in range(0, n - 1, max(2, n // 3)):
            path = ids[start : start + max(2, n // 3)]
            edges += list(zip(path, path[1:], strict=False))
    edges += [(rng.choice(ids), rng.choice(ids)) for _ in range(m)]
    edges += [(v, v) for v in rng.sample(ids, max(1, n // 20))]  # self-loops, some on isolated nodes
    edges += [(v, None) for v in rng.sample(ids, max(1, n // 20))]  # declared isolated nodes
    edges += rng.sample(edges, len(edges) // 5)  # duplicates
    edges += [(b, a) for a, b in rng.sample(edges, len(edges) // 5) if b is not None]  # reversed duplicates
    rng.shuffle(edges)
    return edges


@pytest.mark.parametrize(
    ("seed", "n", "m", "chain"),
    [
        (1, 10, 5, False),
        (2, 200, 150, False),  # many small components
        (3, 500, 600, False),  # around the giant-component threshold
        (4, 2_000, 4_000, False),  # one giant component plus debris
        (5, 3_000, 0, True),  # three long paths of 1 000 shuffled ids
        (6, 5_000, 500, True),  # long paths glued by random edges
    ],
)
def test_matches_networkx(seed: int, n: int, m: int, chain: bool) -> None:
    edges = random_graph(seed, n, m, chain=chain)
    labels, rounds = run(edges)
    assert labels == oracle(edges)
    assert rounds <= 20


def test_monotone_chain_is_one_round_and_reversed_chain_too() -> None:
    path = [(i, i + 1) for i in range(1, 4_000)]
    labels, rounds = run(path)
    assert set(labels.values()) == {1} and len(labels) == 4_000
    assert rounds == 1  # every node hooks to its predecessor; jumping flattens the chain
    labels, _ = run([(b, a) for a, b in reversed(path)])
    assert set(labels.values()) == {1}


def test_star_of_stars_and_empty_graph() -> None:
    edges = [(0, i) for i in range(1, 50)] + [(i, 1000 + i) for i in range(1, 50)]
    labels, _ = run(edges)
    assert labels == oracle(edges)
    labels, rounds = run([(7, 7), (8, None)])
    assert labels == {7: 7, 8: 8} and rounds == 0


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=60))
@settings(max_examples=40, deadline=None)
def test_property_random_small_graphs(edges: list[tuple[int, int]]) -> None:
    labels, _ = run(edges)
    assert labels == oracle(edges)


def test_iteration_cap_raises_a_clear_error() -> None:
    rng = random.Random(9)
    ids = rng.sample(range(10_000), 2_000)
    edges = list(zip(ids, ids[1:], strict=False))  # a shuffled path needs several rounds
    with pytest.raises(ComponentsDidNotConverge, match="did not converge in 1 rounds"):
        run(edges, max_iterations=1)


def test_rejects_bad_arguments() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE e (a BIGINT, b BIGINT)").fetchall()
    with pytest.raises(UsageError):
        connected_components(DuckDBEngine(con), "e; DROP TABLE x", "cc")
    with pytest.raises(UsageError):
        connected_components(DuckDBEngine(con), "e", "cc", max_iterations=0)


@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 9), st.integers(0, 9)), max_size=40, unique=True),
    st.sampled_from([(0.0, 0), (0.8, 3), (0.5, 2)]),
)
@settings(max_examples=200, deadline=None)
def test_bipartite_blocks_match_networkx(edges, rule):
    """Bipartite layering's graph (a window each, payers and payees told apart, as an account may be both), its
    components on the engine and the blocks that can be dense: NetworkX's components of each window with
    layer_min payers, two payees and edges for min_density of the pairs, each with its edges."""
    from fundtrace import queries
    from fundtrace.detect.bipartite import MIN_DENSITY

    min_density, layer_min = rule
    con = duckdb.connect()
    engine = DuckDBEngine(con)
    engine.register("frame", pa.table({
        "wb": pa.array([w for w, _, _ in edges], pa.int64()),
        "src": pa.array([s for _, s, _ in edges], pa.uint64()),
        "dst": pa.array([d for _, _, d in edges], pa.uint64()),
    }))  # fmt: skip
    con.execute("CREATE TABLE bp_edges AS SELECT * FROM frame").fetchall()
    cands = dict(queries.get("detect_bipartite_candidates").steps)
    engine.run_steps([("bp_node", cands["bp_node"]), ("bp_graph", cands["bp_graph"])], {})
    connected_components(engine, "bp_graph", "bp_comp")
    blocks = queries.get("detect_bipartite_blocks")
    engine.run_steps(blocks.steps, blocks.bind({"layer_min": layer_min, "min_density": min_density}))
    by_component: dict[int, list] = {}
    for c, w, src, dst in con.execute("SELECT component, wb, src, dst FROM bp_block").fetchall():
        by_component.setdefault(c, []).append((w, src, dst))
    got = sorted(sorted(sub) for sub in by_component.values())
    g = nx.Graph()
    g.add_edges_from(((w, "s", s), (w, "d", d)) for w, s, d in edges)
    want = []
    for comp in nx.connected_components(g):
        sub = sorted((w, s, d) for w, s, d in edges if (w, "s", s) in comp)
        payers, payees = {e[1] for e in sub}, {e[2] for e in sub}
        if len(payers) >= layer_min and len(payees) >= 2 and len(sub) / (len(payers) * len(payees)) >= min_density:
            want.append(sub)
    assert got == sorted(want)
    assert MIN_DENSITY == 0.8
