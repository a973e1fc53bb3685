"""Incremental detection after a 100 k batch against a full rerun, part by part, with an equality check.

Uses the transaction files of ``bench/detect.py`` (``tx_<n>.parquet`` and ``tx_<n>_inc.parquet``, made
by ``python bench/detect.py --sizes N --keep DIR``). For each size, each phase in its own process:

- ``base``: load the main file and run a full detection (kept in DIR as ``incbase_<n>.duckdb``, reused);
- ``incr``: a copy of the base, the 100 k batch loaded, then the incremental ``detect.run()``;
- ``full``: ``detect.run(full=True)`` on that same workspace, and whether the stored alerts, members
  and evidence equal what the incremental run stored.

Each phase prints wall and CPU seconds (process and children), peak memory, and the runner's own
per-part wall/CPU seconds (prepare, narrow, each family, store_alerts, store_state, store_totals,
publish). "equal" compares the published alerts, members and evidence; the stored raw alerts, pass-through
episodes and chain hops are compared too, as order-free checksums.

    flock /tmp/fundtrace-bench.lock python bench/detect_incremental.py --dir DIR [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

PHASE = """
import json, resource, sys, time
phase, db, path = sys.argv[1], sys.argv[2], sys.argv[3]
from fundtrace.config import LoadSettings
from fundtrace.detect import run
from fundtrace.ingest import load_paths
from fundtrace.workspace import Workspace

def state(con):
    # the stored raw alerts, episodes and hops, as order-free checksums (count, sum of row hashes)
    tables = {
        "detect_raw_alerts": "alert_id, typology, round(score, 9), start_ts, end_ts, amount, n_accounts, n_txns",
        "detect_raw_members": "*",
        "detect_raw_evidence": "*",
        "detect_pt_hits": "acct, b, n_in, n_out, round(in_amt, 4), round(out_amt, 4), first_in, last_in, last_out",
        "detect_chain_hops": "*",
    }
    out = {}
    for table, cols in tables.items():
        sql = f"SELECT count(*), sum(CAST(hash(r) AS HUGEINT)) FROM (SELECT {cols} FROM {table}) r"
        out[table] = [int(v or 0) for v in con.execute(sql).fetchall()[0]]
    return out

def snapshot(ws):
    con = ws.con
    return (
        state(con),
        con.execute("SELECT alert_id, typology, round(score, 9), start_ts, end_ts, amount, n_accounts, n_txns, summary "
                    "FROM alerts ORDER BY alert_id").fetchall(),
        con.execute("SELECT * FROM alert_members ORDER BY alert_id, account_id").fetchall(),
        con.execute("SELECT * FROM alert_evidence ORDER BY alert_id, txn_id").fetchall(),
    )

out = {}
if phase in ("base", "incr"):
    t = time.perf_counter()
    with Workspace(db) as ws:
        load_paths(ws, "transactions", [path], settings=LoadSettings())
    out["load_s"] = time.perf_counter() - t
t, c = time.perf_counter(), time.process_time()
with Workspace(db) as ws:
    before = snapshot(ws) if phase == "full" else None
    t, c = time.perf_counter(), time.process_time()
    r = run(ws, full=(phase != "incr"))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    if phase == "full":
        after = snapshot(ws)
        out["equal"] = before == after
        out["alerts_equal"] = before[1] == after[1]
        out["state_equal"] = before[0] == after[0]
        out["state_diff"] = [k for k in after[0] if before[0][k] != after[0][k]]
        out["n"] = [len(x) for x in after[1:]]
        out["diff_alerts"] = len(set(before[1]) ^ set(after[1]))
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
out.update(mode=r["mode"], wall=wall, cpu=cpu, peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           recomputed=sum(r["recomputed"].values()), stored=sum(r["alerts"].values()), timings=r.get("timings", {}),
           cpu_parts=r.get("cpu", {}))
print(json.dumps(out))
"""


def phase(name: str, db: Path, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PHASE, name, str(db), str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{name} on {db.name} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = res.get("cpu_parts", {})
    parts = ", ".join(
        f"{k} {v:.2f}/{cpu.get(k, 0):.2f}" for k, v in sorted(res["timings"].items(), key=lambda kv: -kv[1])
    )
    extra = ""
    if name == "full":
        extra = (
            f", equal to the incremental result: {res['equal']} {res.get('n')}"
            f" (stored raw alerts, episodes, hops: {res['state_equal']} {res['state_diff']})"
        )
    print(
        f"  {name}: {res['mode']}, wall {res['wall']:.2f}s, cpu {res['cpu']:.2f}s, peak {res['peak_mib']:.0f} MiB, "
        f"{res['recomputed']:,} alerts recomputed{extra}\n    parts (wall/cpu s): {parts}",
        flush=True,
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="holds tx_<n>.parquet and tx_<n>_inc.parquet")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--rebuild", action="store_true", help="rebuild the base workspaces")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        main_file, inc_file = args.dir / f"tx_{n}.parquet", args.dir / f"tx_{n}_inc.parquet"
        base, work = args.dir / f"incbase_{n}.duckdb", args.dir / f"incwork_{n}.duckdb"
        print(f"{n:,} rows:", flush=True)
        if args.rebuild or not base.exists():
            base.unlink(missing_ok=True)
            phase("base", base, main_file)
        shutil.copy(base, work)
        incr = phase("incr", work, inc_file)
        full = phase("full", work, inc_file)
        rows.append((n, incr, full))
        work.unlink()
    print("| rows | incremental wall s | cpu s | full wall s | cpu s | incr/full wall | incr/full cpu | equal |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for n, i, f in rows:
        print(
            f"| {n:,} | {i['wall']:.2f} | {i['cpu']:.2f} | {f['wall']:.2f} | {f['cpu']:.2f} | "
            f"{i['wall'] / f['wall']:.1%} | {i['cpu'] / f['cpu']:.1%} | {f['equal'] and f['state_equal']} |"
        )


if __name__ == "__main__":
    main()
