"""A load killed with SIGKILL at any moment leaves the workspace exactly as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from tests.conftest import FIXTURES
from tests.test_load import snapshot


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.csv"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 'k' || i AS txn_id, TIMESTAMP '2024-01-01' + to_seconds(i) AS ts, 'B' || (i % 7) AS src_bank,
            'a' || (i * 7919 % 200003) AS src_account, 'B' || (i % 5) AS dst_bank,
            'a' || (i * 104729 % 200003) AS dst_account,
            round(1 + (i * 37 % 100000) / 100.0, 2) AS amount, 'CNY' AS currency, 'transfer' AS channel
            FROM range(1000000) r(i)) TO '{path}' (HEADER)"""
    )
    con.close()
    return path


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.8, 1.8, 3.0])
def test_sigkill_mid_load_leaves_workspace_unchanged(tmp_path, big_csv, delay):
    db = tmp_path / "ws.duckdb"
    env = {**os.environ, "FUNDTRACE_DB": str(db)}
    base = FIXTURES / "native" / "transactions.csv"
    subprocess.run([sys.executable, "-m", "fundtrace", "load", "transactions", str(base)], env=env, check=True)
    before = snapshot(db)

    proc = subprocess.Popen(
        [sys.executable, "-m", "fundtrace", "load", "transactions", str(big_csv)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # Killed before its commit, the batch must have left no trace; killed after it (the load won the
    # race), the batch must be complete. Anything in between is a half-written workspace.
    after = snapshot(db)
    complete = after["transactions"] == before["transactions"] + 1_000_000 and after["batches"] == before["batches"] + 1
    if complete:
        return
    assert {k: v for k, v in after.items() if k != "txns"} == {k: v for k, v in before.items() if k != "txns"}
    assert after["txns"] == before["txns"]
    done = subprocess.run(
        [sys.executable, "-m", "fundtrace", "load", "transactions", str(big_csv)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert snapshot(db)["transactions"] == before["transactions"] + 1_000_000
