"""Shared fixtures: run the real CLI in-process against temporary workspaces."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from fundtrace.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ws.duckdb"


@pytest.fixture
def cli(db: Path, capsys, monkeypatch, tmp_path: Path):
    """``cli("load transactions x.csv")`` runs fundtrace against the test's workspace."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FUNDTRACE_DB", raising=False)
    monkeypatch.delenv("FUNDTRACE_CONFIG", raising=False)

    def run(args: str | list[str], *, db_path: Path | None = None) -> Result:
        argv = shlex.split(args) if isinstance(args, str) else list(args)
        capsys.readouterr()
        code = main(["--db", str(db_path or db), *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
