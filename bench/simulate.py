"""Benchmark `fundtrace.simulate`: rows per second and peak memory at ~1 M and ~10 M transactions.

    python bench/simulate.py                 # 1m and 10m, CSV
    python bench/simulate.py --sizes 1m --format parquet

Each size runs in its own process so that peak memory (ru_maxrss) belongs to that run alone.
The world is written to a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

SIZES = {"100k": (3_300, 30), "1m": (33_000, 30), "10m": (330_000, 30)}

CHILD = """
import json, resource, sys, time
from fundtrace.simulate import simulate
out, accounts, days, fmt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t = time.perf_counter()
counts = simulate(out, accounts=accounts, days=days, seed=7, fmt=fmt)
elapsed = time.perf_counter() - t
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"counts": counts, "seconds": elapsed, "peak_mb": peak_mb}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1m,10m", help="comma-separated: " + ", ".join(SIZES))
    ap.add_argument("--format", default="csv", choices=["csv", "parquet"])
    args = ap.parse_args()
    print(
        f"{'size':>5} {'accounts':>9} {'days':>4} {'transactions':>13} {'all rows':>11} {'seconds':>8} "
        f"{'txn/s':>10} {'rows/s':>10} {'peak MB':>8} {'MB on disk':>10}"
    )
    for size in args.sizes.split(","):
        accounts, days = SIZES[size]
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, out, str(accounts), str(days), args.format],
                check=True,
                capture_output=True,
                text=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            disk = subprocess.run(["du", "-sm", out], capture_output=True, text=True).stdout.split()[0]
        txns = r["counts"]["transactions"]
        rows = sum(r["counts"].values())
        print(
            f"{size:>5} {accounts:>9,} {days:>4} {txns:>13,} {rows:>11,} {r['seconds']:>8.1f} "
            f"{txns / r['seconds']:>10,.0f} {rows / r['seconds']:>10,.0f} {r['peak_mb']:>8,.0f} {disk:>10}"
        )


if __name__ == "__main__":
    main()
