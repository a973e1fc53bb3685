"""The trims of ``queries/detect/cycles.sql`` (``cy_trim1``, ``cy_trim2``) only prune: without them the cycle
detector finds the same alerts, members and evidence.

A payment on a temporal or static cycle keeps both trims: its payer is paid and its payee pays on the cycle's
neighbouring edges, whose payments fall in the same window (a bucket either side). The quiet test of a static
cycle's member compares all its payments in the window with the candidates on its edges; a trimmed payment of a
member is off the cycle's edges, so the member is busy with or without it. The incremental scope
(``fundtrace.detect.cycle_scope``) relies on this, and so would any narrower way of finding the candidate edges
(any edge set that keeps every cycle's edges gives the same result). Seeded random payments over several buckets,
both kinds, with and without the pass-through test and the quiet share.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from fundtrace import queries
from fundtrace.detect import DetectSettings
from fundtrace.detect.cycles import detect_cycles
from fundtrace.detect.sqlfamilies import prepare, run_query
from fundtrace.engine import DuckDBEngine
from fundtrace.workspace import Workspace
from test_detect_helpers import fill

NO_TRIMS = {"cy_trim1": "SELECT * FROM cy_cand", "cy_trim2": "SELECT * FROM cy_trim1"}


def _without_trims(query: queries.Query) -> queries.Query:
    """``detect_cycles`` with each trim step keeping every row of the step before."""
    lines, out, skipping = query.sql.splitlines(keepends=True), [], False
    for line in lines:
        name = line.removeprefix("-- step:").strip() if line.startswith("-- step:") else None
        if name is not None:
            skipping = name in NO_TRIMS
            out.append(line)
            if skipping:
                out.append(NO_TRIMS[name] + "\n")
        elif not skipping:
            out.append(line)
    return dataclasses.replace(query, sql="".join(out))


def _rows(seed: int, accounts: int = 120, minutes: int = 4 * 1440) -> list[tuple]:
    """Random payments among ``accounts`` (some lie on cycles by chance, many lead nowhere) and rings of fresh
    accounts across bucket boundaries (every 720 minutes), half of them paid round in time order, half shuffled."""
    rng = random.Random(seed)
    rows = []
    for i in range(600):
        s, d = rng.sample(range(accounts), 2)
        rows.append((f"q{i:04d}", rng.randrange(minutes), f"a{s}", f"a{d}", round(rng.uniform(900, 1100), 2)))
    for k in range(8):
        size, start = rng.randint(3, 5), 720 * rng.randint(1, 6) - rng.randrange(60, 400)
        ring = [f"r{k}_{j}" for j in range(size)] if k % 3 else [f"r{k}_0"] + [f"a{j}" for j in range(size - 1)]
        times = [start + 50 * j for j in range(size)]
        if k % 2:
            rng.shuffle(times)
        for j in range(size):
            rows.append((f"r{k}_{j}", times[j], ring[j], ring[(j + 1) % size], round(1000.0 - 5 * j, 2)))
    return rows


def _found(engine, settings) -> tuple:
    det = detect_cycles(engine, settings)
    return tuple(
        sorted(map(repr, table.to_pylist())) for table in (det.alerts, det.members, det.evidence)
    )  # fmt: skip


def _count(engine, table: str) -> int:
    return engine.con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]


@pytest.mark.parametrize("seed", range(6))
def test_cycles_are_the_same_without_the_trims(tmp_path, monkeypatch, seed):
    settings = DetectSettings(
        dwell_hours=6, cycle_window_hours=12, cycle_max_degree=16 + seed, cycle_min_quiet_share=0.25 * (seed % 3),
        cycle_pass_through_only=seed % 2 == 0, cycle_max_len=4 + seed % 3, corroborate=("pass_through",),
    )  # fmt: skip
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _rows(seed))
        engine = DuckDBEngine(ws.con)
        prepare(engine, settings)
        run_query(engine, "detect_pass_through", settings)
        trimmed = _found(engine, settings)
        kept, candidates = _count(engine, "cy_trim2"), _count(engine, "cy_cand")
        get = queries.get
        monkeypatch.setattr(
            queries, "get", lambda name: _without_trims(get(name)) if name == "detect_cycles" else get(name)
        )
        untrimmed = _found(engine, settings)
        assert _count(engine, "cy_trim2") == candidates
    assert kept < candidates  # the trims removed payments
    assert trimmed[0]  # cycles were found
    assert untrimmed == trimmed
