"""Benchmark: connected components on the engine and card-farm ring detection.

    python bench/rings.py                    # all phases, default sizes
    python bench/rings.py --accounts 200000  # smaller world

Phases, each in its own process so that peak memory (max RSS) is the phase's own:
  components  SQL connected components on a random bipartite graph of ~2 M nodes (accounts and
              identifiers, 2-3 identifiers per account);
  rings       detect_rings on a synthetic workspace of ~1 M accounts with ordinary sharing (family
              phones and devices, home IPs, office devices, public-IP hubs), injected card farms
              and 2 M transactions; reports how many farms were found exactly;
  networkx    SQL components against networkx.connected_components on a smaller graph (same
              labels checked), timing both, NetworkX including its graph build.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bipartite_edges(con: duckdb.DuckDBPyConnection, accounts: int) -> None:
    """Accounts 0..A-1 each linked to 2 or 3 of A identifiers (ids A..2A-1), uniformly at random."""
    con.execute(
        """
        CREATE OR REPLACE TABLE bench_edges AS
        SELECT i AS a, $n + (hash(i * 3 + k) % $n)::BIGINT AS b
        FROM range($n) r(i), range(3) s(k)
        WHERE k < 2 OR hash(i) % 2 = 0
        """,
        {"n": accounts},
    ).fetchall()


class Rounds(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.rounds: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("components of"):
            self.rounds.append(int(record.getMessage().split(": ")[1].split()[0]))


def phase_components(accounts: int) -> dict:
    from fundtrace.detect.components import connected_components
    from fundtrace.engine import DuckDBEngine

    con = duckdb.connect()
    bipartite_edges(con, accounts)
    nodes = con.execute("SELECT count(*) FROM (SELECT a FROM bench_edges UNION SELECT b FROM bench_edges)").fetchall()
    edges = con.execute("SELECT count(*) FROM bench_edges").fetchall()[0][0]
    started = time.perf_counter()
    rounds = connected_components(DuckDBEngine(con), "bench_edges", "bench_cc")
    seconds = time.perf_counter() - started
    comps = con.execute("SELECT count(DISTINCT component), max(n) FROM "
                        "(SELECT component, count(*) n FROM bench_cc GROUP BY component)").fetchall()[0]  # fmt: skip
    return {
        "phase": "components (SQL, ~2 M-node bipartite)",
        "nodes": nodes[0][0],
        "edges": edges,
        "rounds": rounds,
        "seconds": round(seconds, 2),
        "peak_mib": round(peak_mib()),
        "note": f"{comps[0]:,} components, largest {comps[1]:,} nodes",
    }


def build_world(path: Path, accounts: int, farms: int, txns: int) -> None:
    """A synthetic workspace written straight into the tables (the loader is benchmarked elsewhere)."""
    from fundtrace.workspace import Workspace

    with Workspace(path) as ws:
        con = ws.con
        con.execute(
            """
            INSERT INTO accounts (bank, account, account_id, holder_id, phone, opened_at, kind, batch_id)
            SELECT bank, account, account_key(bank, account), holder, phone, opened, 'personal', 1 FROM (
                SELECT 'B' || (i % 5) AS bank, 'N' || i AS account,
                       -- one holder in 10 has a second account (at another bank)
                       'H' || CASE WHEN i % 10 = 1 THEN i - 1 ELSE i END AS holder,
                       -- families: 1 in 20 accounts shares a phone with its neighbour
                       '1' || lpad(CAST(CASE WHEN i % 20 = 1 THEN i - 1 ELSE i END AS VARCHAR), 10, '0') AS phone,
                       TIMESTAMP '2015-01-01' + to_days(CAST(hash(i, 'open') % 3650 AS INTEGER)) AS opened
                FROM range($n) r(i))
            """,
            {"n": accounts},
        ).fetchall()
        # Farms: sizes 5..14, bought cards of distinct holders at several banks, opened within 5 days,
        # 1-3 phone cards and 1-2 devices per farm.
        con.execute(
            """
            INSERT INTO accounts (bank, account, account_id, holder_id, phone, opened_at, kind, batch_id)
            SELECT bank, account, account_key(bank, account), 'FH' || f || '-' || j, NULL,
                   TIMESTAMP '2024-01-01' + to_days(CAST(f % 300 AS INTEGER)) + to_hours(CAST(j * 11 AS INTEGER)),
                   'personal', 1
            FROM (SELECT f, j, 'B' || ((f + j) % 5) AS bank, 'F' || f || '-' || j AS account
                  FROM range($farms) r(f), range(14) s(j) WHERE j < 5 + f % 10)
            """,
            {"farms": farms},
        ).fetchall()
        con.execute(
            """
            INSERT INTO links (bank, account, account_id, kind, value, first_seen, batch_id)
            SELECT bank, account, account_key(bank, account), kind, value, NULL, 1 FROM (
                -- each ordinary account: its own device; 1 in 25 shares a family device with the next
                SELECT 'B' || (i % 5) AS bank, 'N' || i AS account, 'device' AS kind,
                       'DEV' || CASE WHEN i % 25 = 1 THEN i - 1 ELSE i END AS value FROM range($n) r(i)
                UNION ALL  -- home IPs shared by ~1.6 accounts on average
                SELECT 'B' || (i % 5), 'N' || i, 'ip', 'IP' || (hash(i, 'ip') % ($n * 6 // 10)) FROM range($n) r(i)
                WHERE i % 4 <> 0
                UNION ALL  -- public IPs: 20 hubs of ~12 000 accounts
                SELECT 'B' || (i % 5), 'N' || i, 'ip', 'PUB' || (i % 20) FROM range($n) r(i) WHERE i % 4 = 0
                UNION ALL  -- offices: devices shared by 15 colleagues
                SELECT 'B' || (i % 5), 'N' || i, 'device', 'OFFICE' || (i // 15) FROM range($n) r(i)
                WHERE i % 50 = 7
                UNION ALL  -- farms
                SELECT 'B' || ((f + j) % 5), 'F' || f || '-' || j, 'phone_card', 'FP' || f || '-' || (j % (1 + f % 3))
                FROM range($farms) r(f), range(14) s(j) WHERE j < 5 + f % 10
                UNION ALL
                SELECT 'B' || ((f + j) % 5), 'F' || f || '-' || j, 'device',
                       'FD' || f || '-' || ((j // 2) % (1 + f % 2))
                FROM range($farms) r(f), range(14) s(j) WHERE j < 5 + f % 10
                UNION ALL  -- and the farms' devices also sit behind public IPs (hubs)
                SELECT 'B' || ((f + j) % 5), 'F' || f || '-' || j, 'ip', 'PUB' || (f % 20)
                FROM range($farms) r(f), range(14) s(j) WHERE j < 5 + f % 10
            )
            """,
            {"n": accounts, "farms": farms},
        ).fetchall()
        con.execute(
            """
            INSERT INTO transactions
            SELECT 'T' || t, TIMESTAMP '2024-06-01' + to_seconds(CAST(t AS BIGINT)),
                   'B' || (s % 5), 'N' || s, 'B' || (d % 5), 'N' || d,
                   account_key('B' || (s % 5), 'N' || s), account_key('B' || (d % 5), 'N' || d),
                   CAST(1 + hash(t) % 100000 AS DECIMAL(18, 4)) / 100, 'CNY', 'transfer', 1
            FROM (SELECT t, hash(t, 's') % $n AS s, hash(t, 'd') % $n AS d FROM range($txns) r(t))
            """,
            {"n": accounts, "txns": txns},
        ).fetchall()


def phase_rings(accounts: int, farms: int, txns: int) -> dict:
    from fundtrace.detect.rings import RingSettings, detect_rings
    from fundtrace.engine import DuckDBEngine
    from fundtrace.workspace import Workspace

    rounds = Rounds()
    logging.getLogger("fundtrace.detect.components").addHandler(rounds)
    logging.getLogger("fundtrace.detect.components").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        build_world(path, accounts, farms, txns)
        built = time.perf_counter() - started
        build_peak = peak_mib()
        with Workspace(path) as ws:
            n_links = ws.con.execute("SELECT count(*) FROM links").fetchall()[0][0]
            n_acc = ws.con.execute("SELECT count(*) FROM accounts").fetchall()[0][0]
            started = time.perf_counter()
            found = detect_rings(DuckDBEngine(ws.con), RingSettings())
            seconds = time.perf_counter() - started
            edges = ws.con.execute("SELECT count(*) FROM rg_edges").fetchall()[0][0]
        members = found.members.to_pylist()
        by_alert: dict[str, set[str]] = {}
        for m in members:
            by_alert.setdefault(m["alert_id"], set()).add(m["account"])
        farm_sets = [s for s in by_alert.values() if all(a.startswith("F") for a in s)]
        exact = sum(1 for s in farm_sets if len({a.split("-")[0] for a in s}) == 1)
        innocent = sum(1 for s in by_alert.values() if any(a.startswith("N") for a in s))
    return {
        "phase": "rings (detect_rings, workspace file)",
        "nodes": n_acc,
        "edges": edges,
        "rounds": rounds.rounds[-1] if rounds.rounds else None,
        "seconds": round(seconds, 2),
        "peak_mib": round(peak_mib()),
        "note": f"{n_links:,} links, {txns:,} txns; world built in {built:.1f}s (peak {build_peak:.0f} MiB); "
        f"{len(by_alert):,} rings reported, {exact:,}/{farms:,} farms found exactly, "
        f"{innocent:,} rings with ordinary accounts",
    }


def phase_networkx(accounts: int) -> dict:
    import networkx as nx

    from fundtrace.detect.components import connected_components
    from fundtrace.engine import DuckDBEngine

    con = duckdb.connect()
    bipartite_edges(con, accounts)
    started = time.perf_counter()
    rounds = connected_components(DuckDBEngine(con), "bench_edges", "bench_cc")
    sql_seconds = time.perf_counter() - started
    started = time.perf_counter()
    edges = con.execute("SELECT a, b FROM bench_edges").fetchall()
    g = nx.Graph()
    g.add_edges_from(edges)
    oracle = {v: low for c in nx.connected_components(g) for low in [min(c)] for v in c}
    nx_seconds = time.perf_counter() - started
    same = dict(con.execute("SELECT node, component FROM bench_cc").fetchall()) == oracle
    return {
        "phase": "networkx comparison",
        "nodes": g.number_of_nodes(),
        "edges": len(edges),
        "rounds": rounds,
        "seconds": round(sql_seconds, 2),
        "peak_mib": round(peak_mib()),
        "note": f"NetworkX {nx_seconds:.2f}s (build + components); labels identical: {same}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the graph and the world")
    parser.add_argument("--farms", type=int, default=5_000, help="injected card farms (5-14 accounts each)")
    parser.add_argument("--txns", type=int, default=2_000_000, help="transactions in the world")
    parser.add_argument("--nx-accounts", type=int, default=100_000, help="accounts in the NetworkX comparison")
    parser.add_argument("--phase", choices=["components", "rings", "networkx"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "components":
        print(json.dumps(phase_components(args.accounts)))
        return
    if args.phase == "rings":
        print(json.dumps(phase_rings(args.accounts, args.farms, args.txns)))
        return
    if args.phase == "networkx":
        print(json.dumps(phase_networkx(args.nx_accounts)))
        return
    print(f"| {'phase':<40} | {'nodes':>10} | {'edges':>10} | rounds | seconds | peak MiB | notes")
    print(f"|{'-' * 42}|{'-' * 12}|{'-' * 12}|--------|---------|----------|------", flush=True)
    for phase in ("components", "rings", "networkx"):
        cmd = [sys.executable, __file__, "--phase", phase, "--accounts", str(args.accounts), "--farms",
               str(args.farms), "--txns", str(args.txns), "--nx-accounts", str(args.nx_accounts)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"| {r['phase']:<40} | {r['nodes']:>10,} | {r['edges']:>10,} | {r['rounds']!s:>6} | "
            f"{r['seconds']:>7.2f} | {r['peak_mib']:>8,} | {r['note']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
