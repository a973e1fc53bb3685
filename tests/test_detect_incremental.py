"""Incremental detection after a new batch stores exactly what a full rerun stores."""

from __future__ import annotations

import random

import pytest

from fundtrace.detect import DetectSettings, run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, snapshot

# Short windows so that ten days of data hold many windows and the incremental run has little to redo.
SETTINGS = DetectSettings(
    dwell_hours=6, fan_window_hours=6, fan_min=4, layer_window_hours=6, cycle_window_hours=12,
    structuring_window_hours=24, burst_hours=24, burst_min_txns=6, dormant_days=2, active_hours=12,
    active_min_txns=3, max_hops=4,
)  # fmt: skip


def _world(seed: int, days: int = 10, boundary: int | None = None):
    """Random traffic with injected chains, fans, cycles, scatter-gather and structuring (minutes, accounts)."""
    rng = random.Random(seed)
    rows, n = [], 0

    def add(t, s, d, a):
        nonlocal n
        rows.append((f"x{n:05d}", t, s, d, round(a, 2)))
        n += 1

    for _ in range(1500):
        s, d = rng.sample(range(150), 2)
        add(rng.randrange(days * 1440), f"n{s}", f"n{d}", rng.uniform(10, 3000))
    for p in range(days * 3):
        t0, a = rng.randrange(days * 1440 - 600), rng.uniform(3000, 30000)
        kind = p % 5
        if kind == 0:  # chain
            for h in range(4):
                add(t0 + 40 * h, f"n{rng.randrange(150)}" if h == 0 else f"c{p}m{h}", f"c{p}m{h + 1}", a * 0.98**h)
        elif kind == 1:  # fan-in
            for j in range(5):
                add(t0 + 30 * j, f"n{rng.randrange(150)}", f"f{p}", 2000 + 50 * j)
            add(t0 + 200, f"f{p}", f"n{rng.randrange(150)}", 10500 * 0.97)  # the mule forwards it
        elif kind == 2:  # cycle
            for h in range(4):
                add(t0 + 60 * h, f"y{p}a{h}", f"y{p}a{(h + 1) % 4}", a * 0.99**h)
        elif kind == 3:  # scatter-gather
            for j in range(4):
                add(t0 + j, f"g{p}s", f"g{p}m{j}", a / 4)
                add(t0 + 90 + j, f"g{p}m{j}", f"g{p}t", a / 4)
        else:  # structuring
            for j in range(3):
                add(t0 + 120 * j, f"s{p}", f"n{rng.randrange(150)}", 47000 + 500 * j)
    if boundary is not None:  # patterns that start before the boundary and finish after it
        b = boundary - 500
        for h in range(4):
            add(b + 200 * h, "bv" if h == 0 else f"bc{h}", f"bc{h + 1}", 9000 * 0.98**h)  # chain
            add(b + 200 * h, f"by{h}", f"by{(h + 1) % 4}", 7000 * 0.99**h)  # cycle
        for j in range(5):
            add(b + 150 * j, f"n{j}", "bf", 2500 + 40 * j)  # fan-in
        add(b + 700, "bf", "n7", 12900)  # ... forwarded
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_equals_full(tmp_path, seed):
    cut = 8 * 1440
    rows = _world(seed, boundary=cut)
    first = [r for r in rows if r[1] < cut]
    late = [r for r in first if r[1] > cut - 300][:5]  # a few payments arrive late, in the second batch
    first = [r for r in first if r not in late]
    second = [r for r in rows if r[1] >= cut] + late

    with Workspace(tmp_path / "inc.duckdb") as ws:
        fill(ws, first, batch_id=1)
        full1 = run(ws, SETTINGS)
        assert full1["mode"] == "full"
        fill(ws, second, batch_id=2)
        inc = run(ws, SETTINGS)
        assert inc["mode"] == "incremental"
        again = run(ws, SETTINGS)
        assert again["mode"] == "up_to_date"
        got = snapshot(ws)
    with Workspace(tmp_path / "full.duckdb") as ws:
        fill(ws, first, batch_id=1)
        fill(ws, second, batch_id=2)
        full = run(ws, SETTINGS, full=True)
        expected = snapshot(ws)
    assert got == expected
    assert len(expected[0]) > 20 and {"chain", "fan_in", "cycle", "scatter_gather", "structuring"} <= set(
        full["alerts"]
    )
    # the incremental run recomputed only part of the alerts
    assert sum(inc["recomputed"].values()) < sum(full["recomputed"].values())


def test_since_recomputes_from_a_time(tmp_path):
    rows = _world(3)
    with Workspace(tmp_path / "a.duckdb") as ws:
        fill(ws, rows)
        run(ws, SETTINGS, full=True)
        before = snapshot(ws)
        from datetime import datetime

        result = run(ws, SETTINGS, since=datetime(2024, 3, 7))
        assert result["mode"] == "incremental"
        assert snapshot(ws) == before
