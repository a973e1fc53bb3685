# ruff: noqa: E501  (the generator is one SQL text; its lines stay whole)
"""Time and peak memory of all detectors at 1 M and 10 M synthetic transactions.

For each size the script generates a Parquet file of transactions in DuckDB (heavy-tailed normal
traffic over 30 days plus injected chains, stacked layers, fans, cycles, scatter-gather and
structuring, about 1 % of rows), then runs, each in its own process so that peak memory is its own:

- ``plain``: a plain DuckDB ``CREATE TABLE AS SELECT * FROM read_parquet`` of the same file;
- ``load``: ``fundtrace load transactions`` of the file (validated, keyed, atomic);
- ``detect``: ``fundtrace.detect.run(full=True)``, all typologies;
- ``load+1``: loading a further batch of 100 k transactions dated after the others;
- ``incr``: the incremental ``detect.run()`` after that batch.

    python bench/detect.py [--sizes 1000000 10000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GEN = """
import duckdb, sys
n, out, offset_days, seed, prefix = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
con.execute(f"SELECT setseed({seed})")
accts = max(n // 10, 1000)
inj = n // 100  # rows of injected patterns, about 1 %
days = 30 if offset_days == 0 else 1
con.execute(f'''
CREATE TABLE normal AS
SELECT '{prefix}n' || i AS txn_id,
       TIMESTAMP '2024-03-01' + to_microseconds(CAST({offset_days} * 86400e6 + random() * {days} * 86400e6 AS BIGINT)) AS ts,
       CAST(floor({accts} * pow(random(), 2.5)) AS BIGINT) AS s,
       CAST((floor({accts} * pow(random(), 2.5)) * 7919 + 13) AS BIGINT) % {accts} AS d,
       round(5 + exp(random() * 8.5), 2) AS amount,
       CASE WHEN random() < 0.9 THEN 'transfer' WHEN random() < 0.5 THEN 'pos' ELSE 'online' END AS channel
FROM range({n - inj}) r(i)
''')
# Injected patterns on mule accounts m<k>; victims are normal accounts. Each pattern p starts at t0.
k = max(inj // 40, 1)
con.execute(f'''
CREATE TABLE pat AS SELECT p, TIMESTAMP '2024-03-01' + to_microseconds(CAST({offset_days} * 86400e6 + random() * {days} * 86400e6 AS BIGINT)) AS t0,
  2000 + random() * 40000 AS a0, CAST(floor(random() * {accts}) AS BIGINT) AS v FROM range({k}) r(p)
''')
con.execute(f'''
CREATE TABLE inj AS
-- chain: victim -> m1 -> m2 -> m3 -> atm, 20-90 minutes per hop, 2 % kept per hop
SELECT '{prefix}c' || p || '-' || h AS txn_id, t0 + to_minutes(CAST(h * 50 + 20 * random() AS BIGINT)) AS ts,
       CASE WHEN h = 0 THEN 'v' || v ELSE 'c' || p || 'm' || h END AS sa,
       CASE WHEN h = 3 THEN 'atm' || (p % 50) ELSE 'c' || p || 'm' || (h + 1) END AS da,
       round(a0 * pow(0.98, h), 2) AS amount, CASE WHEN h = 3 THEN 'atm' ELSE 'transfer' END AS channel
FROM pat, range(4) r(h) WHERE p % 8 = 0
UNION ALL
-- stacked: victim -> s1, s1 splits to three s2_j, each s2_j -> cash-out crypto
SELECT '{prefix}s' || p || '-0', t0, 'v' || v, 's' || p || 'a', round(a0, 2), 'transfer' FROM pat WHERE p % 8 = 1
UNION ALL
SELECT '{prefix}s' || p || '-1-' || j, t0 + to_minutes(30 + j), 's' || p || 'a', 's' || p || 'b' || j,
       round(a0 * 0.32, 2), 'transfer' FROM pat, range(3) r(j) WHERE p % 8 = 1
UNION ALL
SELECT '{prefix}s' || p || '-2-' || j, t0 + to_minutes(90 + j), 's' || p || 'b' || j, 'x' || (p % 40),
       round(a0 * 0.31, 2), 'crypto' FROM pat, range(3) r(j) WHERE p % 8 = 1
UNION ALL
-- fan-in: 8 victims pay one mule within 12 h, then it forwards 97 % in two payments
SELECT '{prefix}fi' || p || '-' || j, t0 + to_minutes(CAST(j * 80 + random() * 30 AS BIGINT)),
       'v' || ((v + j * 104729) % {accts}), 'fi' || p, round(3000 + random() * 1500, 2), 'transfer'
FROM pat, range(8) r(j) WHERE p % 8 = 2
UNION ALL
-- fan-out: a mule pays 8 accounts within 6 h in similar amounts
SELECT '{prefix}fo' || p || '-' || j, t0 + to_minutes(CAST(j * 40 AS BIGINT)), 'fo' || p, 'fo' || p || 'r' || j,
       round(4800 + random() * 400, 2), 'transfer' FROM pat, range(8) r(j) WHERE p % 8 = 3
UNION ALL
-- cycle of four accounts, one hour per hop, 1 % kept
SELECT '{prefix}cy' || p || '-' || h, t0 + to_minutes(h * 60), 'cy' || p || 'a' || h, 'cy' || p || 'a' || ((h + 1) % 4),
       round(a0 * pow(0.99, h), 2), 'transfer' FROM pat, range(4) r(h) WHERE p % 8 = 4
UNION ALL
-- scatter-gather: source pays 5 intermediates, each passes the same amount to one sink
SELECT '{prefix}sg' || p || '-a' || j, t0 + to_minutes(j), 'sg' || p || 's', 'sg' || p || 'm' || j, round(a0 / 5, 2), 'transfer'
FROM pat, range(5) r(j) WHERE p % 8 = 5
UNION ALL
SELECT '{prefix}sg' || p || '-b' || j, t0 + to_minutes(120 + j), 'sg' || p || 'm' || j, 'sg' || p || 't', round(a0 / 5, 2), 'transfer'
FROM pat, range(5) r(j) WHERE p % 8 = 5
UNION ALL
-- structuring: five payments just under 50,000 within three days
SELECT '{prefix}st' || p || '-' || j, t0 + to_hours(j * 14), 'st' || p, 'v' || ((v + j) % {accts}),
       round(45500 + random() * 4000, 2), 'transfer' FROM pat, range(5) r(j) WHERE p % 8 = 6
''')
con.execute(f'''
COPY (
  SELECT txn_id, ts, 'b' || (s % 5) AS src_bank, 'a' || s AS src_account, 'b' || (d % 5) AS dst_bank, 'a' || d AS dst_account,
         amount, 'CNY' AS currency, channel FROM normal WHERE s <> d
  UNION ALL
  SELECT txn_id, ts, 'm', CASE WHEN sa LIKE 'v%' THEN 'a' || substr(sa, 2) ELSE sa END, 'm',
         CASE WHEN da LIKE 'v%' THEN 'a' || substr(da, 2) ELSE da END, amount, 'CNY', channel FROM inj
) TO '{out}' (FORMAT parquet)
''')
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0])
"""

PHASE = """
import json, resource, sys, time, logging
phase, db, path, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
t = time.perf_counter()
extra = {}
if phase == "plain":
    import duckdb
    con = duckdb.connect(db)
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}')")
    con.close()
elif phase.startswith("load"):
    from fundtrace.config import LoadSettings
    from fundtrace.ingest import load_paths
    from fundtrace.workspace import Workspace
    with Workspace(db) as ws:
        load_paths(ws, "transactions", [path], settings=LoadSettings())
else:
    from fundtrace.detect import run
    from fundtrace.workspace import Workspace
    times = {}
    class H(logging.Handler):
        def emit(self, r):
            if r.name == "fundtrace.detect" and " alerts in " in r.getMessage():
                m = r.getMessage(); times[m.split(":")[0]] = float(m.rsplit(" ", 1)[1].rstrip("s"))
    logging.getLogger("fundtrace.detect").addHandler(H()); logging.getLogger("fundtrace.detect").setLevel(logging.INFO)
    step_lines = []
    with Workspace(db) as ws:
        r = run(ws, full=(phase == "detect"), debug_sql=steps, report=step_lines.append)
    extra = {"mode": r["mode"], "alerts": sum(r["recomputed"].values()), "families": times, "steps": step_lines}
ru = resource.getrusage(resource.RUSAGE_SELF)
rc = resource.getrusage(resource.RUSAGE_CHILDREN)
extra["cpu"] = ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}))
"""


def phase(name: str, db: Path, path: Path, steps: bool = False) -> dict:
    cmd = [sys.executable, "-c", PHASE, name, str(db), str(path), "1" if steps else "0"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{name} on {path.name} failed:\n{out.stderr[-1500:]}", file=sys.stderr, flush=True)
        return {"seconds": float("nan"), "cpu": float("nan"), "peak_mib": float("nan"), "alerts": 0, "families": {},
                "failed": True}  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {name}: {result['seconds']:.1f}s wall, {result['cpu']:.1f}s CPU, peak {result['peak_mib']:.0f} MiB",
          file=sys.stderr, flush=True)  # fmt: skip
    for line in result.get("steps", []):
        print(f"    {line}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--keep", type=Path, help="keep the generated files and workspaces here")
    ap.add_argument("--no-incremental", action="store_true", help="skip the 100 k batch and the incremental run")
    ap.add_argument("--steps", action="store_true", help="print every SQL step's rows and seconds (--debug-sql)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    work = args.keep or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        main_file, inc_file = work / f"tx_{n}.parquet", work / f"tx_{n}_inc.parquet"
        for path, size, offset, seed, prefix in ((main_file, n, 0, 0.42, "t"), (inc_file, 100_000, 30, 0.17, "u")):
            if not path.exists():
                subprocess.run([sys.executable, "-c", GEN, str(size), str(path), str(offset), str(seed), prefix],
                               check=True, capture_output=True)  # fmt: skip
        for f in work.glob(f"*_{n}.duckdb*"):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        print(f"{n:,} rows:", file=sys.stderr, flush=True)
        ws = work / f"ws_{n}.duckdb"
        res = {
            "plain": phase("plain", work / f"plain_{n}.duckdb", main_file),
            "load": phase("load", ws, main_file),
            "detect": phase("detect", ws, main_file, args.steps),
        }
        if not args.no_incremental:
            res["load+1"] = phase("load+1", ws, inc_file)
            res["incr"] = phase("incr", ws, inc_file, args.steps)
        rows.append((n, res))
    nan = {"seconds": float("nan"), "cpu": float("nan"), "peak_mib": float("nan")}
    print("| rows | plain load s (CPU) | fundtrace load s (CPU) | detect s (CPU) | detect peak MiB | load+detect / plain |"
          " incr batch 100k: load s | incr detect s (CPU) | incr / full | alerts |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        p, ld, d, l1, inc = r["plain"], r["load"], r["detect"], r.get("load+1", nan), r.get("incr", nan)
        print(
            f"| {n:,} | {p['seconds']:.1f} ({p['cpu']:.1f}) | {ld['seconds']:.1f} ({ld['cpu']:.1f}) | "
            f"{d['seconds']:.1f} ({d['cpu']:.1f}) | {d['peak_mib']:.0f} | "
            f"{(ld['seconds'] + d['seconds']) / p['seconds']:.1f}x | {l1['seconds']:.1f} | "
            f"{inc['seconds']:.2f} ({inc['cpu']:.1f}) | {inc['seconds'] / d['seconds']:.1%} | {d['alerts']:,} |"
        )
    for n, r in rows:
        fams = r["detect"]["families"]
        fam = ", ".join(f"{k} {v:.1f}s" for k, v in fams.items())
        rest = r["detect"]["seconds"] - sum(fams.values())
        print(f"\n{n:,} rows, per detector (full run): {fam}; preparing, storing and start-up {rest:.1f}s")
        print(f"peak MiB: plain {r['plain']['peak_mib']:.0f}, load {r['load']['peak_mib']:.0f}, "
              f"detect {r['detect']['peak_mib']:.0f}, incremental {r.get('incr', nan)['peak_mib']:.0f}")  # fmt: skip
    tmp.cleanup()


if __name__ == "__main__":
    main()
