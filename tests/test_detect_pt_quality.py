"""Pass-through episodes of a busy mule: each in-bucket counts the payments out only until the next
bucket's first payment in, so back-to-back episodes less than a dwell window apart stay apart.

Minutes are after 08:00 on 1 March 2024 (tests/test_detect_helpers.py); with the default 48 h dwell the
buckets start at 00:00 on 29 February, 2 March (minute 960) and 4 March (minute 3840).
"""

from __future__ import annotations

import pytest

from fundtrace.detect import DetectSettings, run
from fundtrace.workspace import Workspace
from test_detect_helpers import fill, full_state, incremental_state, snapshot

# name, payments (id, minute, payer, payee, amount), M's expected episodes (in, out, payments out)
CASES = [
    (
        "two episodes a day apart across a bucket boundary",
        [
            ("1", 0, "A", "M", 10000),
            ("2", 60, "M", "X", 9700),
            ("3", 1500, "B", "M", 8000),
            ("4", 1560, "M", "Y", 7800),
        ],
        [(10000, 9700, 1), (8000, 7800, 1)],
    ),
    (
        "three episodes, each less than a dwell window after the one before",
        [
            ("1", 720, "A", "M", 10000),
            ("2", 780, "M", "X", 9700),
            ("3", 3120, "B", "M", 8000),
            ("4", 3180, "M", "Y", 7800),
            ("5", 4200, "C", "M", 6000),
            ("6", 4260, "M", "Z", 5800),
        ],
        [(10000, 9700, 1), (8000, 7800, 1), (6000, 5800, 1)],
    ),  # fmt: skip
    (
        "an episode split over several payments out, the next one a day later",
        [
            ("1", 0, "A", "M", 9000),
            ("2", 30, "M", "X", 3000),
            ("3", 31, "M", "Y", 2900),
            ("4", 32, "M", "Z", 2900),
            ("5", 1500, "B", "M", 8000),
            ("6", 1560, "M", "W", 7800),
        ],
        [(9000, 8800, 3), (8000, 7800, 1)],
    ),  # fmt: skip
    (
        "payments in within one bucket stay one episode (no cut inside a bucket)",
        [("1", 0, "A", "M", 5000), ("2", 120, "B", "M", 5000), ("3", 180, "M", "X", 9700)],
        [(10000, 9700, 1)],
    ),
    (
        "a payment out after the next bucket's first payment in counts for that bucket only",
        [("1", 0, "A", "M", 8000), ("2", 1500, "B", "M", 8000), ("3", 1560, "M", "X", 7800)],
        [(8000, 7800, 1)],
    ),
    (
        # a known limit: both victims' money leaves after the second arrived, in the second bucket, so the
        # first bucket has nothing out and the second more out than in (over_max); before the cut the first
        # bucket counted both payments out and broke over_max as well
        "two receipts across the boundary forwarded together after the second: no episode",
        [
            ("1", 0, "A", "M", 10000),
            ("2", 1500, "B", "M", 10000),
            ("3", 1560, "M", "X", 9700),
            ("4", 1620, "M", "Y", 9700),
        ],
        [],
    ),  # fmt: skip
    (
        "an episode more than a dwell window before the next one is unchanged",
        [
            ("1", 0, "A", "M", 10000),
            ("2", 60, "M", "X", 9700),
            ("3", 3000, "B", "M", 8000),
            ("4", 3060, "M", "Y", 7800),
        ],
        [(10000, 9700, 1), (8000, 7800, 1)],
    ),
]


def _episodes(ws: Workspace, account: str = "M") -> list[tuple]:
    rows = ws.con.execute(
        "SELECT round(in_amt, 2), round(out_amt, 2), n_out FROM detect_pt_hits WHERE acct = account_key('b', $a) "
        "ORDER BY b",
        {"a": account},
    ).fetchall()
    return [(float(i), float(o), int(n)) for i, o, n in rows]


@pytest.mark.parametrize(("rows", "expected"), [pytest.param(r, e, id=n) for n, r, e in CASES])
def test_busy_mule_episodes(tmp_path, rows, expected):
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows)
        run(ws, DetectSettings(), only=["pass_through"], full=True)
        assert _episodes(ws) == [tuple(map(float, e[:2])) + (e[2],) for e in expected]
        raw = ws.con.execute("SELECT count(*) FROM detect_raw_alerts WHERE typology = 'pass_through'").fetchall()
    assert raw[0][0] == len(expected)  # one alert per episode (before corroboration)


def _state(ws: Workspace) -> tuple:
    return snapshot(ws), _episodes(ws)


def test_a_late_payment_in_cuts_the_episode_before_it_incrementally(tmp_path):
    """The batch brings the next bucket's first payment in, dated before payments already stored: the
    earlier episode (no longer counting the later payment out) and the new one must be what a full run
    stores; the earlier episode starts more than a dwell window before the batch, inside _pt_cutoff."""
    base = [("1", 0, "A", "M", 10000), ("2", 60, "M", "X", 9700), ("4", 1560, "M", "Y", 7800),
            ("5", 1700, "N", "P", 500)]  # fmt: skip
    late = [("3", 1500, "B", "M", 8000), ("6", 1710, "P", "Q", 450)]
    settings = DetectSettings()
    with Workspace(tmp_path / "before.duckdb") as ws:
        fill(ws, base)
        run(ws, settings, full=True)
        assert _episodes(ws) == []  # 17,500 out of 10,000 in: over over_max
    full = full_state(tmp_path / "full.duckdb", [base, late], settings, state=_state)
    incr, result = incremental_state(tmp_path / "incr.duckdb", [base, late], settings, state=_state)
    assert full[1] == [(10000.0, 9700.0, 1), (8000.0, 7800.0, 1)]
    assert incr == full
    assert result["mode"] == "incremental"


def test_default_keep_max_tells_a_commission_from_a_spenders_rest(tmp_path):
    """With the default keep_max (0.15) a mule keeping a 3 % commission is an episode; someone spending 83 % of
    a salary within two days in ten payments (keeping 17 %) is not; 0.2 took both."""
    rows = [("m1", 0, "A", "M", 10000), ("m2", 60, "M", "X", 9700), ("s0", 0, "EMP", "S", 10000)]
    rows += [(f"s{i}", 60 * i, "S", f"shop{i}", 830) for i in range(1, 11)]
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows)
        for keep_max, spender in ((DetectSettings().keep_max, []), (0.2, [(10000.0, 8300.0, 10)])):
            run(ws, DetectSettings(keep_max=keep_max), only=["pass_through"], full=True)
            assert _episodes(ws, "M") == [(10000.0, 9700.0, 1)]
            assert _episodes(ws, "S") == spender


@pytest.mark.parametrize(
    ("payer_kind", "channel", "episode"),
    [
        ("business", "transfer", False),  # an employer's salary, spent within two days: income, not passed on
        ("government", "transfer", False),
        ("personal", "transfer", True),  # a person's money forwarded at once: what a mule does
        ("atm", "atm", True),  # cash deposited into the account and sent on (victims are told to deposit cash)
        (None, "transfer", True),  # a payer not in the registry
    ],
)
def test_money_in_mostly_from_income_kinds_is_not_passed_through(tmp_path, payer_kind, channel, episode):
    """income_max: an episode whose money in came mostly from accounts of the income kinds is income being spent."""
    rows = [("1", 0, "P", "M", 8000, channel), ("2", 30, "V", "M", 2000), ("3", 60, "M", "X", 9700)]
    accounts = [{"account": "P", "kind": payer_kind}] if payer_kind else []
    with Workspace(tmp_path / "ws.duckdb") as ws:
        fill(ws, rows, accounts=accounts)
        run(ws, DetectSettings(), only=["pass_through"], full=True)
        assert _episodes(ws) == ([(10000.0, 9700.0, 1)] if episode else [])
        run(ws, DetectSettings(income_max=0.9), only=["pass_through"], full=True)  # 80 % income: under 0.9
        assert _episodes(ws) == [(10000.0, 9700.0, 1)]
