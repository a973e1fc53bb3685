"""Benchmark and quality check of payment screening (`fundtrace screen`).

Latency: builds synthetic workspaces of 1 M and 10 M transactions directly in DuckDB (accounts, calls and a
sprinkle of alerts so the per-account state is realistic), runs ``fundtrace.score.run`` once, then screens
a batch of 10,000 payments (a Parquet file: half between pairs that already trade, half to new payees)
several times and prints the median latency, split into reading the file, scoring and storing.

Quality (``--quality WORLD``, a directory written by ``fundtrace simulate`` or the demo's ``world/``):
loads the world's transactions before a cut-off (default: the last 7 days are held out), the reports made
before it, all accounts, links and calls; runs detection, tracing (holdings at each report's time) and
scoring; then screens the held-out transactions as if they were arriving, and prints the share of fraud
payments held (by hop: 0 = the victim's own payment) and the false-hold rate on normal payments.

Usage::

    python bench/screen.py                       # latency at 1 M and 10 M
    python bench/screen.py --sizes 1000000       # one size
    python bench/screen.py --quality /tmp/demo-med/world --skip-latency
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fundtrace import score
from fundtrace.workspace import Workspace


def build_synthetic(db: Path, n_txns: int, seed: int = 7) -> float:
    """A workspace with ``n_txns`` transactions among n_txns/10 accounts; returns seconds taken."""
    started = time.perf_counter()
    n_acc = max(1000, n_txns // 10)
    with Workspace(db) as ws:
        con = ws.con
        con.execute(f"SELECT setseed({seed / 100})").fetchall()
        con.execute(
            f"""
            INSERT INTO accounts
            SELECT 'B' || (i % 12) AS bank, 'A' || lpad(CAST(i AS VARCHAR), 9, '0') AS account,
                   account_key('B' || (i % 12), 'A' || lpad(CAST(i AS VARCHAR), 9, '0')),
                   'P' || i, 'holder ' || i, CAST(13000000000 + i AS VARCHAR),
                   TIMESTAMP '2015-01-01' + to_days(CAST(random() * 3300 AS INTEGER)),
                   CASE WHEN i % 50 = 0 THEN 'merchant' ELSE 'personal' END,
                   CAST(round(random() * 50000, 2) AS DECIMAL(18, 4)), NULL, 1
            FROM range({n_acc}) t(i)
            """
        ).fetchall()
        # heavy-tailed payees: a fifth of payments go to 1 % of accounts (merchants and hubs)
        con.execute(
            f"""
            INSERT INTO transactions
            WITH t AS (
                SELECT i,
                       CAST(floor(random() * {n_acc}) AS BIGINT) AS s,
                       CASE WHEN random() < 0.2 THEN CAST(floor(random() * {n_acc // 100}) * 100 AS BIGINT)
                            ELSE CAST(floor(random() * {n_acc}) AS BIGINT) END AS d,
                       TIMESTAMP '2024-03-01' + to_seconds(CAST(random() * 30 * 86400 AS BIGINT)) AS ts,
                       round(exp(random() * 8) + 1, 2) AS amount
                FROM range({n_txns}) r(i)
            )
            SELECT 'T' || lpad(CAST(i AS VARCHAR), 10, '0'), ts,
                   'B' || (s % 12), 'A' || lpad(CAST(s AS VARCHAR), 9, '0'),
                   'B' || (d % 12), 'A' || lpad(CAST(d AS VARCHAR), 9, '0'),
                   account_key('B' || (s % 12), 'A' || lpad(CAST(s AS VARCHAR), 9, '0')),
                   account_key('B' || (d % 12), 'A' || lpad(CAST(d AS VARCHAR), 9, '0')),
                   CAST(amount AS DECIMAL(18, 4)), 'CNY', CASE WHEN i % 3 = 0 THEN 'pos' ELSE 'transfer' END, 1
            FROM t WHERE s <> d
            """
        ).fetchall()
        con.execute(
            f"""
            INSERT INTO calls
            SELECT TIMESTAMP '2024-03-01' + to_seconds(CAST(random() * 31 * 86400 AS BIGINT)),
                   CAST(17000000000 + CAST(floor(random() * 20000) AS BIGINT) AS VARCHAR),
                   CAST(13000000000 + CAST(floor(random() * {n_acc}) AS BIGINT) AS VARCHAR),
                   60, 1
            FROM range({n_txns // 10})
            """
        ).fetchall()
        # alerts on 0.5 % of accounts, so scores, bands and flagged phones are not empty
        con.execute(
            f"""
            INSERT INTO alerts SELECT 'bench:' || i, CASE i % 3 WHEN 0 THEN 'chain' WHEN 1 THEN 'fan_in'
                   ELSE 'card_farm_ring' END, 0.5 + (i % 50) / 100.0, TIMESTAMP '2024-03-10', TIMESTAMP '2024-03-11',
                   1000, 2, 2, 'bench', TIMESTAMP '2024-03-31'
            FROM range({n_acc // 200}) t(i)
            """
        ).fetchall()
        con.execute(
            f"""
            INSERT INTO alert_members
            SELECT 'bench:' || i, 'B' || (a % 12), 'A' || lpad(CAST(a AS VARCHAR), 9, '0'),
                   account_key('B' || (a % 12), 'A' || lpad(CAST(a AS VARCHAR), 9, '0')), 'mule', 1
            FROM (SELECT i, (i * 7919 + 13) % {n_acc} AS a FROM range({n_acc // 200}) t(i))
            """
        ).fetchall()
        con.execute("INSERT INTO calls SELECT ts, '17000000001', callee, 60, 1 FROM calls LIMIT 200").fetchall()
    return time.perf_counter() - started


def write_batch(db: Path, path: Path, n: int = 10_000) -> None:
    """Half of the payments between pairs that already trade, half to random (often new) payees."""
    with Workspace(db, read_only=True) as ws:
        ws.con.execute(
            f"""
            COPY (
                SELECT 'S' || row_number() OVER () AS txn_id, TIMESTAMP '2024-04-01' + to_seconds(CAST(i AS BIGINT))
                       AS ts, src_bank, src_account, dst_bank, dst_account, amount, 'CNY' AS currency,
                       'transfer' AS channel
                FROM (
                    SELECT row_number() OVER () AS i, src_bank, src_account, dst_bank, dst_account, amount
                    FROM (SELECT * FROM transactions USING SAMPLE {n // 2} ROWS)
                    UNION ALL
                    SELECT {n} + row_number() OVER (), a.bank, a.account, b.bank, b.account,
                           CAST(round(exp(random() * 10) + 1, 2) AS DECIMAL(18, 4))
                    FROM (SELECT bank, account FROM accounts USING SAMPLE {n // 2} ROWS) a
                    POSITIONAL JOIN (SELECT bank, account FROM accounts USING SAMPLE {n // 2} ROWS) b
                )
            ) TO '{path}' (FORMAT PARQUET)
            """
        ).fetchall()


def latency(sizes: list[int], repeats: int, keep: Path | None) -> list[dict]:
    rows = []
    for n in sizes:
        base = keep or Path(tempfile.mkdtemp(prefix="fundtrace-screen-bench-"))
        db = base / f"screen_{n}.duckdb"
        batch = base / f"batch_{n}.parquet"
        build_s = 0.0 if db.exists() else build_synthetic(db, n)
        with Workspace(db) as ws:
            t0 = time.perf_counter()
            summary = score.run(ws)
            score_s = time.perf_counter() - t0
            txns = ws.con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
        write_batch(db, batch)
        runs = []
        with Workspace(db) as ws:
            for _ in range(repeats):
                result = score.screen(ws, batch, store=True)
                runs.append(result)
        med = statistics.median(r["seconds"] for r in runs)
        best = min(runs, key=lambda r: r["seconds"])
        rows.append(
            {
                "transactions": txns,
                "accounts_scored": summary["accounts_scored"],
                "build_s": round(build_s, 1),
                "score_run_s": round(score_s, 2),
                "payments": runs[0]["payments"],
                "screen_median_s": round(med, 3),
                "screen_best_s": best["seconds"],
                "read_s": best["read_seconds"],
                "score_s": best["score_seconds"],
                "store_s": round(best["seconds"] - best["read_seconds"] - best["score_seconds"], 3),
                "hold": runs[0]["hold"],
                "review": runs[0]["review"],
            }
        )
        print_table([rows[-1]])
    return rows


def quality(world: Path, holdout_days: float, keep: Path | None, reuse: bool = False) -> dict:
    """Screen the world's last ``holdout_days`` against a workspace of everything before them."""
    import duckdb

    from fundtrace import detect, trace
    from fundtrace.config import LoadSettings
    from fundtrace.evaluate import find_truth_file
    from fundtrace.ingest import load_paths

    base = keep or Path(tempfile.mkdtemp(prefix="fundtrace-screen-quality-"))
    base.mkdir(parents=True, exist_ok=True)
    db = base / "before.duckdb"
    files = {k: find_truth_file(world, k) for k in ("accounts", "transactions", "links", "reports", "calls")}
    truth = find_truth_file(world, "truth_transactions")
    con = duckdb.connect()
    end = con.execute(f"SELECT max(ts) FROM '{files['transactions']}'").fetchall()[0][0]
    cut = con.execute(f"SELECT TIMESTAMP '{end}' - to_seconds(CAST({holdout_days} * 86400 AS BIGINT))").fetchall()[0][0]
    parts = {}
    for kind, column in (("transactions", "ts"), ("reports", "reported_at")):
        part = base / f"{kind}_before.parquet"
        con.execute(f"COPY (SELECT * FROM '{files[kind]}' WHERE {column} < '{cut}') TO '{part}' (FORMAT PARQUET)")
        parts[kind] = part
    later = base / "transactions_later.parquet"
    con.execute(f"COPY (SELECT * FROM '{files['transactions']}' WHERE ts >= '{cut}') TO '{later}' (FORMAT PARQUET)")
    timings = {}
    if db.exists() and not reuse:
        db.unlink()
    build = not db.exists()
    with Workspace(db) as ws:
        if build:
            t0 = time.perf_counter()
            for kind in ("accounts", "transactions", "links", "reports", "calls"):
                path = parts.get(kind) or files[kind]
                if path is not None:
                    load_paths(ws, kind, [str(path)], settings=LoadSettings())
            timings["load_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            detect.run(ws)
            timings["detect_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            trace.run(ws, as_of="reported")
            timings["trace_s"] = time.perf_counter() - t0
        ws.con.execute("DELETE FROM payment_decisions").fetchall()
        ws.con.execute("DELETE FROM freeze_requests").fetchall()
        t0 = time.perf_counter()
        score.run(ws)
        timings["score_s"] = time.perf_counter() - t0
        result = score.screen(ws, later, store=True)
        timings["screen_s"] = result["seconds"]
        ws.con.execute(f"CREATE OR REPLACE TEMP TABLE tt AS SELECT * FROM '{truth}'").fetchall()
        by_hop = ws.con.execute(
            """
            SELECT coalesce(CAST(t.hop AS VARCHAR), 'normal') AS hop, count(*) AS payments,
                   count(*) FILTER (WHERE d.decision = 'hold') AS held,
                   count(*) FILTER (WHERE d.decision = 'review') AS reviewed,
                   sum(d.amount) AS amount, sum(d.amount) FILTER (WHERE d.decision = 'hold') AS amount_held
            FROM payment_decisions d JOIN tt t ON t.txn_id = d.txn_id
            GROUP BY ALL ORDER BY min(t.hop) NULLS LAST
            """
        ).fetchall()
        overall = ws.con.execute(
            """
            SELECT t.is_fraud, count(*), count(*) FILTER (WHERE d.decision = 'hold'),
                   count(*) FILTER (WHERE d.decision = 'review'),
                   sum(d.amount), sum(d.amount) FILTER (WHERE d.decision = 'hold')
            FROM payment_decisions d JOIN tt t ON t.txn_id = d.txn_id GROUP BY 1 ORDER BY 1
            """
        ).fetchall()
    print(f"cut-off {cut}: {result['payments']:,} later payments screened in {result['seconds']:.3f}s")
    print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print_table(
        [
            {
                "hop": h,
                "payments": n,
                "held": held,
                "held_share": round(held / n, 4),
                "reviewed_share": round(rev / n, 4),
                "money_held_share": round(float(ah or 0) / float(a), 4),
            }
            for h, n, held, rev, a, ah in by_hop
        ]
    )
    out = {}
    for is_fraud, n, held, rev, a, ah in overall:
        key = "fraud" if is_fraud else "normal"
        out[key] = {"payments": n, "held": held, "held_share": held / n, "reviewed_share": rev / n,
                    "money_held_share": float(ah or 0) / float(a)}  # fmt: skip
    print_table([{"kind": k, **{x: round(y, 5) if isinstance(y, float) else y for x, y in v.items()}}
                 for k, v in out.items()])  # fmt: skip
    return out


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print(" | ".join(c.rjust(widths[c]) for c in cols))
    print("-+-".join("-" * widths[c] for c in cols))
    for r in rows:
        print(" | ".join(str(r[c]).rjust(widths[c]) for c in cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="transaction counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="screen runs per size (median reported)")
    parser.add_argument("--keep", type=Path, help="build (and reuse) the workspaces in this directory")
    parser.add_argument("--quality", type=Path, help="a simulated world directory to measure hold rates on")
    parser.add_argument("--holdout-days", type=float, default=7.0, help="quality: days screened at the end")
    parser.add_argument("--skip-latency", action="store_true", help="only the quality check")
    parser.add_argument("--reuse", action="store_true", help="quality: reuse the loaded, detected, traced workspace")
    args = parser.parse_args()
    if not args.skip_latency:
        latency([int(s) for s in args.sizes.split(",")], args.repeats, args.keep)
    if args.quality:
        quality(args.quality, args.holdout_days, args.keep, args.reuse)


if __name__ == "__main__":
    main()
