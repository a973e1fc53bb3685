"""Fans read only the fan buckets near a hub's pass-through episodes (``fan_hubs``): the same fans as reading
every bucket of those accounts, on seeded random payments dense enough that fan windows start before,
inside and after episodes.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from fundtrace import queries
from fundtrace.detect.base import params_for
from fundtrace.detect.settings import DetectSettings
from fundtrace.detect.sqlfamilies import prepare, run_query
from fundtrace.engine import DuckDBEngine
from fundtrace.workspace import Workspace
from test_detect_helpers import fill

# every bucket of every account with an episode: what fans read before the pruning
ALL_BUCKETS = (
    "SELECT DISTINCT h.acct, x.t // CAST($fan_window_hours * 3600e6 AS BIGINT) AS b FROM pt_hits h "
    "JOIN (SELECT dst_id AS acct, t FROM dt_tx UNION ALL SELECT src_id, t FROM dt_tx) x ON x.acct = h.acct "
    "WHERE $fan_pass_through"
)
# one bucket less slack on each side: loses fans (shows the test can fail)
NO_SLACK = (
    "SELECT DISTINCT acct, unnest(range(first_in // CAST($fan_window_hours * 3600e6 AS BIGINT), "
    "last_out // CAST($fan_window_hours * 3600e6 AS BIGINT) + 1)) AS b FROM pt_hits WHERE $fan_pass_through"
)


def _rows(seed: int):
    rng = random.Random(seed)
    rows = []
    for i in range(900):  # 40 accounts over two days: many short episodes and many fans
        src, dst = rng.sample(range(40), 2)
        rows.append((f"t{i:04d}", rng.randrange(48 * 60), f"a{src}", f"a{dst}", round(rng.uniform(900, 1100), 2)))
    return rows


def _fans(engine, settings: DetectSettings, fan_hubs: str | None = None) -> list[tuple]:
    q = queries.get("detect_fans")
    steps = [(n, fan_hubs if (n == "fan_hubs" and fan_hubs) else sql) for n, sql in q.steps]
    engine.run_steps(steps, q.bind(params_for(q, settings)))
    return sorted(
        engine.con.execute(
            "SELECT acct, dir, b, n_cp, n_txn, round(amt, 6), round(cv, 9), round(one_shot, 9), first_t, last_t "
            "FROM fan_kept"
        ).fetchall()
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("window", [1.0, 2.0])
def test_pruned_fan_buckets_find_the_same_fans(tmp_path, seed, window):
    settings = replace(
        DetectSettings(), dwell_hours=1.0, keep_max=0.3, over_max=0.3, fan_window_hours=window, fan_min=3,
        fan_max_cv=1.0, fan_min_one_shot=0.3,
    )  # fmt: skip
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _rows(seed))
        engine = DuckDBEngine(ws.con)
        prepare(engine, settings)
        run_query(engine, "detect_pass_through", settings)
        pruned = _fans(engine, settings)
        every = _fans(engine, settings, ALL_BUCKETS)
        narrow = _fans(engine, settings, NO_SLACK)
        assert len(every) >= 10
        assert pruned == every
        assert narrow != every  # without the bucket either side fans are lost or made up


def test_fans_without_pass_through_read_every_bucket(tmp_path):
    settings = replace(
        DetectSettings(), dwell_hours=1.0, fan_window_hours=2.0, fan_min=3, fan_max_cv=1.0, fan_min_one_shot=0.3,
        fan_pass_through=False,
    )  # fmt: skip
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _rows(4))
        engine = DuckDBEngine(ws.con)
        prepare(engine, settings)
        run_query(engine, "detect_pass_through", settings)
        fans = _fans(engine, settings)
        assert engine.con.execute("SELECT count(*) FROM fan_hubs").fetchall()[0][0] == 0
        # more fans than any pass-through-bound run: every hub counts
        assert len(fans) > len(_fans(engine, replace(settings, fan_pass_through=True)))
