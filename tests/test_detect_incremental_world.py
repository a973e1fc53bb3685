"""Incremental detection on whole worlds split at random times equals a full run.

The other incremental tests build their payments by hand; these take whole worlds: the simulator's (holders
with several accounts, merchants and payroll, card-farm links, new accounts and every typology, at the hour
scale) and AMLSim's development set (fixtures/amlsim-dev: two years of daily steps, the day-scale defaults,
accounts silent for months). Each loads its transactions in batches cut at random times, holding a few
payments of each batch back to the next (they arrive dated before the previous batch's end), and runs the
incremental detection after each. A full run over the same workspace must then store exactly the same: the
published alerts, members and evidence, and the state later runs build on (raw alerts, pass-through
episodes, chain hops, dormant silences and last payments).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import duckdb
import pytest

from fundtrace.config import LoadSettings
from fundtrace.detect import run
from fundtrace.ingest import load_paths
from fundtrace.simulate import simulate
from fundtrace.workspace import Workspace

AMLSIM = Path(__file__).resolve().parents[1] / "fixtures" / "amlsim-dev"

# What a run stores, compared as order-free checksums (count, sum of row hashes), as bench/detect_incremental.py
# does. Scores to 6 decimals: summed in parallel over thousands of payments, a score can end in ...9997 one run
# and ...0000 the next.
_ALERT = "alert_id, typology, round(score, 6), start_ts, end_ts, amount, n_accounts, n_txns"
STATE = {
    "alerts": f"{_ALERT}, summary",
    "alert_members": "*",
    "alert_evidence": "*",
    "detect_raw_alerts": _ALERT,
    "detect_raw_members": "*",
    "detect_raw_evidence": "*",
    "detect_pt_hits": "acct, b, n_in, n_out, round(in_amt, 4), round(out_amt, 4), first_in, last_in, last_out",
    "detect_chain_hops": "*",
    "detect_dormant_gaps": "*",
    "detect_last_pay": "*",
}


def _state(ws: Workspace) -> dict:
    sums = {}
    for table, cols in STATE.items():
        sql = f"SELECT count(*), sum(CAST(hash(r) AS HUGEINT)) FROM (SELECT {cols} FROM {table}) r"
        sums[table] = ws.con.execute(sql).fetchall()[0]
    return sums


def _batches(source: Path, ts: str, out: Path, fmt: str, seed: int, n: int, late: float) -> list[Path]:
    """``source``'s rows cut at n - 1 random times after the first half of its span, as files; a ``late`` share of
    each batch but the last moves to the next one."""
    rng = random.Random(seed)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE t AS SELECT * FROM '{source}'")
    lo, hi = con.execute(f"SELECT min({ts}), max({ts}) FROM t").fetchall()[0]
    edges = sorted(lo + (hi - lo) * rng.uniform(0.5, 1.0) for _ in range(n - 1))
    batch = " + ".join(f"CAST({ts} >= '{edge}' AS INTEGER)" for edge in edges)
    con.execute(f"CREATE TABLE b AS SELECT *, {batch} AS _b FROM t")
    con.execute(f"SELECT setseed({seed / 100})")
    con.execute(f"UPDATE b SET _b = _b + 1 WHERE _b < {n - 1} AND random() < {late}")
    files = []
    for i in range(n):
        files.append(out / f"batch{i}.{fmt}")
        con.execute(f"COPY (SELECT * EXCLUDE (_b) FROM b WHERE _b = {i}) TO '{files[-1]}' (FORMAT {fmt})")
    return files


def _split_equals_full(tmp_path: Path, registry: list[tuple[str, Path]], batches: list[Path], profile: str) -> dict:
    db = tmp_path / "inc.duckdb"
    load = LoadSettings()
    with Workspace(db) as ws:
        for kind, path in registry:
            load_paths(ws, kind, [str(path)], settings=load, profile=profile)
    modes = []
    for path in batches:
        with Workspace(db) as ws:
            load_paths(ws, "transactions", [str(path)], settings=load, profile=profile)
            modes.append(run(ws)["mode"])
    assert modes == ["full"] + ["incremental"] * (len(batches) - 1)
    with Workspace(db) as ws:
        incremental = _state(ws)
    shutil.copy(db, tmp_path / "full.duckdb")
    with Workspace(tmp_path / "full.duckdb") as ws:
        result = run(ws, full=True)
        full = _state(ws)
    assert incremental["alerts"][0], "the world must raise alerts"
    assert incremental == full
    return result


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 8])
def test_a_simulated_world_loaded_in_random_batches(tmp_path, seed):
    world = tmp_path / "world"
    simulate(world, accounts=2500, days=20, seed=seed, fmt="parquet")
    batches = _batches(world / "transactions.parquet", "ts", tmp_path, "parquet", seed, n=5, late=0.02)
    registry = [("accounts", world / "accounts.parquet"), ("links", world / "links.parquet")]
    _split_equals_full(tmp_path, registry, batches, "native")


@pytest.mark.slow
def test_amlsim_loaded_in_random_batches(tmp_path):
    """Day scale. Splitting this set found two faults of dormant_active: the registry's bulk date counted as an
    opening (accounts "silent for 264 days" since AMLSim's day 0), and an incremental run lost the alert of an
    account opened inside its window and silent since (tests/test_detect_incremental_state.py has that case)."""
    batches = _batches(AMLSIM / "transactions.csv.gz", "tran_timestamp", tmp_path, "csv", 1, n=6, late=0.02)
    result = _split_equals_full(tmp_path, [("accounts", AMLSIM / "accounts.csv.gz")], batches, "amlsim")
    assert any("day-scale defaults" in note for note in result["notes"])
