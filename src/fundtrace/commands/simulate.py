"""`fundtrace simulate`: write a synthetic telecom-fraud world with money-level ground truth."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fundtrace.cli import app, emit, progress_steps, say


class FileFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="The directory to write the files into (created if missing).")],
    accounts: Annotated[
        int,
        typer.Option(
            help="How many accounts the world has; with --days this sets the volume (~1 transaction "
            "per account and day: 33,000 x 30 days is about 1 M transactions)."
        ),
    ] = 20_000,  # fmt: skip
    days: Annotated[int, typer.Option(help="How many days of activity to simulate, starting 2024-03-01 UTC.")] = 30,
    seed: Annotated[int, typer.Option(help="The random seed; the same seed writes identical files.")] = 7,
    fmt: Annotated[
        FileFormat, typer.Option("--format", help="Write CSV files (NAME.csv) or Parquet files (NAME.parquet).")
    ] = FileFormat.csv,
) -> None:
    """Write a synthetic world: accounts, transactions, links, reports and calls in the native
    columns, plus ground truth (truth_transactions, truth_accounts, truth_cases, truth_holdings,
    truth_balances). Load the native files in that order with `fundtrace load KIND FILE`."""
    from fundtrace.simulate import describe
    from fundtrace.simulate import simulate as run

    with progress_steps("simulating"):
        counts = run(out, accounts=accounts, days=days, seed=seed, fmt=fmt.value)
    info = describe(out)
    say(f"wrote {len(counts)} files to {out}")
    emit([{"file": f"{k}.{fmt.value}", "rows": v} for k, v in counts.items()], title="files")
    emit(info["typologies"], title="fraud cases by typology")
    say(", ".join(f"{n:,} {r}" for r, n in info["roles"].items()) + f"; {info['rings']} card-farm rings")
