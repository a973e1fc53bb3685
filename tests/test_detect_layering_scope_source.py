"""Where layering's scope reads the touched accounts' payments (``scopes._touched_payments``).

The runner's ``dt_touched`` holds every payment with a touched end from the one-account families' context on: the
scope reads it instead of every payment of its own context only when it provably starts at or before that context
(its earliest payment does), and then finds exactly the same keys and paths as from every payment."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pytest

from fundtrace.detect import scopes
from fundtrace.detect.settings import DetectSettings
from test_detect_oracle import _engine_for, _layering_rows

EPOCH = datetime(1970, 1, 1)


def _scoped(tmp_path, touched_from_min: float | None):
    """A scope run with the context from the middle of the payments; ``dt_touched`` (the touched accounts' payments
    from ``touched_from_min`` minutes before the context's start on; None: no dt_touched) as the runner makes it.
    Returns the source used and what the scope found: ly_tt, the keys, the paths and the narrowed payments."""
    settings = DetectSettings(layer_window_hours=6, layer_max=14)
    tmp_path.mkdir()
    ws, engine = _engine_for(tmp_path, _layering_rows(1), settings)
    con = ws.con
    con.execute("CREATE TEMP TABLE dt_all AS SELECT * FROM dt_tx").fetchall()
    con.execute("DROP TABLE dt_tx").fetchall()
    lo, hi = con.execute("SELECT min(t), max(t) FROM dt_all").fetchall()[0]
    bucket = round(6 * 3600e6)
    ctx_us = (lo + (hi - lo) // 2) // bucket * bucket  # a bucket boundary, as the runner's contexts are
    engine.ctx_from = EPOCH + timedelta(microseconds=ctx_us)
    con.execute(f"CREATE TEMP VIEW dt_tx AS SELECT * FROM dt_all WHERE t >= {ctx_us}").fetchall()
    accounts = sorted(r[0] for r in con.execute("SELECT DISTINCT src_id FROM dt_all").fetchall())
    engine.register("dx_touched", pa.table({"account_id": pa.array(accounts[:3], pa.uint64())}))
    if touched_from_min is not None:
        start = ctx_us - round(touched_from_min * 60e6)
        con.execute(
            "CREATE TEMP TABLE dt_touched AS SELECT * FROM dt_all WHERE t >= $s AND (src_id IN "
            "(SELECT account_id FROM dx_touched) OR dst_id IN (SELECT account_id FROM dx_touched))",
            {"s": start},
        ).fetchall()
    source = scopes._touched_payments(engine)
    scopes.layering_scope(engine, settings, "keys")

    def rows(sql: str) -> list:
        return sorted(con.execute(sql).fetchall())

    found = (
        rows("SELECT * FROM ly_tt"),
        rows("SELECT * FROM keys"),
        rows("SELECT * FROM sg_paths"),
        rows("SELECT txn_id, t, src_id, dst_id, amt FROM dt_tx"),
    )
    ws.close()
    return source, found


@pytest.mark.parametrize(
    ("touched_from_min", "reads"),
    [(None, "dt_tx"), (120, "dt_touched"), (-90, "dt_tx")],
)
def test_touched_payments_from_dt_touched_only_when_it_covers_the_context(tmp_path, touched_from_min, reads):
    source, found = _scoped(tmp_path / "a", touched_from_min)
    assert f"FROM {reads}" in source
    _, expected = _scoped(tmp_path / "b", None)  # every payment of the context
    assert found == expected
    assert found[0] and found[2]  # touched payments and paths to compare
