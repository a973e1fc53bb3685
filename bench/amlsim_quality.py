"""Account-level precision and recall per typology of `fundtrace detect` on the AMLSim development set.

Positive for typology T: an account with at least one laundering transaction of an AMLSim alert of
type T. Predicted for T: a member of a fundtrace alert of typology T (every role: AMLSim labels the
origin of a fan or cycle as laundering too). Only accounts that transact are counted.

    python bench/amlsim_quality.py [--data ../shared/data/amlsim-small] [--config bench/amlsim_detect.toml]
                                   [--set fan_window_hours=2400 ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fundtrace.config import Config, LoadSettings
from fundtrace.detect import DetectSettings, run
from fundtrace.ingest import load_paths
from fundtrace.workspace import Workspace

TYPES = ("fan_in", "fan_out", "cycle", "scatter_gather", "gather_scatter")


def measure(db: Path, data: Path, overrides: dict, config: Path | None = None) -> list[dict]:
    with Workspace(db) as ws:
        settings = Config.load(config).section("detect", DetectSettings, overrides)
        started = time.perf_counter()
        run(ws, settings, full=True)
        seconds = time.perf_counter() - started
        con = ws.con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE q_sar AS SELECT alert_type, CAST(orig_acct AS VARCHAR) AS a, "
            f"CAST(bene_acct AS VARCHAR) AS b FROM read_csv_auto('{data / 'alert_transactions.csv.gz'}')"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE q_active AS SELECT src_account AS account FROM transactions "
            "UNION SELECT dst_account FROM transactions"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE q_pos AS SELECT DISTINCT alert_type AS typ, a AS account FROM q_sar "
            "UNION SELECT alert_type, b FROM q_sar"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE q_pred AS SELECT DISTINCT a.typology AS typ, m.account FROM alerts a "
            "JOIN alert_members m USING (alert_id) WHERE m.account IN (SELECT account FROM q_active)"
        )
        rows = []
        for t in (*TYPES, "any"):
            pos = f"SELECT account FROM q_pos{'' if t == 'any' else ' WHERE typ = $t'}"
            pred = f"SELECT account FROM q_pred WHERE {'typ IN (SELECT unnest($types))' if t == 'any' else 'typ = $t'}"
            params = {"t": t} if t != "any" else {"types": list(TYPES)}
            n_pos, n_pred, tp = con.execute(
                f"SELECT (SELECT count(DISTINCT account) FROM ({pos})), "
                f"(SELECT count(DISTINCT account) FROM ({pred})), "
                f"(SELECT count(DISTINCT account) FROM ({pred}) WHERE account IN ({pos}))",
                params,
            ).fetchall()[0]
            fp_any = con.execute(
                f"SELECT count(DISTINCT account) FROM ({pred}) WHERE account NOT IN (SELECT account FROM q_pos)", params
            ).fetchall()[0][0]
            rows.append({
                "typology": t, "positives": n_pos, "predicted": n_pred, "true_pos": tp,
                "recall": tp / n_pos if n_pos else float("nan"), "precision": tp / n_pred if n_pred else float("nan"),
                "fp_not_sar_at_all": fp_any,
            })  # fmt: skip
        rows.append({"typology": f"(detect {seconds:.1f}s)"})
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/amlsim-small")
    ap.add_argument("--config", type=Path, help="a fundtrace.toml whose [detect] section to use")
    ap.add_argument("--set", action="append", default=[], help="detect setting override, name=value")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "amlsim.duckdb"
        with Workspace(db) as ws:
            for kind in ("transactions", "accounts"):
                load_paths(ws, kind, [str(args.data / f"{kind}.csv.gz")], settings=LoadSettings(), profile="amlsim")
        rows = measure(db, args.data, overrides, args.config)
    cols = ["typology", "positives", "predicted", "true_pos", "recall", "precision", "fp_not_sar_at_all"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print(
            "| " + " | ".join(f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |"
        )


if __name__ == "__main__":
    main()
