"""Property tests of the tracing rules on random ledgers (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrace.trace import trace_ledger

ACCOUNTS = ["A", "B", "C", "D", "E"]
CONSERVING = ("haircut", "fifo", "lifo", "libr")


@st.composite
def ledgers(draw):
    n = draw(st.integers(3, 40))
    txns = []
    for k in range(n):
        src = draw(st.sampled_from(ACCOUNTS + ["V1", "V2", "S"]))
        dst = draw(st.sampled_from([a for a in ACCOUNTS if a != src] + ["OUT"]))
        txns.append(
            dict(txn_id=f"t{k:03d}", ts=draw(st.integers(0, 15)), src=src, dst=dst, amount=draw(st.integers(1, 200)))
        )
    payments = [
        dict(case_id="K1" if t["src"] == "V1" else "K2", txn_id=t["txn_id"])
        for t in txns
        if t["src"] in ("V1", "V2") and t["dst"] != "OUT"
    ]
    return txns, payments


def injected(txns, payments, case):
    amounts = {t["txn_id"]: t["amount"] for t in txns}
    return sum(amounts[p["txn_id"]] for p in payments if p["case_id"] == case)


@settings(max_examples=150, deadline=None)
@given(ledgers())
def test_conservation_for_haircut_fifo_lifo_libr(ledger):
    txns, payments = ledger
    out = trace_ledger(txns, payments, max_hops=1000)
    for case in {p["case_id"] for p in payments}:
        paid = injected(txns, payments, case)
        for rule in CONSERVING:
            held = sum(h[f"held_{rule}"] for h in out["holdings"] if h["case_id"] == case)
            # OUT is an account too (it has data), so every tainted unit is held somewhere
            assert held == pytest.approx(paid, abs=1e-6), (case, rule)
    # per account: tainted in - tainted out = held
    for h in out["holdings"]:
        for rule in CONSERVING:
            key = f"taint_{rule}"
            fin = sum(f[key] for f in out["flows"] if f["case_id"] == h["case_id"] and f["dst"] == h["account"])
            fout = sum(f[key] for f in out["flows"] if f["case_id"] == h["case_id"] and f["src"] == h["account"])
            assert fin - fout == pytest.approx(h[f"held_{rule}"], abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(ledgers())
def test_poison_at_least_haircut_and_taint_bounded(ledger):
    txns, payments = ledger
    out = trace_ledger(txns, payments)
    for f in out["flows"]:
        assert f["taint_poison"] >= f["taint_haircut"] - 1e-9
        for rule in CONSERVING:
            assert -1e-9 <= f[f"taint_{rule}"] <= f["amount"] + 1e-9
    for h in out["holdings"]:
        assert h["held_poison"] >= h["held_haircut"] - 1e-9


@settings(max_examples=100, deadline=None)
@given(ledgers(), st.randoms(use_true_random=False))
def test_same_output_whatever_the_row_order(ledger, rnd: random.Random):
    txns, payments = ledger
    shuffled = txns[:]
    rnd.shuffle(shuffled)
    pay = payments[:]
    rnd.shuffle(pay)
    assert trace_ledger(shuffled, pay) == trace_ledger(txns, payments)


@st.composite
def single_account(draw):
    """M receives one tainted deposit, then random clean deposits and withdrawals (never overdrawn)."""
    opening = draw(st.integers(0, 100))
    taint = draw(st.integers(1, 200))
    txns = [dict(txn_id="t000", ts=0, src="V", dst="M", amount=taint)]
    balance = opening + taint
    for k in range(1, draw(st.integers(1, 25))):
        if balance > 0 and draw(st.booleans()):
            amount = draw(st.integers(1, int(balance)))
            balance -= amount
            txns.append(dict(txn_id=f"t{k:03d}", ts=k, src="M", dst="X", amount=amount))
        else:
            amount = draw(st.integers(1, 150))
            balance += amount
            txns.append(dict(txn_id=f"t{k:03d}", ts=k, src="C", dst="M", amount=amount))
    return opening, taint, txns


@settings(max_examples=150, deadline=None)
@given(single_account())
def test_libr_is_lowest_intermediate_balance(case):
    opening, taint, txns = case
    balance, lowest, previous = opening + taint, opening + taint, None
    for k, t in enumerate(txns):
        if k:
            balance += t["amount"] if t["dst"] == "M" else -t["amount"]
        lowest = min(lowest, balance)
        out = trace_ledger(txns, [dict(case_id="K", txn_id="t000")], opening={"M": opening}, end=t["ts"])
        held = next(h["held_libr"] for h in out["holdings"] if h["account"] == "M")
        assert held == pytest.approx(min(taint, lowest), abs=1e-9)
        if t["dst"] == "M" and previous is not None:
            assert held <= previous + 1e-9  # a clean deposit never refills it
        if lowest <= 0:
            assert held == 0
        previous = held


@settings(max_examples=100, deadline=None)
@given(ledgers())
def test_each_case_tracked_separately(ledger):
    """Haircut, FIFO and LIFO give a case the same flows and holdings whether traced alone or with others."""
    txns, payments = ledger
    together = trace_ledger(txns, payments)
    for case in {p["case_id"] for p in payments}:
        alone = trace_ledger(txns, [p for p in payments if p["case_id"] == case])

        def pick(out, kind, key, case=case):
            rules = ("haircut", "fifo", "lifo")
            return sorted(
                (r[key], tuple(round(r[f"{kind}_{x}"], 6) for x in rules))
                for r in out[f"{'flows' if kind == 'taint' else 'holdings'}"]
                if r["case_id"] == case and max(r[f"{kind}_{x}"] for x in rules) > 1e-6
            )

        assert pick(alone, "taint", "txn_id") == pick(together, "taint", "txn_id")
        assert pick(alone, "held", "account") == pick(together, "held", "account")


@settings(max_examples=150, deadline=None)
@given(ledgers(), st.sampled_from([0.01, 0.05, 0.2]))
def test_min_share_only_prunes(ledger, share):
    """The relative stop rule (min_share) only drops flows: every followed flow beyond the victim's payment
    carries at least that share of the case's loss under some conserving rule, every flow and holding it keeps
    is in the unpruned trace, and haircut/FIFO/LIFO amounts never exceed the unpruned ones (no taint appears
    where the full trace has none)."""
    txns, payments = ledger
    full = trace_ledger(txns, payments, max_hops=1000)
    pruned = trace_ledger(txns, payments, max_hops=1000, min_share=share)
    loss = {}
    for p in payments:
        loss[p["case_id"]] = loss.get(p["case_id"], 0) + next(t["amount"] for t in txns if t["txn_id"] == p["txn_id"])
    f_full = {(f["case_id"], f["txn_id"]): f for f in full["flows"]}
    for f in pruned["flows"]:
        assert (f["case_id"], f["txn_id"]) in f_full
        if f["hop"] > 0:
            assert max(f[f"taint_{r}"] for r in CONSERVING) >= share * loss[f["case_id"]] - 1e-9
        for rule in ("haircut", "fifo", "lifo"):
            key = f"taint_{rule}"
            assert f[key] <= f_full[(f["case_id"], f["txn_id"])][key] + 1e-6
    h_full = {(h["case_id"], h["account"]): h for h in full["holdings"]}
    for h in pruned["holdings"]:
        assert (h["case_id"], h["account"]) in h_full
        for rule in ("haircut", "fifo", "lifo"):
            assert h[f"held_{rule}"] <= h_full[(h["case_id"], h["account"])][f"held_{rule}"] + 1e-6
