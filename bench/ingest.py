"""Benchmark: `fundtrace load` against a plain DuckDB load of the same file, in the same run.

    python bench/ingest.py [--rows 1000000 10000000] [--dir /tmp/fundtrace-bench] [--repeat 3]
    python bench/ingest.py --files /tmp/bench10/tx_10000000.parquet [--repeat 3]

For each size and format (CSV, Parquet) it generates synthetic transactions once (or takes the
``--files`` given), then times in fresh child processes (so peak memory is per measurement):
  plain     CREATE TABLE t AS SELECT * FROM read_csv/read_parquet(file) into a new .duckdb file
  fundtrace fundtrace load transactions file into a new workspace (validated, atomic, deduplicated)
and prints wall seconds, rows/s, the ratio fundtrace/plain, CPU seconds (user + system, all threads;
steadier than wall time on a shared machine) and peak RSS. With ``--repeat N`` the two are run N
times alternately and the median of each figure is shown, which tames a busy machine. Targets:
issue 2, ratio <= 2 and peak < 1 GiB at 10 M rows; issue 4, about 1.2. Both times include starting
Python and importing what they use (fundtrace's CLI, or duckdb alone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

CHILD = r"""
import json, resource, sys, time
mode, path, db = sys.argv[1:4]
t = time.perf_counter()
if mode == "plain":
    import duckdb
    con = duckdb.connect(db)
    reader = "read_parquet" if path.endswith(".parquet") else "read_csv"
    con.execute(f"CREATE TABLE t AS SELECT * FROM {reader}(?)", [path]).fetchall()
    con.close()
    code = 0
else:
    from fundtrace.cli import main
    code = main(["--db", db, "load", "transactions", path])
elapsed = time.perf_counter() - t
use = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM is this process's own peak (ru_maxrss would carry the parent's peak across fork + exec).
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": elapsed, "cpu": use.ru_utime + use.ru_stime, "maxrss_mb": hwm, "code": code}))
"""


def generate(rows: int, out: Path) -> tuple[Path, Path]:
    """Synthetic transfers among rows/10 accounts at 5 banks, heavy-tailed payees."""
    csv, pq = out / f"tx_{rows}.csv", out / f"tx_{rows}.parquet"
    if csv.exists() and pq.exists():
        return csv, pq
    con = duckdb.connect()
    n_acc = max(rows // 10, 100)
    con.execute(
        f"""CREATE TABLE g AS SELECT 't' || i AS txn_id,
              TIMESTAMP '2024-01-01' + to_seconds(i * 2) AS ts,
              'B' || (hash(i) % 5) AS src_bank,
              '62' || lpad(CAST(hash(i * 7) % {n_acc} AS VARCHAR), 10, '0') AS src_account,
              'B' || (hash(i + 1) % 5) AS dst_bank,
              '62' || lpad(CAST(CAST(pow(random(), 3) * {n_acc} AS BIGINT) AS VARCHAR), 10, '0') AS dst_account,
              round(1 + (hash(i * 3) % 5000000) / 100.0, 2) AS amount, 'CNY' AS currency,
              CASE WHEN i % 50 = 0 THEN 'atm' WHEN i % 7 = 0 THEN 'pos' ELSE 'transfer' END AS channel
            FROM range({rows}) r(i)"""
    )
    con.execute(f"COPY g TO '{csv}' (HEADER)")
    con.execute(f"COPY g TO '{pq}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    return csv, pq


def measure(mode: str, path: Path, work: Path) -> dict:
    db = work / f"{mode}-{path.stem}-{time.time_ns()}.duckdb"
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(db)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode} {path} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for f in work.glob(db.name + "*"):
        f.unlink()
    return result


def median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in ("seconds", "cpu", "maxrss_mb")}


def rows_of(path: Path) -> int:
    reader = "read_parquet" if path.suffix in (".parquet", ".pq") else "read_csv"
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT count(*) FROM {reader}(?)", [str(path)]).fetchall()[0][0]
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/fundtrace-bench"))
    parser.add_argument("--files", type=Path, nargs="+", help="time these files instead of generated ones")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; medians are shown")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.files:
        cases = [(rows_of(p), p) for p in args.files]
    else:
        cases = [(rows, path) for rows in args.rows for path in generate(rows, args.dir)]
    print(f"{'rows':>11} {'format':8} {'plain s':>8} {'fundtrace s':>12} {'ratio':>6} {'ft rows/s':>11} "
          f"{'plain cpu':>9} {'ft cpu':>7} {'cpu ratio':>9} {'plain MB':>9} {'ft MB':>7}")  # fmt: skip
    for rows, path in cases:
        runs: dict[str, list[dict]] = {"plain": [], "fundtrace": []}
        for _ in range(args.repeat):
            for mode, got in runs.items():
                got.append(measure(mode, path, args.dir))
        plain, ours = median(runs["plain"]), median(runs["fundtrace"])
        print(
            f"{rows:>11,} {path.suffix[1:]:8} {plain['seconds']:>8.2f} {ours['seconds']:>12.2f} "
            f"{ours['seconds'] / plain['seconds']:>6.2f} {rows / ours['seconds']:>11,.0f} "
            f"{plain['cpu']:>9.2f} {ours['cpu']:>7.2f} {ours['cpu'] / plain['cpu']:>9.2f} "
            f"{plain['maxrss_mb']:>9.0f} {ours['maxrss_mb']:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
