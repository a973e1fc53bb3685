"""Two source trees' full detect runs back to back on copies of one workspace, and their results compared.

Speed work must not change results; on a shared 2-core machine only back-to-back pairs measured in
one run compare fairly. For each round the script copies the workspace twice, runs
``fundtrace.detect.run(full=True)`` once with each tree first on ``PYTHONPATH`` (each in its own
process, alternating which goes first), and reports wall seconds, CPU seconds (the process and its
threads) and peak memory. After the last round it compares the stored results of the two copies:
raw and published alerts, members, evidence and the pass-through episodes, EXCEPT ALL both ways
with DOUBLE columns rounded to ``--digits`` (repeated floating sums differ in the last bits between
two runs of the same code) and ``detected_at`` left out.

    python bench/detect_pair.py --ws /tmp/bench10/ws_10000000.duckdb --dir /tmp/me-pair \\
        --base /work/main/src --new /work/wt-me/src [--rounds 2] [--only pass_through fan_in]

Run it under the shared benchmark lock (``flock /tmp/fundtrace-bench.lock python3 ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PHASE = """
import json, resource, sys, time
t = time.perf_counter()
from fundtrace.detect import run
from fundtrace.workspace import Workspace
only = sys.argv[2].split(",") if sys.argv[2] else None
with Workspace(sys.argv[1]) as ws:
    r = run(ws, full=True, only=only)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": ru.ru_utime + ru.ru_stime,
                  "peak_mib": ru.ru_maxrss / 1024, "timings": r["timings"], "part_cpu": r["cpu"]}))
"""

TABLES = [
    "detect_raw_alerts",
    "detect_raw_members",
    "detect_raw_evidence",
    "alerts",
    "alert_members",
    "alert_evidence",
    "detect_pt_hits",
    "detect_chain_hops",
]


def detect(src: str, db: Path, only: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run(
        [sys.executable, "-c", PHASE, str(db), ",".join(only)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(a: Path, b: Path, digits: int) -> dict[str, tuple[int, int]]:
    """Rows of each table in ``a`` and not in ``b`` and the other way round (0, 0 when equal)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)").fetchall()
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)").fetchall()
    diffs = {}
    for table in TABLES:
        cols = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'a' AND table_name = ? "
            "ORDER BY column_index",
            [table],
        ).fetchall()
        if not cols:
            continue
        sel = ", ".join(
            f'round("{c}", {digits}) AS "{c}"' if t == "DOUBLE" else f'"{c}"' for c, t in cols if c != "detected_at"
        )
        one = f"(SELECT {sel} FROM a.{table} EXCEPT ALL SELECT {sel} FROM b.{table})"
        two = f"(SELECT {sel} FROM b.{table} EXCEPT ALL SELECT {sel} FROM a.{table})"
        n = con.execute(
            f"SELECT (SELECT count(*) FROM a.{table}), (SELECT count(*) FROM {one}), (SELECT count(*) FROM {two})"
        ).fetchall()[0]
        diffs[table] = (n[0], n[1], n[2])
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ws", required=True, help="the workspace to copy (never written)")
    ap.add_argument("--dir", required=True, help="where the copies go")
    ap.add_argument("--base", required=True, help="src directory of the baseline tree")
    ap.add_argument("--new", required=True, help="src directory of the tree measured")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--digits", type=int, default=9)
    ap.add_argument("--no-compare", action="store_true")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in range(args.rounds):
        order = [("base", args.base), ("new", args.new)]
        if r % 2:
            order.reverse()
        for label, src in order:
            db = work / f"{label}.duckdb"
            shutil.copyfile(args.ws, db)
            res = detect(src, db, args.only)
            rows.append((r, label, res))
            print(
                f"round {r} {label}: {res['seconds']:.2f} s wall, {res['cpu']:.2f} s CPU, "
                f"{res['peak_mib']:.0f} MiB; parts {json.dumps(res['timings'])}; "
                f"part CPU {json.dumps(res['part_cpu'])}",
                flush=True,
            )
    for label in ("base", "new"):
        mine = [x for _, lab, x in rows if lab == label]
        print(
            f"{label}: wall {min(x['seconds'] for x in mine):.2f}-{max(x['seconds'] for x in mine):.2f} s, "
            f"CPU {min(x['cpu'] for x in mine):.2f}-{max(x['cpu'] for x in mine):.2f} s, "
            f"peak {max(x['peak_mib'] for x in mine):.0f} MiB"
        )
    if not args.no_compare:
        for table, (n, one, two) in compare(work / "base.duckdb", work / "new.duckdb", args.digits).items():
            print(f"{table}: {n:,} rows, {one} only in base, {two} only in new")


if __name__ == "__main__":
    main()
