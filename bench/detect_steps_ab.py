"""Two versions of detection query files, step by step, alternating in one process on one workspace.

A full run is 30-70 s on a shared 2-core machine and its per-family times move by 20-40 % with what
else runs; the steps of a few query files measured in one process, the two versions taking turns on
the same prepared payments, compare more steadily. The workspace is opened read-only (the steps are
temporary tables). For each round and each version the named queries run in order (later ones read the
earlier ones' tables, as in a run), each step's wall and CPU seconds (the process, DuckDB's threads
included) are recorded; the medians are printed per step, and the last tables of the two versions are
compared (EXCEPT ALL both ways, DOUBLE columns rounded to 1e-9).

    flock /tmp/fundtrace-bench.lock python3 bench/detect_steps_ab.py --ws /tmp/me/ws_10000000.duckdb \\
        --a /work/main/queries --b /work/wt-me/queries [--rounds 3] \\
        [--queries detect/pass_through.sql detect/fans.sql detect/chain.sql]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import duckdb

from fundtrace import queries
from fundtrace.detect.base import params_for
from fundtrace.detect.settings import DetectSettings

EPOCH = "1970-01-01"


# the tables compared between the two versions (when both made them): what later steps and the runner read
COMPARED = ("pt_hits", "pt_evidence", "pt_members", "ch_hops", "ch_walk", "ch_shape", "fan_kept", "st_hits")


def run_file(con, path: Path, settings: DetectSettings, times: dict) -> None:
    """Run the steps of query file ``path``, recording each step's wall and CPU seconds."""
    q = queries.parse(path)
    given = params_for(q, settings)
    if any(p.name == "ctx_from" for p in q.params):
        given["ctx_from"] = EPOCH
    params = q.bind(given)
    for name, sql in q.steps:
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        wall, cpu = time.perf_counter(), time.process_time()
        con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}', used).fetchall()
        times.setdefault(name, []).append((time.perf_counter() - wall, time.process_time() - cpu))


def differ(con, a: str, b: str) -> tuple[int, int]:
    cols = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [a]
    ).fetchall()
    sel = ", ".join(f'round("{c}", 9)' if t == "DOUBLE" else f'"{c}"' for c, t in cols)
    one = con.execute(f'SELECT count(*) FROM (SELECT {sel} FROM "{a}" EXCEPT ALL SELECT {sel} FROM "{b}")').fetchall()
    two = con.execute(f'SELECT count(*) FROM (SELECT {sel} FROM "{b}" EXCEPT ALL SELECT {sel} FROM "{a}")').fetchall()
    return one[0][0], two[0][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ws", required=True)
    ap.add_argument("--a", type=Path, required=True, help="queries/ directory of version a (the baseline)")
    ap.add_argument("--b", type=Path, required=True, help="queries/ directory of version b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--queries", nargs="+", default=["detect/pass_through.sql", "detect/fans.sql", "detect/chain.sql"])
    ap.add_argument("--memory-limit", default=DetectSettings().memory_limit)
    args = ap.parse_args()
    settings = DetectSettings()
    con = duckdb.connect(args.ws, read_only=True)
    con.execute(f"SET memory_limit = '{args.memory_limit}'").fetchall()
    prep = {}
    run_file(con, args.b / "detect/prep.sql", settings, prep)
    print(f"dt_tx prepared with version b: {prep['dt_tx'][0][0]:.2f} s", flush=True)
    times = {"a": {}, "b": {}}
    for r in range(args.rounds):
        for v in ("a", "b") if r % 2 == 0 else ("b", "a"):
            for rel in args.queries:
                run_file(con, getattr(args, v) / rel, settings, times[v])
            for name in COMPARED:
                if name in times[v]:
                    con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}_{v}" AS SELECT * FROM "{name}"').fetchall()
            print(f"round {r} {v} done", flush=True)
    print("| step | a wall s | a CPU s | b wall s | b CPU s | b/a CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    tot = {"a": [0.0, 0.0], "b": [0.0, 0.0]}
    for step in times["a"]:
        med = {}
        for v in ("a", "b"):
            rows = times[v].get(step, [])
            med[v] = (statistics.median(w for w, _ in rows), statistics.median(c for _, c in rows)) if rows else (0, 0)
            tot[v][0] += med[v][0]
            tot[v][1] += med[v][1]
        ratio = med["b"][1] / med["a"][1] if med["a"][1] else float("nan")
        print(
            f"| {step} | {med['a'][0]:.2f} | {med['a'][1]:.2f} | {med['b'][0]:.2f} | {med['b'][1]:.2f} | {ratio:.2f} |"
        )
    print(f"| all | {tot['a'][0]:.2f} | {tot['a'][1]:.2f} | {tot['b'][0]:.2f} | {tot['b'][1]:.2f} | "
          f"{tot['b'][1] / tot['a'][1]:.2f} |")  # fmt: skip
    for name in COMPARED:
        if name in times["a"] and name in times["b"]:
            rows = con.execute(f'SELECT count(*) FROM "{name}_a"').fetchall()[0][0]
            print(f"{name}: {rows:,} rows; only in a, only in b: {differ(con, f'{name}_a', f'{name}_b')}")


if __name__ == "__main__":
    main()
