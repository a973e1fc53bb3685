"""How well could any account-level rule do on AMLSim's fan-in and fan-out alerts? An oracle bound.

The oracle knows what no detector knows: each laundering fan's hub and the exact days of its first
and last laundering payment. It flags the hub and every counterparty the hub dealt with in that span
on the hub's side of the fan (payers of a fan-in hub, payees of a fan-out hub), then splits those
counterparties by what a detector could see: how many payments the account makes in its whole life
(``--short`` or fewer: "short-lived") and how often it paid (or was paid by) the hub in all. When the
laundering and the ordinary counterparties of the same hub in the same days look alike on every such
signal, no rule over the transactions can reach both recall 0.90 and precision 0.80 on that typology,
whatever finds the hubs. Positives as in bench/amlsim_quality.py: accounts with a laundering payment
of an alert of that type.

    python bench/amlsim_oracle.py [--data fixtures/amlsim-dev] [--short 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

SIDES = {"fan_in": ("bene_acct", "orig_acct"), "fan_out": ("orig_acct", "bene_acct")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "fixtures/amlsim-dev")
    ap.add_argument("--short", type=int, default=10, help="at most this many payments in all: short-lived")
    args = ap.parse_args()
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv_auto('{args.data / 'transactions.csv.gz'}')").fetchall()
    con.execute(
        f"CREATE TABLE al AS SELECT * FROM read_csv_auto('{args.data / 'alert_transactions.csv.gz'}')"
    ).fetchall()
    con.execute(
        "CREATE TABLE life AS SELECT a, count(*) AS n FROM (SELECT orig_acct AS a FROM t UNION ALL "
        "SELECT bene_acct FROM t) GROUP BY a"
    ).fetchall()
    print("| typology | positives | oracle flags hub + all in span: flagged, recall, precision "
          "| hub + only short-lived ones: recall, precision "
          "| laundering counterparties not short-lived (paid the hub once / more) "
          "| ordinary counterparties in span (once / more) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for typ, (hub, other) in SIDES.items():
        con.execute(
            f"""CREATE OR REPLACE TABLE pos AS SELECT orig_acct AS a FROM al WHERE alert_type = '{typ}'
                UNION SELECT bene_acct FROM al WHERE alert_type = '{typ}'"""
        ).fetchall()
        con.execute(
            f"""CREATE OR REPLACE TABLE cp AS
                WITH span AS (SELECT alert_id, {hub} AS hub, min(tran_timestamp) AS s, max(tran_timestamp) AS e
                              FROM al WHERE alert_type = '{typ}' GROUP BY ALL),
                     seen AS (SELECT DISTINCT span.hub, t.{other} AS a FROM span
                              JOIN t ON t.{hub} = span.hub AND t.tran_timestamp BETWEEN span.s AND span.e)
                SELECT seen.hub, seen.a, a IN (SELECT a FROM pos) AS laundering, life.n <= {args.short} AS short,
                       (SELECT count(*) FROM t WHERE t.{hub} = seen.hub AND t.{other} = seen.a) AS pair_payments
                FROM seen JOIN life USING (a)"""
        ).fetchall()
        con.execute(
            f"""CREATE OR REPLACE TABLE flag AS SELECT DISTINCT {hub} AS a, true AS short FROM al
                WHERE alert_type = '{typ}' UNION ALL SELECT DISTINCT a, short FROM cp"""
        ).fetchall()
        n_pos, flagged, tp, short_flagged, short_tp, lo1, lon, no1, non = con.execute(
            """SELECT (SELECT count(*) FROM pos),
                      (SELECT count(DISTINCT a) FROM flag),
                      (SELECT count(DISTINCT a) FROM flag WHERE a IN (SELECT a FROM pos)),
                      (SELECT count(DISTINCT a) FROM flag WHERE short),
                      (SELECT count(DISTINCT a) FROM flag WHERE short AND a IN (SELECT a FROM pos)),
                      (SELECT count(*) FROM cp WHERE laundering AND NOT short AND pair_payments = 1),
                      (SELECT count(*) FROM cp WHERE laundering AND NOT short AND pair_payments > 1),
                      (SELECT count(*) FROM cp WHERE NOT laundering AND pair_payments = 1),
                      (SELECT count(*) FROM cp WHERE NOT laundering AND pair_payments > 1)"""
        ).fetchall()[0]
        print(
            f"| {typ} | {n_pos} | {flagged}, {tp / n_pos:.3f}, {tp / flagged:.3f} | {short_tp / n_pos:.3f}, "
            f"{short_tp / short_flagged:.3f} | {lo1} / {lon} | {no1} / {non} |"
        )


if __name__ == "__main__":
    main()
