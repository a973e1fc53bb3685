"""How detect fits its settings to the data: payments stamped by day take the day-scale defaults, and a kind
most accounts have marks none of them innocent (fundtrace.detect.fit)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from fundtrace.detect import DetectSettings, run
from fundtrace.detect.fit import common_kinds, day_scale_reason, fit
from fundtrace.detect.settings import DAY_SCALE
from fundtrace.workspace import Workspace
from test_detect_helpers import fill

AMLSIM = Path(__file__).resolve().parents[1] / "fixtures" / "amlsim"


def _at(*times: str) -> list[tuple]:
    return [(str(i), datetime.fromisoformat(t), "A", "B", 100) for i, t in enumerate(times)]


@pytest.mark.parametrize(
    ("times", "reason"),
    [
        (("2024-01-01 00:00", "2024-03-02 00:00", "2024-07-01 00:00"), "stamped by day over 182 days"),  # AMLSim-like
        (("2024-01-01 16:00", "2024-09-02 16:00"), "stamped by day over 245 days"),  # end-of-day postings, one time
        (("2024-03-01 00:00", "2024-03-31 00:00"), None),  # a month stamped by day: the hour defaults still work
        (("2024-01-01 00:00", "2024-09-02 00:00", "2024-09-02 10:30"), None),  # one payment with a time of day
        (("2024-03-01 00:00",), None),
        ((), None),
    ],
)
def test_day_scale_reason(tmp_path, times, reason):
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _at(*times))
        found = day_scale_reason(ws.con)
        assert found == (reason and f"the payments are {reason}")
        ws.con.execute("UPDATE batches SET profile = 'amlsim'").fetchall()  # AMLSim's output, whatever its times
        assert day_scale_reason(ws.con) == ("the payments are AMLSim's output" if times else None)


def test_for_days_keeps_what_the_user_set():
    fitted = DetectSettings(fan_min=7, cycle_window_hours=100).for_days()
    assert fitted.scale == "days"
    assert (fitted.fan_min, fitted.cycle_window_hours) == (7, 100)
    assert fitted.fan_window_hours == DAY_SCALE["fan_window_hours"]
    assert fitted.cycle_kinds == DAY_SCALE["cycle_kinds"]
    assert all(getattr(DetectSettings().for_days(), k) == v for k, v in DAY_SCALE.items())


@pytest.mark.parametrize(
    ("scale", "times", "fitted", "noted"),
    [
        ("auto", ("2024-01-01 00:00", "2024-08-01 00:00"), "days", True),
        ("auto", ("2024-01-01 00:00", "2024-08-01 09:00"), "hours", False),
        ("auto", ("2024-03-01 00:00", "2024-03-03 00:00"), "hours", False),
        ("hours", ("2024-01-01 00:00", "2024-08-01 00:00"), "hours", False),  # the user's word stands
        ("days", ("2024-03-01 08:00", "2024-03-03 09:00"), "days", False),
    ],
)
def test_fit_scale(tmp_path, scale, times, fitted, noted):
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, _at(*times))
        settings, notes = fit(ws.con, DetectSettings(scale=scale))
    assert settings.scale == fitted
    assert (settings.fan_window_hours == DAY_SCALE["fan_window_hours"]) is (fitted == "days")
    assert any("day-scale defaults apply" in n for n in notes) is noted


# registry: account -> kind; payments among A..F (all transact); expected common kinds
@pytest.mark.parametrize(
    ("registry", "common"),
    [
        ({a: "business" for a in "ABCDEF"}, ["business"]),  # AMLworld: every entity a company
        ({"A": "business", "B": "business", "C": "business", "D": "Business", "E": "personal"}, ["business"]),
        ({"A": "business", "B": "business", "C": "business", "D": "personal"}, []),  # half: not more than half
        ({"A": "merchant"}, []),  # a registry of the merchants only: one of six accounts that transact
        ({a: "personal" for a in "ABCDEF"}, []),  # a common kind that is not an innocent one
        ({}, []),
    ],
)
def test_common_kinds(tmp_path, registry, common):
    pays = [(str(i), i, a, b, 100) for i, (a, b) in enumerate(zip("ABCDEF", "BCDEFA", strict=True))]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, pays, accounts=[{"account": a, "kind": k} for a, k in registry.items()])
        assert common_kinds(ws.con, DetectSettings().innocent_kinds, 0.5) == common


def test_a_registry_of_companies_still_shows_the_mule(tmp_path):
    """Everyone a business: money from a business is no longer income, an alert on a business not commerce."""
    rows = [("1", 0, "P", "M", 8000), ("2", 30, "V", "M", 2000), ("3", 60, "M", "X", 9700)]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows, accounts=[{"account": a, "kind": "business"} for a in "PVMX"])
        result = run(ws, DetectSettings(), only=["pass_through"], full=True)
        assert result["alerts"] == {"pass_through": 1}
        assert any("business is held by more than 50%" in n for n in result["notes"])
        result = run(ws, DetectSettings(kind_share_max=1.0), only=["pass_through"], full=True)
        assert result["alerts"] == {} and result["notes"] == []  # the guard off: a salary being spent


def test_amlsim_files_detect_with_day_scale_defaults(cli):
    for kind in ("accounts", "transactions"):
        assert cli(f"load {kind} {AMLSIM / f'{kind}.csv'} --profile amlsim").code == 0
    r = cli("detect --format json")
    assert r.code == 0, r.err
    (out,) = json.loads(r.out)
    assert out["scale"] == "days" and out["mode"] == "full"
    assert cli("report --out rep").code == 0  # the manifest records the settings as fitted, not as configured
    manifest = json.loads(Path("rep/manifest.json").read_text())
    assert manifest["config"]["sections"]["detect"]["scale"] == "auto"
    assert manifest["detection"]["settings"]["detect"]["scale"] == "days"
    assert manifest["detection"]["settings"]["detect"]["fan_window_hours"] == DAY_SCALE["fan_window_hours"]
    r = cli("detect --scale hours --format json")
    (out,) = json.loads(r.out)
    assert out["scale"] == "hours" and out["mode"] == "full"  # another scale is another setting: a full run
    assert cli("detect --scale weeks").code != 0


def test_score_does_not_damp_a_kind_most_accounts_have(tmp_path):
    from fundtrace import score

    rows = [("1", 0, "P", "M", 8000), ("2", 60, "M", "X", 7900)]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows, accounts=[{"account": a, "kind": "business"} for a in "PMX"])
        assert any("business is held by more than 50%" in n for n in score.run(ws)["notes"])
        ws.con.execute("UPDATE accounts SET kind = 'personal' WHERE account <> 'P'").fetchall()
        assert score.run(ws)["notes"] == []


@pytest.mark.parametrize(
    ("registry", "warned"),
    [({}, True), ({"A": "personal"}, True), ({"A": "merchant"}, False), ({"A": "Merchant"}, False)],
)
def test_a_registry_without_innocent_kinds_is_named(tmp_path, registry, warned):
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(
            ws,
            _at("2024-03-01 08:00", "2024-03-01 09:00"),
            accounts=[{"account": a, "kind": k} for a, k in registry.items()],
        )
        _, notes = fit(ws.con, DetectSettings())
    assert any("cannot be told from mules" in n for n in notes) is warned


def _burst(ws, opened: dict[str, str]) -> dict:
    """Account N moves twelve payments on the day it opened; ``opened``: the registry's opening times."""
    rows = [
        (f"p{i}", datetime(2024, 3, 1, 9, i), "N" if i % 2 else f"C{i}", f"C{i}" if i % 2 else "N", 500)
        for i in range(12)
    ]
    rows.append(("bg", datetime(2024, 2, 20), "P", "Q", 50))
    fill(ws, rows, accounts=[{"account": a, "opened_at": datetime.fromisoformat(t)} for a, t in opened.items()])
    return run(ws, full=True)


def test_an_opening_time_most_accounts_share_is_no_opening(tmp_path):
    """AMLSim opens every account at day 0, a bank migrating its registry dates every account the same day: no
    account is new then. A registry that lists only the new account is not such a load."""
    everyone = {a: "2024-03-01 09:00" for a in ["N", "P", "Q"] + [f"C{i}" for i in range(0, 12, 2)]}
    with Workspace(tmp_path / "a.duckdb") as ws:
        result = _burst(ws, everyone)
        assert "new_account_burst" not in result["alerts"]
        assert any("9 of the accounts that transact opened at 2024-03-01 09:00:00" in n for n in result["notes"])
        assert fit(ws.con, DetectSettings())[0].not_openings == ("2024-03-01 09:00:00.000000",)
    with Workspace(tmp_path / "b.duckdb") as ws:
        result = _burst(ws, {"N": "2024-03-01 09:00"})
        assert result["alerts"].get("new_account_burst") == 1
        assert not any("opened at" in n for n in result["notes"])
    with Workspace(tmp_path / "c.duckdb") as ws:  # set by hand
        fill(ws, _at("2024-03-01 08:00"))
        assert run(ws, DetectSettings(not_openings=("2024-03-01 09:00:00",)), full=True)["mode"] == "full"
    assert [f for f, _ in DetectSettings(not_openings=("yesterday",)).validate()] == ["not_openings"]


def test_a_bulk_opening_time_starts_no_silence(tmp_path):
    """An account that first pays days after its opening woke up from its opening, unless that opening is a bulk
    load's time (not_openings): then nothing says it was silent (AMLSim's accounts all open at day 0)."""
    rows = [("bg", datetime(2024, 3, 1, 8), "P", "Q", 50)]
    rows += [(f"n{i}", datetime(2024, 3, 5, 10, i), "N", f"C{i}", 500) for i in range(4)]
    quick = DetectSettings(dormant_days=2, active_hours=12, active_min_txns=3)
    for name, settings, found in (("a", quick, 1), ("b", replace(quick, not_openings=("2024-03-01 09:00:00",)), None)):
        with Workspace(tmp_path / f"{name}.duckdb") as ws:
            fill(ws, rows, accounts=[{"account": "N", "opened_at": datetime(2024, 3, 1, 9)}])
            assert run(ws, settings, full=True)["alerts"].get("dormant_active") == found
