"""Setting values that are no finite number, too wide or no whole number, a config section that is no table,
and an explicit ``--since`` that must neither lose a batch nor skip the settings check (``detect._plan``).

Every bad value is a ``ConfigError`` naming its field, before any query runs; the CLI prints it as one line.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import pytest

from fundtrace.config import Config
from fundtrace.detect import DetectSettings, run
from fundtrace.detect.settings import MAX_WINDOW_HOURS
from fundtrace.errors import ConfigError
from fundtrace.workspace import Workspace
from test_detect_helpers import T0, full_state, incremental_state, snapshot

WINDOWS = ("dwell_hours", "life_max_hours", "fan_window_hours", "layer_window_hours", "cycle_window_hours",
           "structuring_window_hours", "burst_hours", "active_hours")  # fmt: skip


def _section(raw) -> DetectSettings:
    return Config(data={"detect": raw}).section("detect", DetectSettings)


def _problems(raw) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        _section(raw)
    return dict(exc.value.problems)


# -- numbers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [({"max_hops": 3.0}, "max_hops", 3), ({"max_hops": "4"}, "max_hops", 4), ({"max_hops": " 5 "}, "max_hops", 5),
     ({"cycle_max_len": "1e1"}, "cycle_max_len", 10), ({"dwell_hours": 12}, "dwell_hours", 12.0),
     ({"dwell_hours": MAX_WINDOW_HOURS}, "dwell_hours", 87_600.0), ({"dormant_days": 3650}, "dormant_days", 3650.0),
     ({"alpha": "-2.5"}, "alpha", -2.5)],
)  # fmt: skip
def test_whole_and_finite_numbers_are_taken(raw, field, value):
    got = getattr(_section(raw), field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("raw", "field", "needle"),
    [({"max_hops": 2.5}, "detect.max_hops", "whole number, got 2.5"),
     ({"max_hops": "2.5"}, "detect.max_hops", "whole number, got '2.5'"),
     ({"life_max_txns": math.inf}, "detect.life_max_txns", "finite number"),
     ({"life_min": "-inf"}, "detect.life_min", "finite number"),
     ({"dwell_hours": math.inf}, "detect.dwell_hours", "finite number"),
     ({"alpha": math.nan}, "detect.alpha", "finite number"),
     ({"threshold": "inf"}, "detect.threshold", "finite number"),
     ({"fan_window_hours": 1e15}, "detect.fan_window_hours", "at most 87,600"),
     ({"cycle_window_hours": MAX_WINDOW_HOURS + 0.5}, "detect.cycle_window_hours", "at most 87,600"),
     ({"dormant_days": 3651}, "detect.dormant_days", "at most 3,650")],
)  # fmt: skip
def test_bad_numbers_name_their_field(raw, field, needle):
    problems = _problems(raw)
    assert list(problems) == [field]
    assert needle in problems[field]


@pytest.mark.parametrize("name", [*WINDOWS, "dormant_days", "alpha", "fan_min", "share_min", "cycle_min_quiet_share"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_validate_rejects_every_non_finite_float_once(name, value):
    """Through the library (no config parsing): one message per field, not also its range's."""
    assert DetectSettings(**{name: value}).validate() == [(name, "must be a finite number")]


def test_run_rejects_an_infinite_window_before_any_query(tmp_path):
    with Workspace(tmp_path / "ws.duckdb") as ws, pytest.raises(ConfigError) as exc:
        run(ws, DetectSettings(cycle_window_hours=math.inf))
    assert exc.value.problems == [("detect.cycle_window_hours", "must be a finite number")]


BASE = [("b1", 0, "V", "M1", 10000), ("b2", 30, "M1", "M2", 9800), ("b3", 60, "M2", "M3", 9600),
        ("b4", 90, "M3", "ATM", 9500, "atm"), ("b5", 120, "C1", "C2", 7000), ("b6", 150, "C2", "C3", 6900),
        *((f"f{i}", 200 + i, f"S{i}", "F", 5000) for i in range(6))]  # fmt: skip
LATE = [("n1", 200, "C3", "C1", 6800), ("n2", 400, "F", "O", 29000), ("n3", 95, "V", "M1", 3000)]


def test_the_widest_windows_run_and_incremental_equals_full(tmp_path):
    """Ten years in every window: the BIGINT microseconds and the datetime offsets stay in range."""
    wide = {name: float(MAX_WINDOW_HOURS) for name in WINDOWS}
    settings = DetectSettings(**wide, dormant_days=MAX_WINDOW_HOURS / 24, cycle_pass_through_only=False)
    assert settings.validate() == []
    got, result = incremental_state(tmp_path / "inc.duckdb", [BASE, LATE], settings)
    full = full_state(tmp_path / "full.duckdb", [BASE, LATE], settings)
    assert got == full and result["mode"] == "incremental"
    assert full[0]  # it found something


# -- sections ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [3, "x", [1, 2], True])
def test_a_section_that_is_no_table_is_a_config_error(value):
    with pytest.raises(ConfigError) as exc:
        Config(data={"detect": value}).section("detect", DetectSettings)
    ((field, message),) = exc.value.problems
    assert field == "detect" and "expected a table" in message


def test_the_cli_names_a_rings_section_that_is_no_table(cli, tmp_path):
    (tmp_path / "fundtrace.toml").write_text('rings = "on"\n')
    r = cli("detect")
    assert r.code == 2 and "Traceback" not in r.err and "internal error" not in r.err
    assert "• rings: expected a table" in r.err


# -- an explicit since ----------------------------------------------------------------------------------


def _csv(tmp_path, name: str, rows: list[tuple]):
    f = tmp_path / name
    lines = [f"{r[0]},{(T0 + timedelta(minutes=r[1])).isoformat()},{r[2]},{r[3]},{r[4]},transfer" for r in rows]
    f.write_text("\n".join(["txn_id,ts,src_account,dst_account,amount,channel", *lines]) + "\n")
    return f


def _detect(cli, args: str = "") -> dict:
    r = cli(f"detect --format json {args}")
    assert r.code == 0, r.err
    return json.loads(r.out)[0]


def test_a_since_before_every_payment_starts_at_the_first_one(cli, tmp_path, db):
    """A since far before the data (year 1) recomputes from the first payment; the offsets stay in range."""
    assert _detect(cli, "--since 0001-01-01")["mode"] == "full"  # empty workspace, no stored state
    assert _detect(cli, "--since 0001-01-01")["since"] is None  # no payments: nothing windowed to redo
    assert cli(f"load transactions {_csv(tmp_path, 'b.csv', BASE)}").code == 0
    _detect(cli)
    with Workspace(db) as ws:
        before = snapshot(ws)
    out = _detect(cli, "--since 0001-01-01")
    assert out["mode"] == "incremental" and out["since"] == T0.isoformat(sep=" ")
    with Workspace(db) as ws:
        assert snapshot(ws) == before


@pytest.mark.parametrize(("since", "expected"), [(T0 + timedelta(minutes=60), T0 + timedelta(minutes=60)),
                                                 (datetime(2030, 1, 1), T0 + timedelta(minutes=95))])  # fmt: skip
def test_an_explicit_since_covers_the_new_batch(tmp_path, since, expected):
    """Before the new batch's first payment (minute 95) it is kept; after it, it is moved back to it."""
    settings = DetectSettings(cycle_pass_through_only=False)
    got, result = incremental_state(tmp_path / "inc.duckdb", [BASE, LATE], settings, since=since)
    assert result["mode"] == "incremental" and result["since"] == expected.isoformat(sep=" ")
    assert got == full_state(tmp_path / "full.duckdb", [BASE, LATE], settings)


def test_an_explicit_since_runs_full_when_a_full_run_is_due(cli, tmp_path):
    assert cli(f"load transactions {_csv(tmp_path, 'b.csv', BASE)}").code == 0
    assert _detect(cli, "--only cycle")["mode"] == "full"
    assert _detect(cli, "--since 2030-01-01")["mode"] == "full"  # typologies the last run did not compute
    assert _detect(cli, "--since 2030-01-01")["mode"] == "incremental"
    assert _detect(cli, "--since 2030-01-01 --fan-min 6")["mode"] == "full"  # changed settings
    assert _detect(cli, "--fan-min 6")["mode"] == "up_to_date"
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("bank,account,holder_id,kind\ndefault,M1,P1,personal\n")
    assert cli(f"load accounts {accounts}").code == 0
    assert _detect(cli, "--since 2030-01-01 --fan-min 6")["mode"] == "full"  # a new accounts batch
