"""Detect on shapes of payments unlike bench/detect.py's: time, peak memory and alerts of a full run.

bench/detect.py's world has 1 M accounts for 10 M payments, most of them quiet (heavy-tailed). Data from
elsewhere can be denser or stranger. Each shape is generated as a native transactions Parquet file (all
in one bank, channel transfer, no registry), loaded, and detected with defaults, each phase in its own
process (bench/detect.py's ``phase``):

- ``mesh:A:P:D``: P payments between A accounts drawn uniformly, over D days, amounts e^4 to e^9
  (every account busy: 10 M payments among 200 k accounts is 100 payments each per month);
- ``star``: one hub, 500 k payments in from 200 k payers and 500 k out to 200 k payees, 30 days;
- ``bip``: 2,000 complete blocks of 20 payers x 25 payees, every pair paid once within a day;
- ``relay``: 300 k payments of about 1,000 among 5,000 accounts in one day (everyone passes money on);
- ``chain``: one path through 1 M accounts, each forwarding within 10 minutes.

    python bench/detect_shapes.py [--shapes mesh:20000:1000000:30 mesh:200000:10000000:30 star bip relay chain]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect import phase  # noqa: E402  (bench/detect.py: one process per phase, its peak memory)

T0 = "TIMESTAMP '2024-03-01'"


def _mesh(accounts: int, payments: int, days: float) -> str:
    return f"""SELECT 'm' || i, {T0} + to_microseconds(CAST(random() * {days} * 86400e6 AS BIGINT)),
      'a' || CAST(floor(random() * {accounts}) AS BIGINT), 'a' || CAST(floor(random() * {accounts}) AS BIGINT),
      round(exp(4 + random() * 5), 2) FROM range({payments}) r(i)"""


SHAPES = {
    "star": f"""SELECT 's' || i, {T0} + to_microseconds(CAST(random() * 30 * 86400e6 AS BIGINT)),
      CASE WHEN i % 2 = 0 THEN 'p' || CAST(floor(random() * 200000) AS BIGINT) ELSE 'HUB' END,
      CASE WHEN i % 2 = 0 THEN 'HUB' ELSE 'q' || CAST(floor(random() * 200000) AS BIGINT) END,
      round(10 + random() * 2000, 2) FROM range(1000000) r(i)""",
    "bip": f"""SELECT 'b' || i, {T0} + to_microseconds(CAST(random() * 86400e6 AS BIGINT)),
      'p' || (i // 500) || '_' || (i % 20), 'q' || (i // 500) || '_' || ((i // 20) % 25), 1000.0
      FROM range(1000000) r(i)""",
    "relay": f"""SELECT 'r' || i, {T0} + to_microseconds(CAST(random() * 86400e6 AS BIGINT)),
      'a' || CAST(floor(random() * 5000) AS BIGINT), 'a' || CAST(floor(random() * 5000) AS BIGINT),
      round(990 + random() * 20, 2) FROM range(300000) r(i)""",
    "chain": f"""SELECT 'c' || i, {T0} + to_minutes(CAST(i * 10 AS BIGINT) % 43200), 'a' || i, 'a' || (i + 1),
      round(100000 * pow(0.99, i % 50), 2) FROM range(1000000) r(i)""",
}


def generate(shape: str, out: Path) -> int:
    """Write ``shape``'s payments to ``out``; return how many."""
    if shape.startswith("mesh:"):
        accounts, payments, days = shape.split(":")[1:]
        sql = _mesh(int(accounts), int(payments), float(days))
    else:
        sql = SHAPES[shape]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    con.execute("SELECT setseed(0.25)").fetchall()
    con.execute(
        f"""COPY (SELECT txn_id, ts, 'b' AS src_bank, src AS src_account, 'b' AS dst_bank, dst AS dst_account, amount,
                   'CNY' AS currency, 'transfer' AS channel FROM ({sql}) x(txn_id, ts, src, dst, amount)
                   WHERE src <> dst) TO '{out}' (FORMAT parquet)"""
    ).fetchall()
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shapes = ["mesh:20000:1000000:30", "mesh:200000:10000000:30", "star", "bip", "relay", "chain"]
    ap.add_argument("--shapes", nargs="+", default=shapes)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            path, ws = Path(tmp) / "tx.parquet", Path(tmp) / "ws.duckdb"
            n = generate(shape, path)
            print(f"{shape}: {n:,} payments", file=sys.stderr, flush=True)
            load = phase("load", ws, path)
            det = phase("detect", ws, path)
            rows.append((shape, n, load, det))
            ws.unlink(missing_ok=True)
    print("| shape | payments | load s | detect s (CPU) | peak MiB | raw alerts | slowest families (s) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for shape, n, load, det in rows:
        slow = ", ".join(f"{k} {v:.1f}" for k, v in sorted(det["families"].items(), key=lambda kv: -kv[1])[:3])
        print(
            f"| {shape} | {n:,} | {load['seconds']:.1f} | {det['seconds']:.1f} ({det['cpu']:.1f}) | "
            f"{det['peak_mib']:.0f} | {det.get('alerts', 0):,} | {slow} |"
        )


if __name__ == "__main__":
    main()
