"""`fundtrace detect` as a user runs it on odd but valid data, and the cycle rule about holders.

Each case must give a clear result or a clear error (exit code, one line, no traceback), and an
incremental run must equal a full one. Known gaps are declared with strict xfail markers: each names
the file to fix, and turns into a failure (so the marker goes) when the fix lands.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import pytest

from fundtrace.detect import TYPOLOGIES, DetectSettings, run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, full_state, incremental_state, snapshot

HEADER = "txn_id,ts,src_account,dst_account,amount,channel"

# A chain V -> M1 -> M2 -> M3 -> ATM, a fan-in to F and a fan-out from F, and a cycle C1 -> C2 -> C3 -> C1,
# every payment at one and the same minute.
SAME_TS = [
    "1,2024-03-01T08:00,V,M1,10000,transfer", "2,2024-03-01T08:00,M1,M2,9800,transfer",
    "3,2024-03-01T08:00,M2,M3,9600,transfer", "4,2024-03-01T08:00,M3,ATM,9500,atm",
    *(f"{5 + i},2024-03-01T08:00,V{i},F,5000,transfer" for i in range(8)),
    *(f"{13 + i},2024-03-01T08:00,F,O{i},4900,transfer" for i in range(8)),
    "21,2024-03-01T08:00,C1,C2,7000,transfer", "22,2024-03-01T08:00,C2,C3,7000,transfer",
    "23,2024-03-01T08:00,C3,C1,7000,transfer",
]  # fmt: skip


def _write(tmp_path, name: str, lines: list[str]):
    f = tmp_path / name
    f.write_text("\n".join([HEADER, *lines]) + "\n")
    return f


def _detect(cli, args: str = "", db_path=None) -> dict:
    r = cli(f"detect --format json {args}", db_path=db_path)
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    return json.loads(r.out)[0]


def _state(path) -> tuple:
    with Workspace(path) as ws:
        return snapshot(ws)


def _clean_error(r, code: int, *needles: str) -> None:
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    for n in needles:
        assert n in r.err, r.err


# -- odd data -----------------------------------------------------------------------------------------


def test_empty_workspace_detects_nothing_every_way(cli):
    out = _detect(cli)
    assert out["mode"] == "full" and not any(out["alerts"].values())
    assert _detect(cli)["mode"] == "up_to_date"
    assert not any(_detect(cli, "--since 2024-01-01")["alerts"].values())
    assert not any(_detect(cli, "--full --only cycle")["alerts"].values())


def test_one_payment_gives_no_alert_and_nothing_to_redo(cli, tmp_path):
    assert cli(f"load transactions {_write(tmp_path, 'one.csv', ['1,2024-03-01T08:00,A,B,100,transfer'])}").code == 0
    assert not any(_detect(cli)["alerts"].values())
    assert _detect(cli)["mode"] == "up_to_date"


def test_payments_all_at_one_time_are_found(cli, tmp_path, db):
    """Ties in time: a chain may pass money on in the same minute; the cycle is a static one (its
    payments are not in strictly increasing time)."""
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    alerts = _detect(cli)["alerts"]
    assert alerts["chain"] == 1 and alerts["fan_in"] == 1 and alerts["fan_out"] == 1 and alerts["cycle"] == 1
    with Workspace(db) as ws:
        (summary,) = ws.con.execute("SELECT summary FROM alerts WHERE typology = 'cycle'").fetchall()[0]
    assert "static cycle" in summary


def test_self_transfers_are_not_money_passed_on(cli, tmp_path, db):
    rows = ["1,2024-03-01T08:00,S,S,100,transfer", "2,2024-03-01T09:00,S,S,100,transfer",
            "3,2024-03-01T10:00,X,S,5000,transfer", "4,2024-03-01T11:00,S,S,4900,transfer",
            "5,2024-03-01T12:00,S,Y,4900,transfer"]  # fmt: skip
    assert cli(f"load transactions {_write(tmp_path, 'self.csv', rows)}").code == 0
    assert _detect(cli)["alerts"]["pass_through"] == 1
    with Workspace(db) as ws:
        evidence = {r[0] for r in ws.con.execute("SELECT txn_id FROM alert_evidence").fetchall()}
        members = dict(ws.con.execute("SELECT account, role FROM alert_members").fetchall())
        cycles = ws.con.execute("SELECT count(*) FROM detect_raw_alerts WHERE typology = 'cycle'").fetchall()[0][0]
    assert evidence == {"3", "5"}  # the self-transfers are not evidence
    assert members == {"X": "source", "S": "mule", "Y": "sink"}
    assert cycles == 0  # a self-transfer is no cycle of length one


IN_SAME_TS = {"pass_through", "chain", "fan_in", "fan_out", "gather_scatter", "cycle"}


@pytest.mark.parametrize("typology", TYPOLOGIES)
def test_only_each_typology_runs_it_alone(cli, tmp_path, db, typology):
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    out = _detect(cli, f"--only {typology}")
    assert set(out["alerts"]) | set(out["recomputed"]) <= {typology}
    with Workspace(db) as ws:
        stored = {r[0] for r in ws.con.execute("SELECT DISTINCT typology FROM alerts").fetchall()}
    assert stored == ({typology} if typology in IN_SAME_TS else set())


def test_since_before_all_data_equals_full_and_after_all_data_changes_nothing(cli, tmp_path, db):
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    _detect(cli)
    full = _state(db)
    out = _detect(cli, "--since 2020-01-01T00:00")
    assert out["mode"] == "incremental"
    assert _state(db) == full
    out = _detect(cli, "--since 2030-01-01")
    assert out["mode"] == "incremental" and out["since"].startswith("2030-01-01")
    assert _state(db) == full


def test_full_after_incremental_and_a_second_run_after_it(cli, tmp_path, db):
    first, second = SAME_TS[:12], SAME_TS[12:]
    assert cli(f"load transactions {_write(tmp_path, 'b1.csv', first)}").code == 0
    assert _detect(cli)["mode"] == "full"
    assert cli(f"load transactions {_write(tmp_path, 'b2.csv', second)}").code == 0
    assert _detect(cli)["mode"] == "incremental"
    incremental = _state(db)
    assert _detect(cli, "--full")["mode"] == "full"
    assert _state(db) == incremental
    again = _detect(cli)
    assert again["mode"] == "up_to_date" and again["recomputed"] == {}
    assert _state(db) == incremental


# -- incremental == full on odd batches -----------------------------------------------------------------

BASE = [("b1", 0, "V", "M1", 10000), ("b2", 30, "M1", "M2", 9800), ("b3", 60, "M2", "M3", 9600),
        ("b4", 90, "M3", "ATM", 9500, "atm"), ("b5", 120, "C1", "C2", 7000), ("b6", 150, "C2", "C3", 6900)]  # fmt: skip
LATE = {
    "one payment": [("n1", 200, "C3", "C1", 6800)],
    "all at the time of the last payment": [
        ("n1", 150, "C3", "C1", 6800),
        ("n2", 150, "M3", "X", 50),
        ("n3", 150, "V", "M1", 3000),
    ],  # fmt: skip
    "self-transfers": [("n1", 160, "C3", "C3", 6900), ("n2", 170, "C3", "C1", 6800), ("n3", 175, "M1", "M1", 10)],
    "back-dated into the first batch's time": [("n1", 10, "Q", "M2", 800), ("n2", 20, "M2", "Q2", 790)],
}


@pytest.mark.parametrize("case", list(LATE))
def test_odd_second_batch_incremental_equals_full(tmp_path, case):
    settings = DetectSettings(cycle_pass_through_only=False)
    got, result = incremental_state(tmp_path / "inc.duckdb", [BASE, LATE[case]], settings)
    assert got == full_state(tmp_path / "full.duckdb", [BASE, LATE[case]], settings)
    assert result["mode"] == "incremental"


# -- cycles need as many holders as accounts --------------------------------------------------------------

ROUND = [("1", 0, "A", "B", 1000), ("2", 45, "B", "C", 950), ("3", 2400, "C", "A", 900)]
SHUFFLED_ROUND = [("1", 300, "A", "B", 1000), ("2", 0, "B", "C", 950), ("3", 120, "C", "A", 900)]


@pytest.mark.parametrize(("rows", "kinds"), [(ROUND, ("temporal",)), (SHUFFLED_ROUND, ("static",))])
@pytest.mark.parametrize(("holders", "expected"), [({"B": "P2", "C": "P3"}, 1), ({"B": "P2", "C": "P2"}, 0)])
def test_a_cycle_through_two_holders_is_a_back_and_forth(tmp_path, rows, kinds, holders, expected):
    """A pays B, B moves the money to its holder's other account C, C pays A back: two people, no cycle
    (found on seed 23's simulated world: three normal accounts flagged). Without holders it is one."""
    accounts = [{"account": a, "holder_id": holders.get(a, f"P{a}"), "kind": "personal"} for a in "ABC"]
    settings = DetectSettings(cycle_kinds=kinds, cycle_pass_through_only=False, cycle_min_quiet_share=0.0)
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows, accounts=accounts)
        run(ws, settings, only=["cycle"], full=True)
        found = ws.con.execute("SELECT count(*) FROM detect_raw_alerts WHERE typology = 'cycle'").fetchall()[0][0]
    assert found == expected


def test_a_cycle_without_holders_counts_accounts(tmp_path):
    settings = DetectSettings(cycle_kinds=("temporal",), cycle_pass_through_only=False)
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, ROUND)
        run(ws, settings, only=["cycle"], full=True)
        assert ws.con.execute("SELECT count(*) FROM detect_raw_alerts WHERE typology = 'cycle'").fetchall()[0][0] == 1


# -- bad settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [("--fan-min 1", "detect.fan_min"), ("--cycle-max-len 0", "detect.cycle_max_len"),
     ("--max-hops 13", "detect.max_hops"), ("--dwell-hours 0", "detect.dwell_hours"),
     ("--dwell-hours nan", "detect.dwell_hours"), ("--threshold -5", "detect.threshold"),
     ("--fan-window-hours -1", "detect.fan_window_hours"), ("--cycle-window-hours 0", "detect.cycle_window_hours")],
)  # fmt: skip
def test_bad_cli_values_are_one_line_errors(cli, tmp_path, args, field):
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    _clean_error(cli(f"detect {args}"), 2, field)


@pytest.mark.parametrize(
    ("toml", "field"),
    [("fan_mni = 3", "detect.fan_mni"), ("cycle_kinds = ['spiral']", "detect.cycle_kinds"),
     ("skip_same_holder = 'maybe'", "detect.skip_same_holder"), ("memory_limit = 5", "detect.memory_limit"),
     ("fan_min = true", "detect.fan_min")],
)  # fmt: skip
def test_bad_toml_values_are_one_line_errors(cli, tmp_path, toml, field):
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    (tmp_path / "fundtrace.toml").write_text(f"[detect]\n{toml}\n")
    _clean_error(cli("detect"), 2, field)


@pytest.mark.parametrize("args", ["--dwell-hours inf", "--fan-window-hours 1e15", "--cycle-window-hours inf"])
def test_infinite_or_huge_windows_are_config_errors(cli, tmp_path, args):
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    _clean_error(cli(f"detect {args}"), 2, "detect.")


def test_a_fractional_whole_number_setting_is_an_error(cli, tmp_path):
    (tmp_path / "fundtrace.toml").write_text("[detect]\nmax_hops = 2.5\n")
    _clean_error(cli("detect"), 2, "detect.max_hops")


def test_a_section_that_is_not_a_table_is_an_error(cli, tmp_path):
    (tmp_path / "fundtrace.toml").write_text("detect = 3\n")
    _clean_error(cli("detect"), 2, "detect")


# -- an explicit --since and what the next run believes ----------------------------------------------------


def test_since_after_a_new_batch_does_not_lose_it(cli, tmp_path, db):
    assert cli(f"load transactions {_write(tmp_path, 'b1.csv', SAME_TS[:12])}").code == 0
    _detect(cli)
    assert cli(f"load transactions {_write(tmp_path, 'b2.csv', SAME_TS[12:])}").code == 0
    _detect(cli, "--since 2030-01-01")
    _detect(cli)
    got = _state(db)
    shutil.copy(db, tmp_path / "full.duckdb")
    _detect(cli, "--full", db_path=tmp_path / "full.duckdb")
    assert got == _state(tmp_path / "full.duckdb")


def test_since_with_new_settings_then_a_plain_run_equals_full(cli, tmp_path, db):
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    assert _detect(cli)["alerts"]["fan_in"] == 1
    _detect(cli, f"--since {datetime(2030, 1, 1).isoformat()} --fan-min 9")
    _detect(cli, "--fan-min 9")
    got = _state(db)
    _detect(cli, "--fan-min 9 --full")
    assert got == _state(db)


def test_a_dense_mesh_stops_the_cycle_walk_with_a_clear_error(cli, tmp_path, db):
    """Twelve accounts paying each other the same amount every minute hold more time-ordered cycles than anyone
    could read: past cycle_max_walks open walks detect stops with one line naming the setting, stores nothing,
    and leaves the last run's alerts as they were."""
    lines = [
        f"{i},2024-03-01T{8 + i // 60:02d}:{i % 60:02d},A{i % 12},A{(i % 12 + 1 + i // 12 % 11) % 12},1000,transfer"
        for i in range(240)
    ]
    assert cli(f"load transactions {_write(tmp_path, 'mesh.csv', lines)}").code == 0
    assert _detect(cli)["alerts"].get("cycle", 0) > 100
    before = _state(db)
    (tmp_path / "fundtrace.toml").write_text("[detect]\ncycle_max_walks = 500\n")
    _clean_error(cli("detect"), 1, "cycle_max_walks (500)", "dense mesh", "--only")
    assert _state(db) == before


def test_running_out_of_memory_names_the_setting(cli, tmp_path, db):
    """A step that outgrows detect.memory_limit fails with one line saying which setting to raise; nothing is
    stored (onetime: a million equal payments at one instant made the chain walk do that at 1,200 MB)."""
    assert cli(f"load transactions {_write(tmp_path, 'same.csv', SAME_TS)}").code == 0
    before = _detect(cli)
    state = _state(db)
    (tmp_path / "fundtrace.toml").write_text('[detect]\nmemory_limit = "1MB"\n')
    _clean_error(cli("detect --full"), 1, "Out of Memory", "detect.memory_limit (1MB)", "nothing was stored")
    assert _state(db) == state and before["alerts"]


def test_a_sum_beyond_the_largest_money_value_is_a_clear_error(cli, tmp_path, db):
    """Each payment loads below 10^14 (DECIMAL(18, 4)), but an account passing two of them on moves more than any
    money column holds: detect fails with one line saying so, and stores nothing."""
    lines = [
        "1,2024-03-01T08:00,A,M,90000000000000,transfer", "2,2024-03-01T08:10,B,M,90000000000000,transfer",
        "3,2024-03-01T09:00,M,C,89000000000000,transfer", "4,2024-03-01T09:10,M,D,89000000000000,transfer",
    ]  # fmt: skip
    assert cli(f"load transactions {_write(tmp_path, 'big.csv', lines)}").code == 0
    _clean_error(cli("detect"), 1, "99,999,999,999,999.9999, the largest sum of money fundtrace keeps")
    with Workspace(db) as ws:
        assert ws.con.execute("SELECT count(*) FROM alerts").fetchall() == [(0,)]
