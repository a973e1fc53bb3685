"""Unpublished typologies (setting ``unpublished``; at day scale fan_out): detected and kept in the raw
alerts, never published nor counted as a link, unless ``--only`` names them; incremental runs still equal
full ones."""

from __future__ import annotations

from dataclasses import replace

from fundtrace.detect import DetectSettings, run
from fundtrace.detect.settings import DAY_SCALE
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, full_state, incremental_state, snapshot
from test_detect_incremental import SETTINGS, _world

# V0..V7 pay F, which pays O0..O7 on: a fan-in and a fan-out around the pass-through hub F.
FANS = [
    *((f"i{i}", 10 * i, f"V{i}", "F", 5000) for i in range(8)),
    *((f"o{i}", 200 + 10 * i, "F", f"O{i}", 4900) for i in range(8)),
]


def _published(ws) -> dict[str, int]:
    return dict(ws.con.execute("SELECT typology, count(*) FROM alerts GROUP BY 1").fetchall())


def _raw(ws, typology: str) -> int:
    return ws.con.execute("SELECT count(*) FROM detect_raw_alerts WHERE typology = ?", [typology]).fetchall()[0][0]


def test_unpublished_typology_is_detected_but_not_published(tmp_path):
    quiet = DetectSettings(unpublished=("fan_out",))
    with Workspace(tmp_path / "w.duckdb") as ws:
        fill(ws, FANS)
        assert {"fan_in", "fan_out"} <= set(run(ws, DetectSettings())["alerts"])
        out = run(ws, quiet)
        assert out["mode"] == "full"  # another setting: every alert judged again
        assert "fan_out" not in _published(ws) and _published(ws).get("fan_in") == 1
        assert _raw(ws, "fan_out") == 1
        assert any("not published" in n and "fan_out" in n for n in out["notes"])
        # asked for by name, it is published; the next plain run holds it back again
        assert run(ws, quiet, only=["fan_out"])["alerts"].get("fan_out") == 1
        assert "fan_out" not in run(ws, quiet)["alerts"]


def test_incremental_equals_full_with_unpublished_typologies(tmp_path):
    # pass_through unpublished: its alerts no longer link; fan_in: a structural typology held back
    settings = replace(SETTINGS, unpublished=("pass_through", "fan_in"))
    cut = 8 * 1440
    rows = _world(3, boundary=cut)
    batches = [[r for r in rows if r[1] < cut], [r for r in rows if r[1] >= cut]]

    def state(ws):
        return snapshot(ws), (_raw(ws, "pass_through"), _raw(ws, "fan_in")), _published(ws)

    got, _ = incremental_state(tmp_path / "inc.duckdb", batches, settings, state=state)
    expected = full_state(tmp_path / "full.duckdb", batches, settings, state=state)
    assert got == expected
    _, held, published = expected
    assert min(held) > 0 and not {"pass_through", "fan_in"} & set(published)
    assert {"chain", "cycle", "scatter_gather"} <= set(published)


def test_unpublished_names_typologies():
    assert DetectSettings(unpublished=("fan_outs",)).validate()[0][0] == "unpublished"
    assert DetectSettings().for_days().unpublished == DAY_SCALE["unpublished"] == ("fan_out",)
    assert DetectSettings(scale="hours").unpublished == ()
