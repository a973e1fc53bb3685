"""`fundtrace detect` through the real command line."""

from __future__ import annotations

import json


def _csv(tmp_path):
    f = tmp_path / "t.csv"
    lines = ["txn_id,ts,src_account,dst_account,amount,channel"]
    lines += ["1,2024-03-01T08:00,V,M1,10000,transfer", "2,2024-03-01T08:30,M1,M2,9800,transfer",
              "3,2024-03-01T09:00,M2,M3,9600,transfer", "4,2024-03-01T09:30,M3,ATM,9500,atm"]  # fmt: skip
    f.write_text("\n".join(lines) + "\n")
    return f


def test_detect_stores_alerts_and_reports(cli, tmp_path):
    assert cli(f"load transactions {_csv(tmp_path)}").code == 0
    r = cli("detect --format json")
    assert r.code == 0, r.err
    out = json.loads(r.out)[0]
    assert out["mode"] == "full"
    assert out["alerts"]["chain"] == 1 and out["alerts"]["pass_through"] == 3
    r = cli("detect --format json")  # nothing new: nothing recomputed
    assert json.loads(r.out)[0]["mode"] == "up_to_date"
    r = cli("detect --only chain --debug-sql --full")
    assert r.code == 0
    assert "step ch_walk:" in r.err and "rows in" in r.err
    assert "chain" in r.out


def test_detect_usage_errors(cli, tmp_path):
    assert cli(f"load transactions {_csv(tmp_path)}").code == 0
    assert cli("detect --only nonsense").code == 2
    r = cli("detect --since yesterday")
    assert r.code == 2 and "--since" in r.err
    (tmp_path / "fundtrace.toml").write_text("[detect]\nfan_min = 'many'\n")
    r = cli("detect")
    assert r.code == 2 and "detect.fan_min" in r.err
    (tmp_path / "fundtrace.toml").write_text("[detect]\ndwell_hours = -1\nmemory_limit = 'lots'\n")
    r = cli("detect")
    assert r.code == 2 and "detect.dwell_hours" in r.err and "detect.memory_limit" in r.err
