"""`fundtrace run`: detect, trace, score, freeze and report in one command; the pipeline's failure handling."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq

from fundtrace import pipeline
from fundtrace.workspace import Workspace
from test_query import build_world


def test_run_does_every_stage_and_writes_the_report(cli, tmp_path):
    world = build_world(tmp_path / "w")
    out = tmp_path / "out"
    r = cli(f"run --out {out} --now 2024-01-02T13:00:00 --format json", db_path=world)
    assert r.code == 0, r.err
    (result,) = json.loads(r.out)
    assert [(s["stage"], s["status"]) for s in result["stages"]] == [
        (s, "done") for s in ("detect", "trace", "score", "freeze", "report")
    ]
    for stage in pipeline.STAGES:  # one progress line per finished stage on stderr
        assert f"\n{stage:<7} done" in "\n" + r.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == result["run_id"]
    assert pq.read_schema(out / "trace_flows.parquet").metadata[b"run_id"].decode() == result["run_id"]
    # the stages really ran: the tracer replaced the hand-made flows, the freeze list was issued and recorded
    with Workspace(world, read_only=True) as ws:
        flows = ws.con.execute("SELECT count(DISTINCT case_id) FROM trace_flows").fetchall()[0][0]
        requests = ws.con.execute("SELECT count(*) FROM freeze_requests WHERE status = 'active'").fetchall()[0][0]
        listed = ws.con.execute("SELECT count(*) FROM freeze_list").fetchall()[0][0]
    assert flows == 2
    with (out / "freeze_list.csv").open(encoding="utf-8") as f:
        issued = list(csv.DictReader(f))
    assert manifest["freeze"] == {"requests": len(issued), "recorded": True}
    assert requests >= listed  # every listed account now has an active request
    again = cli(f"run --out {out} --now 2024-01-02T14:00:00 --format json", db_path=world)
    assert again.code == 0, again.err
    assert json.loads(again.out)[0]["run_id"] != result["run_id"]


def test_a_failing_stage_stops_the_run_or_is_recorded_with_keep_going(tmp_path):
    world = build_world(tmp_path / "w")

    def boom(ws):
        raise RuntimeError("detector exploded")

    with Workspace(world) as ws:
        try:
            pipeline.run(ws, tmp_path / "a", runners={"detect": boom})
        except RuntimeError as exc:
            assert "exploded" in str(exc)
        else:
            raise AssertionError("the failure did not stop the run")
        result = pipeline.run(ws, tmp_path / "b", runners={"detect": boom, "trace": None}, keep_going=True)
    status = {s["stage"]: s["status"] for s in result["stages"]}
    assert status == {"detect": "failed", "trace": "not built yet", "score": "not built yet",
                      "freeze": "skipped", "report": "done"}  # fmt: skip
    assert result["stages"][0]["detail"] == {"error": "RuntimeError: detector exploded"}
    assert (tmp_path / "b" / "manifest.json").exists()


def test_run_refuses_a_bad_rule(cli, tmp_path):
    r = cli(f"run --out {tmp_path / 'o'} --rule nope")
    assert r.code == 2
