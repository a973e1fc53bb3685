"""`fundtrace demo`: the whole pipeline on a simulated world, through the CLI.

The fast tests put the hand-built tiny world of fixtures/eval/tiny in place of the simulator (the
stages after it are the real ones); the slow test runs the real simulator end to end.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

import fundtrace.demo as demo

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "tiny"


def _tiny_world(out: Path, *, accounts: int, days: int, seed: int, fmt: str) -> dict:
    counts = {}
    for f in TINY.glob("*.csv"):
        shutil.copy(f, out / f.name)
        counts[f.stem] = len(f.read_text().splitlines()) - 1
    return counts


def _boom(ws):
    raise RuntimeError("detector exploded")


@pytest.fixture
def stand_in(monkeypatch):
    """Replace the simulator with the tiny world; ``missing`` stages are treated as not built."""
    real = demo._find
    replaced: dict[str, object] = {"fundtrace.simulate": _tiny_world}

    def find(module: str, attr: str):
        if module in replaced:
            return replaced[module]
        return real(module, attr)

    monkeypatch.setattr(demo, "_find", find)
    return replaced


def test_demo_runs_existing_stages_and_names_missing_ones(cli, tmp_path, stand_in):
    stand_in["fundtrace.detect"] = None  # as if detection were not built yet
    out = tmp_path / "demo"
    r = cli(f"demo --out {out} --format json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    stages = {s["stage"]: s for s in result["stages"]}
    assert stages["simulate"]["status"] == "done"
    assert stages["load"]["detail"] == {"transactions": 13, "reports": 3}
    assert stages["detect"]["status"] == "not built yet"
    assert stages["trace"]["status"] == "done" and stages["trace"]["detail"]["cases"] == 2
    score_built = importlib.util.find_spec("fundtrace.score") is not None
    assert (stages["score"]["status"] == "not built yet") is not score_built
    h = result["headline"]
    # 3 report rows for 2 cases from 2 victims; 1000 + 600 + 400 lost
    assert (h["reported_cases"], h["victims"], h["money_lost_reported"]) == (2, 2, 2000.0)
    assert h["truth_money_held_at_report"] == 1900.0
    assert h["traced"]["cases"] == 2
    ev = result["evaluation"]
    assert ev["detection"]["accounts"]["status"] == "absent"  # no alerts were made up
    assert ev["tracing"]["status"] == "ok" and ev["tracing"]["cases_traced"] == 2
    # the outputs are where the result says
    assert (out / "fundtrace.duckdb").is_file() and (out / "world" / "truth_holdings.csv").is_file()
    assert json.loads((out / "evaluation.json").read_text()) == ev

    table = cli(f"demo --out {out}")  # a second run replaces the first one's files
    assert table.code == 0, table.err
    assert "detect" in table.out and "not built yet" in table.out
    assert "2 cases from 2 victims, money lost 2,000.00" in table.out
    assert "closest rule" in table.out
    assert f"evaluate --truth {out / 'world'}" in table.out


def test_demo_reports_a_failing_stage_and_goes_on(cli, tmp_path, stand_in):
    stand_in["fundtrace.detect"] = _boom
    r = cli(f"demo --out {tmp_path / 'd'} --format json")
    assert r.code == 1
    stages = {s["stage"]: s for s in json.loads(r.out)["stages"]}
    assert stages["detect"]["status"] == "failed"
    assert stages["detect"]["detail"]["error"] == "RuntimeError: detector exploded"
    assert stages["trace"]["status"] == "done"
    assert "stage(s) failed: detect" in r.err


def test_demo_refuses_a_directory_it_did_not_write(cli, tmp_path, stand_in):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = cli(f"demo --out {other}")
    assert r.code == 2 and "not written by `fundtrace demo`" in r.err
    assert (other / "notes.txt").read_text() == "keep me"


def test_demo_small_end_to_end(cli, tmp_path):
    # about 7 s on this machine (simulate 1 s, load 1 s, detect 3-4 s): fast enough for the default run
    if importlib.util.find_spec("fundtrace.simulate") is None:
        pytest.fail("the simulator is not built")
    out = tmp_path / "demo"
    r = cli(f"demo --out {out} --size small --format json")
    result = json.loads(r.out)
    stages = {s["stage"]: s for s in result["stages"]}
    assert stages["simulate"]["status"] == "done" and stages["load"]["status"] == "done"
    assert r.code == (1 if any(s["status"] == "failed" for s in stages.values()) else 0)
    h = result["headline"]
    assert h["transactions"] > 10_000 and h["reported_cases"] > 0 and h["money_lost_reported"] > 0
    assert h["truth_cases"] >= h["reported_cases"]
    ev = result["evaluation"]
    assert ev["truth"]["kind"] == "fundtrace" and ev["truth"]["positive_accounts"] > 0
    if stages["trace"]["status"] == "done":
        assert ev["tracing"]["status"] == "ok" and ev["tracing"]["closest"] in demo_rules()
    if stages["detect"]["status"] == "done":
        assert ev["detection"]["accounts"]["status"] == "ok"
    assert result["seconds"] < 90


def demo_rules() -> tuple[str, ...]:
    from fundtrace.evaluate import RULES

    return RULES
