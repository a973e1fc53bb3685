"""Tracing victims' money hop by hop under five allocation rules, side by side.

For every reported case the victim's payment is followed forward through each account it reaches, in
ledger order ``(ts, txn_id)``, and the money in each flow and each account is split into the victim's
part and the rest under

- **poison**: once an account received the victim's money, everything leaving it is tainted and its whole
  balance counts as held (over-taints by design);
- **haircut** (proportional): an outflow carries the pool's tainted share at that moment;
- **fifo** (Clayton's case): outflows consume the earliest inflows first;
- **lifo**: outflows consume the latest inflows first;
- **libr** (lowest intermediate balance rule): the traceable amount never exceeds the lowest balance since
  the tainted deposit; clean deposits do not refill it. An outflow is tainted by the part of it that cuts
  into the protected amount: ``max(0, protected_before - balance_after)`` (the holder is presumed to spend
  their own money first). Several cases' protected amounts in one account are cut pro rata.

Haircut, FIFO, LIFO and LIBR conserve tainted money (out + held = in). See README "Tracing" for the full
semantics.

Stops. A case's flow out of an account it reached is followed (a trace_flows row, and its payee holds the
case's part) unless it is past the case's horizon or ``as_of``, its payer is past ``max_hops``, or it carries
less of the case's money under every conserving rule (haircut, FIFO, LIFO, LIBR) than

    follow(case) = max(min_amount, min_share * loss)

where ``loss`` is the case's traced loss (the taint of its payments). The same test applies to every rule
(poison is computed only along flows some conserving rule follows, else it would reach the whole graph).
A flow on a cash-out channel or to a bank without data is recorded with its ``stop`` and not followed.
The money of a flow that is not followed still leaves its payer, so every holding stays exact; what it
carries is simply not attributed further (the stored tables conserve down to ``follow(case)`` per flow).

Why ``min_share`` (default 0.005): under haircut a case's money spreads into every later payment of every
account it reaches, so with ``min_amount`` alone 1,000 cases over 10 M transactions gave 1.37 M flows,
almost all a few yuan of innocent payments, and the trace cost grew with that spread, not with the money.
With 0.005 the bench gives 129 k flows; parts below 0.5 % of the loss are not where a victim's money can
be recovered. On the demo worlds it drops holdings that the simulator's truth does not have (money
precision up under every rule, total absolute error down) and costs no money recall on the small world and
at most 0.0003 on the medium one (haircut, LIBR); LIFO, the closest rule, keeps its recall. Set 0 to follow
every flow of at least ``min_amount``; flows and holdings are then those of the engine without the rule.

Speed: one DuckDB scan reads every ledger row the trace may need, numbered in global ``(ts, txn_id)`` order
and indexed by account in numpy. The engine then makes one pass over the ledgers the cases reach, for all
cases together in time order, processing each of those rows once; ledgers are sliced from the index in
waves (every account a live account may still pay, at once), with balances summed from those ledgers only.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import time
from array import array
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from fundtrace import queries, schema
from fundtrace.engine.duckdb import DuckDBEngine
from fundtrace.errors import InputError, UsageError

__all__ = [
    "RULES",
    "Claim",
    "TraceSettings",
    "allocate_returns",
    "run",
    "trace_ledger",
]

log = logging.getLogger("fundtrace.trace")

RULES = schema.TRACE_RULES
_EPS = 1e-9
_CLEAN = None  # the case of a clean lot


@dataclass(frozen=True)
class TraceSettings:
    """How far money is followed (config section ``trace``)."""

    max_hops: int = 8  # flows out of accounts up to this level are followed (hop 0 = the victim's payment)
    horizon_days: float = 30.0  # follow a case's money this long after its last payment (AMLSim: steps = days)
    min_amount: float = 1.00  # a flow carrying less of a case's money under every conserving rule is not followed
    # ... nor one carrying less than this share of the case's traced loss (0: off); see README "Tracing"
    min_share: float = 0.005
    rule: str = "libr"  # the rule shown by default
    data_banks: tuple[str, ...] = ()  # banks whose ledgers are in the data; empty: banks in accounts + payers' banks

    def validate(self) -> list[tuple[str, str]]:
        problems = []
        if self.max_hops < 0:
            problems.append(("max_hops", "must be >= 0"))
        if self.horizon_days <= 0:
            problems.append(("horizon_days", "must be > 0"))
        if self.min_amount < 0:
            problems.append(("min_amount", "must be >= 0"))
        if not 0 <= self.min_share < 1:
            problems.append(("min_share", "must be >= 0 and < 1"))
        if self.rule not in RULES:
            problems.append(("rule", f"must be one of {', '.join(RULES)}"))
        return problems


# --- the engine: one time-ordered pass over the ledgers the trace touches -------------------------------


class _Pool:
    """Per-case amounts that shrink together by a common ratio (haircut shares, LIBR cuts).

    Amounts are stored divided by a common factor, so taking the same share from every case is O(1); the
    cases are kept sorted by amount so the ones whose part reaches a threshold are found without a scan.
    """

    __slots__ = ("f", "v", "order", "total")

    def __init__(self):
        self.f = 1.0
        self.v: dict[str, float] = {}
        self.order: list[tuple[float, str]] = []  # (-stored, case), ascending = largest first
        self.total = 0.0  # sum of stored values

    def __bool__(self) -> bool:
        return bool(self.v)

    def get(self, c: str) -> float:
        return self.v.get(c, 0.0) * self.f

    def amount(self) -> float:
        return self.total * self.f

    def add(self, c: str, x: float) -> None:
        if x <= 0:
            return
        old = self.v.get(c)
        if old is not None:
            del self.order[bisect.bisect_left(self.order, (-old, c))]
        new = (old or 0.0) + x / self.f
        self.v[c] = new
        bisect.insort(self.order, (-new, c))
        self.total += x / self.f

    def pop(self, c: str) -> float:
        old = self.v.pop(c, None)
        if old is None:
            return 0.0
        del self.order[bisect.bisect_left(self.order, (-old, c))]
        value = old * self.f
        self.total -= old
        if not self.v:
            self.total, self.f = 0.0, 1.0
        return value

    def top(self, ratio: float, threshold: float):
        """The cases whose part ``ratio`` of their amount is at least ``threshold``."""
        scale = self.f * ratio
        for neg, c in self.order:
            if -neg * scale < threshold:
                return
            yield c

    def shrink(self, ratio: float) -> None:
        """Take ``ratio`` of every case's amount."""
        if ratio >= 1.0 - 1e-12:
            self.v, self.order, self.total, self.f = {}, [], 0.0, 1.0
            return
        self.f *= 1.0 - ratio
        if self.f < 1e-100:  # renormalise before the factor underflows
            self.v = {c: x * self.f for c, x in self.v.items()}
            self.order = sorted((-x, c) for c, x in self.v.items())
            self.total *= self.f
            self.f = 1.0


class _Account:
    """One account's pools from its first tainted arrival on."""

    __slots__ = ("bal", "hair", "libr", "fifo", "lifo", "ftot", "ltot", "cases")

    def __init__(self, balance: float):
        self.bal = balance
        self.hair = _Pool()
        self.libr = _Pool()
        self.fifo: deque[list] = deque()
        self.lifo: deque[list] = deque()
        self.ftot: dict[str, float] = {}
        self.ltot: dict[str, float] = {}
        self.cases: dict[str, list] = {}  # case -> [level, first_ts, last_ts]
        if balance > _EPS:
            self.fifo.append([_CLEAN, balance])
            self.lifo.append([_CLEAN, balance])


def _append(lots: deque, case: Any, amount: float) -> None:
    """Queue one inflow as one lot: ``case`` is None (clean), a case id, or {case: share} (mixed)."""
    if amount <= _EPS:
        return
    if case is _CLEAN and lots and lots[-1][0] is _CLEAN:
        lots[-1][1] += amount
    else:
        lots.append([case, amount])


def _lot(parts: dict[str, float], amount: float) -> Any:
    """The composition of one inflow's lot: clean, one case's, or {case: share of the inflow}."""
    if not parts:
        return _CLEAN
    if len(parts) == 1:
        ((c, x),) = parts.items()
        if x >= amount - _EPS:
            return c
    return {c: min(x / amount, 1.0) for c, x in parts.items()}


def _consume(lots: deque, amount: float, from_left: bool, totals: dict, live: set, out: dict, slot: int) -> None:
    """Take ``amount`` from the queue's front (FIFO) or back (LIFO); tainted takes go to ``out[case][slot]``.

    A mixed lot (one inflow carrying several cases' money, or part clean) gives up its parts pro rata.
    """
    while amount > _EPS and lots:
        lot = lots[0] if from_left else lots[-1]
        take = lot[1] if lot[1] <= amount else amount
        case = lot[0]
        if case is _CLEAN:
            pass
        elif isinstance(case, dict):
            for c, share in case.items():
                if c in live:
                    x = take * share
                    out.setdefault(c, [0.0, 0.0, 0.0, 0.0])[slot] += x
                    left = totals.get(c, 0.0) - x
                    totals[c] = left if left > _EPS else 0.0
        elif case in live:
            out.setdefault(case, [0.0, 0.0, 0.0, 0.0])[slot] += take
            left = totals.get(case, 0.0) - take
            totals[case] = left if left > _EPS else 0.0
        lot[1] -= take
        amount -= take
        if lot[1] <= _EPS:
            if from_left:
                lots.popleft()
            else:
                lots.pop()
    # anything left is an overdraft: clean by definition


@dataclass
class _Slice:
    """One account's ledger from its first tainted arrival on, sorted by (ts, txn)."""

    start: tuple[int, str]
    before: float  # balance just before ``start``
    txn: list[str]
    ts: list[int]
    src: list
    dst: list
    amount: list[float]
    cash: list[bool]
    ddata: list[bool]
    fill: Callable[[_Slice], None] | None = None  # set: only ``txn`` holds row numbers; fill() makes the lists


_STOPS = (None, "cash_out", "no_data_bank")  # flow stop codes
_FLOW_COLS = ("case", "hop", "txn", "ts", "amount", "taint_haircut", "taint_fifo", "taint_lifo", "taint_libr", "stop")
_HOLD_COLS = ("case", "hop", "first", "last", "balance", "held_haircut", "held_fifo", "held_lifo", "held_libr", "at")


@dataclass
class _Result:
    """The engine's output, columnar: one flat float64 array per table (exact for the integer columns:
    case numbers, hops, transaction ranks and microsecond times are all below 2**53), plus the accounts
    of the holdings as a list. Poison taint of a flow is its amount; held_poison is max(balance, 0)."""

    cases: list[str] = field(default_factory=list)  # case number -> case id
    flows: array = field(default_factory=lambda: array("d"))  # rows of _FLOW_COLS
    holdings: array = field(default_factory=lambda: array("d"))  # rows of _HOLD_COLS
    holding_accounts: list = field(default_factory=list)

    @property
    def n_flows(self) -> int:
        return len(self.flows) // len(_FLOW_COLS)

    @property
    def n_holdings(self) -> int:
        return len(self.holdings) // len(_HOLD_COLS)

    def columns(self, table: str) -> dict[str, Any]:
        """The flows or holdings as {column: numpy array}."""
        import numpy as np

        names = _FLOW_COLS if table == "flows" else _HOLD_COLS
        data = np.frombuffer(self.flows if table == "flows" else self.holdings, dtype=np.float64)
        data = data.reshape(-1, len(names))
        return {n: data[:, k] for k, n in enumerate(names)}

    accounts: int = 0
    rows: int = 0
    simulations: int = 0
    loads: int = 0
    ledger_rows: int = 0


class _Live:
    """An account from its first tainted arrival on: its pools, the cases present, where it is in its slice."""

    __slots__ = ("acct", "sl", "i", "st", "ending")

    def __init__(self, acct, sl: _Slice, i: int, balance: float):
        self.acct = acct
        self.sl = sl
        self.i = i  # next row of the slice to process
        self.st = _Account(balance)
        self.ending: list[tuple[int, str]] = []  # heap of (end, case) of the cases present


def _row_at(sl: _Slice, key: tuple[int, str]) -> int:
    """Index of the first slice row at or after ``key`` (ts, txn)."""
    i = bisect.bisect_left(sl.ts, key[0])
    while i < len(sl.ts) and sl.ts[i] == key[0] and sl.txn[i] < key[1]:
        i += 1
    return i


def _trace(
    load: Callable[[dict[Any, tuple[int, str]], Any], dict[Any, _Slice]],
    victims: list[tuple[str, str, int, Any, float, float]],
    case_end: dict[str, int],
    max_hops: int,
    min_amount: float,
    min_share: float = 0.0,
) -> _Result:
    """Follow the victims' payments through every account they reach, in one pass in global time order.

    ``victims``: (case, txn, ts, dst account, payment amount, tainted amount). ``load(requests, known)``
    returns the slices of the requested accounts, each from its requested (ts, txn) on, and may return
    slices of other accounts not in ``known`` (a prefetched next frontier).

    Every ledger row of the accounts the money reaches is processed once, for all cases together, in
    (ts, txn) order across accounts (a transfer's payer side before its payee side), so the taint a
    transfer carries is known before its payee books it. An account becomes live at its first tainted
    arrival, with the balance its slice gives at that moment. Ledgers are fetched in waves: when money is
    about to reach an account whose ledger is not loaded yet, every account a live account may still pay
    (at least ``min_amount``, not cashed out, to a bank with data) is loaded in one round trip, with the
    accounts those pay in turn prefetched.
    """
    res = _Result()
    # cases are numbered in id order, so every tie-break by case keeps the order of the ids
    res.cases = names = sorted({v[0] for v in victims})
    number = {c: k for k, c in enumerate(names)}
    case_end = [case_end[c] for c in names]
    victims = [(number[v[0]], *v[1:]) for v in victims]
    min_follow = max(min_amount, _EPS)
    loss = [0.0] * len(names)  # each case's traced loss (the taint of its payments)
    for v in victims:
        if case_end[v[0]] >= v[2]:
            loss[v[0]] += v[5]
    follow = [max(min_follow, min_share * x) for x in loss]  # a case's flows below this are not followed
    edges: dict[str, dict[str, tuple]] = {}  # txn -> {case: ((haircut, fifo, lifo, libr), hop)}
    slices: dict[Any, _Slice] = {}
    live: dict[Any, _Live] = {}
    wants: dict[Any, tuple[int, str]] = {}  # accounts a live account may pay -> earliest such payment
    # (txn * 3 + side, seq, account, ts): side 0 = a victim's payment, 1 payer, 2 payee; transaction keys are
    # numbered in (ts, txn_id) order, so one int orders the heap
    heap: list[tuple] = []
    seq = 0
    flows = res.flows.extend
    holdings = res.holdings.extend
    holding_accounts = res.holding_accounts.append

    requests: dict[Any, tuple[int, str]] = {}
    for case, tx, t, dst, amount, taint in sorted(victims, key=lambda v: (v[2], v[1], v[0])):
        if case_end[case] < t:
            continue
        edges.setdefault(tx, {})[case] = ((taint, taint, taint, taint), 0)
        flows((case, 0, tx, t, amount, taint, taint, taint, taint, 0))
        key = (t, tx)
        if dst not in requests or key < requests[dst]:
            requests[dst] = key
        heapq.heappush(heap, (tx * 3, seq, dst, t))
        seq += 1

    def fetch(requests: dict[Any, tuple[int, str]]) -> None:
        res.loads += 1
        fresh = load(requests, slices.keys())
        for acct, key in requests.items():
            slices[acct] = fresh.get(acct) or _Slice(key, 0.0, [], [], [], [], [], [], [])
            wants.pop(acct, None)
        for acct, sl in fresh.items():  # prefetched: made live only once money reaches it
            if acct not in slices:
                slices[acct] = sl

    def wave(acct, key: tuple[int, str]) -> None:
        """Load ``acct`` from ``key`` on, with every account a live account may still pay."""
        todo = {acct: key}
        for a, k in wants.items():
            if a in live or a in todo:
                continue
            k = max(k, key)  # nothing before the clock matters for an account not yet live
            have = slices.get(a)
            if have is None or have.start > k:
                todo[a] = k
        wants.clear()
        fetch(todo)

    def start(acct, key: tuple[int, str]) -> _Live:
        """Make ``acct`` live at ``key`` (its first tainted arrival)."""
        nonlocal seq
        sl = slices.get(acct)
        if sl is None or sl.start > key:
            wave(acct, key)
            sl = slices[acct]
        if sl.fill is not None:  # loaded (perhaps prefetched) as row numbers: the lists are made now
            sl.fill(sl)
        i = _row_at(sl, key)
        balance = sl.before
        amt, dst = sl.amount, sl.dst
        for k in range(i):
            balance += amt[k] if dst[k] == acct else -amt[k]
        lv = _Live(acct, sl, i, balance)
        live[acct] = lv
        res.simulations += 1
        src, cash, ddata, ts, txn = sl.src, sl.cash, sl.ddata, sl.ts, sl.txn
        for k in range(i, len(txn)):  # whom it may pay from now on
            if src[k] == acct and dst[k] != acct and amt[k] >= min_follow and not cash[k] and ddata[k]:
                d = dst[k]
                if d in live:
                    continue
                kk = (ts[k], txn[k])
                have = slices.get(d)
                if (have is None or have.start > kk) and (d not in wants or kk < wants[d]):
                    wants[d] = kk
        if i < len(txn):
            heapq.heappush(heap, (txn[i] * 3 + (1 if src[i] == acct else 2), seq, acct, ts[i]))
            seq += 1
        return lv

    def snapshot(lv: _Live, case: str, at: int) -> None:
        st = lv.st
        info = st.cases.pop(case)
        holding_accounts(lv.acct)
        holdings(
            (
                case,
                info[0],
                info[1],
                info[2],
                st.bal,
                st.hair.pop(case),
                st.ftot.pop(case, 0.0),
                st.ltot.pop(case, 0.0),
                st.libr.pop(case),
                at,
            )
        )

    if requests:
        fetch(requests)
    while heap:
        key, _, a, t = heapq.heappop(heap)
        tx, side = divmod(key, 3)
        if not side:  # a victim's payment: its payee becomes live now if it is not yet
            if a not in live:
                start(a, (t, tx))
            continue
        lv = live[a]
        sl = lv.sl
        i = lv.i
        lv.i = i + 1
        if lv.i < len(sl.txn):
            j = lv.i
            heapq.heappush(heap, (sl.txn[j] * 3 + (1 if sl.src[j] == a else 2), seq, a, sl.ts[j]))
            seq += 1
        res.rows += 1
        st = lv.st
        cases = st.cases  # case -> [level, first_ts, last_ts]; a case leaves it at its end (holdings taken)
        ending = lv.ending
        while ending and ending[0][0] < t:
            end, c = heapq.heappop(ending)
            snapshot(lv, c, end)
        amount = sl.amount[i]
        if sl.src[i] == a:
            bal = st.bal
            st.bal = bal - amount
            if not cases:  # no live case's money here: only the balance and the lots move
                _consume(st.fifo, amount, True, st.ftot, cases, {}, 1)
                _consume(st.lifo, amount, False, st.ltot, cases, {}, 2)
            else:
                out: dict[str, list[float]] = {}
                _consume(st.fifo, amount, True, st.ftot, cases, out, 1)
                _consume(st.lifo, amount, False, st.ltot, cases, out, 2)
                hair, libr = st.hair, st.libr
                share = (amount / bal if bal > amount else 1.0) if hair else 0.0
                cut = 0.0
                if libr:
                    protected = libr.amount()
                    after = bal - amount
                    if protected > after + _EPS:
                        cut = min(1.0, (protected - max(after, 0.0)) / protected)
                # only cases with a part worth following under some rule need their own numbers
                for c in hair.top(share, min_follow) if share else ():
                    out.setdefault(c, [0.0, 0.0, 0.0, 0.0])
                for c in libr.top(cut, min_follow) if cut else ():
                    out.setdefault(c, [0.0, 0.0, 0.0, 0.0])
                for c, p in out.items():
                    p[0] = hair.get(c) * share
                    p[3] = libr.get(c) * cut
                if share:
                    hair.shrink(share)
                if cut:
                    libr.shrink(cut)
                followed = None
                for c in sorted(out) if len(out) > 1 else out:
                    info = cases.get(c)
                    if info is None:
                        continue
                    p = out[c]
                    level = info[0]
                    if level > max_hops or max(p) < follow[c]:
                        continue  # below the threshold or past the hop limit: no longer followed
                    stop = 1 if sl.cash[i] else (0 if sl.ddata[i] else 2)
                    flows((c, level, tx, t, amount, p[0], p[1], p[2], p[3], stop))
                    if not stop:
                        if followed is None:
                            followed = {}
                        followed[c] = (tuple(p), level)
                if followed:
                    if tx in edges:  # a victim's payment out of an account another case's money reached
                        followed = edges[tx] | followed
                    edges[tx] = followed
                    d = sl.dst[i]
                    if d not in live:
                        start(d, (t, tx))
        if sl.dst[i] == a:
            st.bal += amount
            inc = edges.pop(tx, None)
            if not inc:
                _append(st.fifo, _CLEAN, amount)
                _append(st.lifo, _CLEAN, amount)
                continue
            fifo_parts: dict[str, float] = {}
            lifo_parts: dict[str, float] = {}
            for c in sorted(inc):
                if case_end[c] < t:
                    continue
                (h, f, l_, b), hop = inc[c]
                info = cases.get(c)
                if info is None:
                    cases[c] = [hop + 1, t, t]
                    heapq.heappush(ending, (case_end[c], c))
                else:
                    info[0] = min(info[0], hop + 1)
                    info[2] = t
                st.hair.add(c, h)
                st.libr.add(c, b)
                st.ftot[c] = st.ftot.get(c, 0.0) + f
                st.ltot[c] = st.ltot.get(c, 0.0) + l_
                if f > _EPS:
                    fifo_parts[c] = f
                if l_ > _EPS:
                    lifo_parts[c] = l_
            _append(st.fifo, _lot(fifo_parts, amount), amount)
            _append(st.lifo, _lot(lifo_parts, amount), amount)
    for lv in live.values():
        while lv.ending:
            end, c = heapq.heappop(lv.ending)
            snapshot(lv, c, end)
    res.accounts = len(slices)
    res.ledger_rows = sum(len(sl.txn) for sl in slices.values())
    return res


def trace_ledger(
    transactions: list[dict[str, Any]],
    payments: list[dict[str, Any]],
    *,
    opening: dict[Any, float] | None = None,
    max_hops: int = 8,
    min_amount: float = 0.0,
    min_share: float = 0.0,
    end: Any = None,
) -> dict[str, list[dict[str, Any]]]:
    """Trace in memory, without a workspace: the same engine :func:`run` uses.

    ``transactions``: dicts with txn_id, ts (anything ordered), src, dst, amount and optionally channel
    and dst_data (False: the payee's bank has no data). ``payments``: dicts with case_id and txn_id (the
    victim's payment) and optionally amount (the tainted part; default the whole payment). Every account
    has data; ``opening`` gives opening balances (default: the smallest that keeps the ledger
    non-negative). Holdings are taken at ``end`` (default: the last transaction). Returns
    {"flows": [...], "holdings": [...]} with the taint_* and held_* keys of the tables.

    Examples
    --------
    >>> txns = [dict(txn_id="t1", ts=1, src="V", dst="M", amount=100), dict(txn_id="t2", ts=2, src="C", dst="M",
    ...         amount=50), dict(txn_id="t3", ts=3, src="M", dst="X", amount=80)]
    >>> out = trace_ledger(txns, [dict(case_id="A", txn_id="t1")])
    >>> [round(f["taint_haircut"], 2) for f in out["flows"]]
    [100.0, 53.33]
    """
    order = sorted(transactions, key=lambda r: (r["ts"], str(r["txn_id"])))
    times = sorted({r["ts"] for r in order})
    tindex = {t: k for k, t in enumerate(times)}
    by_id = {str(r["txn_id"]): r for r in order}
    rank = {str(r["txn_id"]): k for k, r in enumerate(order)}  # the engine's transaction keys
    opening = opening or {}
    legs: dict[Any, list[tuple]] = {}
    for k, r in enumerate(order):
        row = (
            k,
            tindex[r["ts"]],
            r["src"],
            r["dst"],
            float(r["amount"]),
            r.get("channel", "transfer") in schema.CASH_OUT_CHANNELS,
            bool(r.get("dst_data", True)),
        )
        legs.setdefault(r["src"], []).append(row)
        if r["dst"] != r["src"]:
            legs.setdefault(r["dst"], []).append(row)

    def delta(acct, row) -> float:
        return (row[4] if row[3] == acct else 0.0) - (row[4] if row[2] == acct else 0.0)

    def load(requests, known):
        out = {}
        for acct, key in requests.items():
            rows = legs.get(acct, [])
            running, lowest = 0.0, 0.0
            for row in rows:
                running += delta(acct, row)
                lowest = min(lowest, running)
            balance = float(opening.get(acct, -lowest))
            first = 0
            while first < len(rows) and (rows[first][1], rows[first][0]) < key:
                balance += delta(acct, rows[first])
                first += 1
            cols = list(zip(*rows[first:], strict=True)) or [[]] * 7
            out[acct] = _Slice(key, balance, *[list(c) for c in cols])
        return out

    last = len(times) if end is None else bisect.bisect_right(times, end) - 1
    case_end = {p["case_id"]: last for p in payments}
    victims = []
    for p in payments:
        r = by_id[str(p["txn_id"])]
        amount = float(r["amount"])
        victims.append(
            (p["case_id"], rank[str(r["txn_id"])], tindex[r["ts"]], r["dst"], amount, float(p.get("amount", amount)))
        )
    res = _trace(load, victims, case_end, max_hops, min_amount, min_share)
    f_cols = res.columns("flows")
    h_cols = res.columns("holdings")
    f_rows = sorted(range(res.n_flows), key=lambda k: (f_cols["case"][k], f_cols["ts"][k], f_cols["txn"][k]))
    h_rows = sorted(range(res.n_holdings), key=lambda k: (h_cols["case"][k], str(res.holding_accounts[k])))
    flows = []
    for k in f_rows:
        r = order[int(f_cols["txn"][k])]
        flows.append(
            {
                "case_id": res.cases[int(f_cols["case"][k])],
                "hop": int(f_cols["hop"][k]),
                "txn_id": str(r["txn_id"]),
                "ts": times[int(f_cols["ts"][k])],
                "src": r["src"],
                "dst": r["dst"],
                "amount": float(f_cols["amount"][k]),
                "taint_poison": float(f_cols["amount"][k]),
                **{c: float(f_cols[c][k]) for c in ("taint_haircut", "taint_fifo", "taint_lifo", "taint_libr")},
                "stop": _STOPS[int(f_cols["stop"][k])],
            }
        )
    holdings = []
    for k in h_rows:
        balance = float(h_cols["balance"][k])
        holdings.append(
            {
                "case_id": res.cases[int(h_cols["case"][k])],
                "account": res.holding_accounts[k],
                "hop": int(h_cols["hop"][k]),
                "first_tainted_at": times[int(h_cols["first"][k])],
                "last_tainted_at": times[int(h_cols["last"][k])],
                "balance": balance,
                "held_poison": max(balance, 0.0),
                **{c: float(h_cols[c][k]) for c in ("held_haircut", "held_fifo", "held_lifo", "held_libr")},
            }
        )
    return {"flows": flows, "holdings": holdings}


# --- returns: who gets frozen money back ----------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One victim's claim on the money frozen in one account.

    ``held``: that case's money still in the account under the chosen rule (trace_holdings.held_*);
    ``first_at``/``last_at``: when the case's money first and last reached the account.
    """

    case_id: str
    loss: float
    held: float
    first_at: Any = None
    last_at: Any = None


def allocate_returns(frozen: float, claims: list[Claim]) -> dict[str, float]:
    """Split ``frozen`` among victims following the 2016 rule on returning frozen fraud funds.

    - Only claims with money still traceable in the account (``held > 0``) take part.
    - **Direct return**: when the deposits trace to one victim, or the victims' deposits can be told apart
      by time (their [first_at, last_at] intervals do not overlap), each victim gets back their own traced
      money: ``min(held, loss)``, scaled down pro rata to ``held`` when less than that is frozen.
    - **Pro rata by loss** otherwise: ``frozen * loss / total loss`` each, never more than the loss.

    Amounts are rounded to the cent; the rounding remainder goes to the largest claim.

    Examples
    --------
    >>> allocate_returns(60, [Claim("V1", 100, 60), Claim("V2", 50, 60)])
    {'V1': 40.0, 'V2': 20.0}
    """
    if frozen < 0:
        raise UsageError("frozen amount must be >= 0")
    present = sorted((c for c in claims if c.held > _EPS and c.loss > 0), key=lambda c: c.case_id)
    if not present or frozen <= 0:
        return {c.case_id: 0.0 for c in claims}
    separable = len(present) == 1 or _disjoint(present)
    if separable:
        want = {c.case_id: min(c.held, c.loss) for c in present}
        total = sum(want.values())
        scale = min(1.0, frozen / total) if total > 0 else 0.0
        raw = {k: v * scale for k, v in want.items()}
        pot = min(frozen, total)
    else:
        losses = sum(c.loss for c in present)
        pot = min(frozen, losses)
        raw = {c.case_id: pot * c.loss / losses for c in present}
    result = {c.case_id: 0.0 for c in claims}
    result.update(_round_cents(raw, pot))
    return result


def _disjoint(claims: list[Claim]) -> bool:
    if any(c.first_at is None or c.last_at is None for c in claims):
        return False
    spans = sorted((c.first_at, c.last_at) for c in claims)
    return all(spans[k][1] < spans[k + 1][0] for k in range(len(spans) - 1))


def _round_cents(raw: dict[str, float], total: float) -> dict[str, float]:
    cents = {k: round(v * 100) for k, v in raw.items()}
    diff = round(total * 100) - sum(cents.values())
    if diff and cents and abs(diff) <= len(cents):
        top = max(sorted(raw), key=lambda k: raw[k])
        cents[top] += diff
    return {k: v / 100 for k, v in cents.items()}


# --- the workspace driver ---------------------------------------------------------------------------------


def _us(value: datetime) -> int:
    return (value - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def _from_us(value: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=int(value))


def run(ws, case_ids=None, *, settings: TraceSettings | None = None, as_of: datetime | str | None = None) -> dict:
    """Trace ``case_ids`` (default: every reported case) and store trace_flows and trace_holdings.

    ``as_of``: a UTC datetime (ledger rows after it are ignored and holdings are taken at it, or at the end
    of a case's horizon when earlier), or ``"reported"``: each case's holdings at its reported_at (what the
    simulator's truth_holdings describe). Earlier rows of the traced cases are replaced in one transaction.
    Returns counts and timings.
    """
    settings = settings or TraceSettings()
    problems = settings.validate()
    if problems:
        raise UsageError("; ".join(f"trace.{f}: {m}" for f, m in problems))
    started = time.perf_counter()
    con = ws.con
    engine = DuckDBEngine(con)
    per_report = as_of == "reported"
    if isinstance(as_of, str) and not per_report:
        try:
            as_of = datetime.fromisoformat(as_of.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            raise UsageError(f"--as-of must be an ISO time or 'reported', got {as_of!r}") from None
    cutoff = None if per_report else as_of

    known = {r[0] for r in con.execute("SELECT DISTINCT case_id FROM reports").fetchall()}
    if case_ids is None:
        cases = sorted(known)
    else:
        cases = sorted(set(case_ids))
        missing = [c for c in cases if c not in known]
        if missing:
            raise InputError(
                f"unknown case id{'s' if len(missing) > 1 else ''}: {', '.join(missing[:10])}",
                hint="see the reports table; load reports with `fundtrace load reports`",
            )
    empty = {
        "cases": 0,
        "flows": 0,
        "holdings": 0,
        "unresolved": [],
        "passes": 0,
        "accounts": 0,
        "rows": 0,
        "rows_replayed": 0,
        "replays": 0,
    }
    if not cases:
        return empty | {"seconds": round(time.perf_counter() - started, 3)}
    con.register("_trace_cases_arrow", pa.table({"case_id": cases}))
    con.execute("CREATE OR REPLACE TEMP TABLE _trace_cases AS SELECT * FROM _trace_cases_arrow").fetchall()
    con.unregister("_trace_cases_arrow")
    starts = pl.from_arrow(engine.run_query(queries.get("trace_starts")))
    unresolved = starts.filter(pl.col("problem").is_not_null()).select("case_id", "problem").to_dicts()
    starts = starts.filter(pl.col("problem").is_null())

    horizon = timedelta(days=settings.horizon_days)
    data_end = con.execute("SELECT max(ts) FROM transactions").fetchall()[0][0]
    case_end: dict[str, datetime] = {}
    for row in starts.group_by("case_id").agg(pl.col("ts").max(), pl.col("reported_at").max()).iter_rows():
        case, last_paid, reported_at = row
        end = last_paid + horizon
        limit = reported_at if per_report else cutoff
        if limit is not None:
            end = min(end, limit)
        if data_end is not None and limit is None:
            end = min(end, max(data_end, last_paid))  # holdings "now" = at the end of the data
        case_end[case] = end
    ends = pl.DataFrame({"case_id": list(case_end), "end": list(case_end.values())})
    starts = starts.join(ends, on="case_id").filter(pl.col("ts") <= pl.col("end"))

    virtual = starts.filter(pl.col("is_virtual")).select(
        "txn_id", "ts", "dst_id", "amount", pl.col("dst_bank"), "dst_account"
    )
    con.register("_trace_virtual_arrow", virtual.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE _trace_virtual AS SELECT * FROM _trace_virtual_arrow").fetchall()
    con.unregister("_trace_virtual_arrow")
    if settings.data_banks:
        con.register("_trace_banks_arrow", pa.table({"bank": list(settings.data_banks)}))
        con.execute("CREATE OR REPLACE TEMP TABLE _trace_banks AS SELECT * FROM _trace_banks_arrow").fetchall()
        con.unregister("_trace_banks_arrow")
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _trace_banks AS "
            "SELECT bank FROM accounts UNION SELECT DISTINCT src_bank FROM transactions"
        ).fetchall()

    last_end = max(case_end.values()) if case_end else None
    # DuckDB keeps what it read and sorted cached up to its memory limit (80% of RAM by default); the
    # ledger scan runs under a smaller limit and the cache is let go before the in-memory index is built
    phase, cpu = time.perf_counter(), time.process_time()  # CPU: the whole process, DuckDB's threads included
    with _bounded_memory(con, "500MB"):  # 10 M rows: sorts as fast as under 1 GB, peak 1.29 -> 0.99 GiB
        ids = engine.run_query(queries.get("trace_ids"), {"until": cutoff}).column("account_id")
        con.register("_trace_ids", pa.table({"account_id": ids, "k": pa.array(range(len(ids)), pa.int32())}))
        try:
            table = engine.run_query(
                queries.get("trace_all"), {"until": cutoff, "cash_out": ",".join(schema.CASH_OUT_CHANNELS)}
            )
        finally:
            con.unregister("_trace_ids")
    balances = {
        a: (b, None if at is None else _us(at))
        for a, b, at in con.execute(
            "SELECT account_id, CAST(balance AS DOUBLE), balance_at FROM accounts WHERE balance IS NOT NULL"
        ).fetchall()
    }
    ledgers = _Ledgers(table, ids, balances, None if last_end is None else _us(last_end))
    del table
    rows = starts.select("case_id", "txn_id", "ts", "dst_id", "amount", "taint").rows()
    rank = ledgers.rank([r[1] for r in rows])
    rows = [r for r in rows if r[1] in rank]
    payees = ledgers.number([r[3] for r in rows])
    victims = [
        (case, rank[txn_id], _us(ts), dst, amount, taint)
        for (case, txn_id, ts, _, amount, taint), dst in zip(rows, payees, strict=True)
    ]
    end_us = {c: _us(e) for c, e in case_end.items()}

    read_s, read_cpu = time.perf_counter() - phase, time.process_time() - cpu
    phase, cpu = time.perf_counter(), time.process_time()
    result = _trace(ledgers.load, victims, end_us, settings.max_hops, settings.min_amount, settings.min_share)
    trace_s, trace_cpu = time.perf_counter() - phase, time.process_time() - cpu
    phase, cpu = time.perf_counter(), time.process_time()
    txn_ids = ledgers.txn_ids
    if result.holding_accounts:  # account numbers back to ids
        result.holding_accounts = ledgers.accounts[result.holding_accounts]
    del ledgers
    log.info(
        "trace: %d accounts, %d ledger rows replayed in %d replays, %d loads",
        result.accounts,
        result.rows,
        result.simulations,
        result.loads,
    )
    n_flows, n_holdings = result.n_flows, result.n_holdings
    with _bounded_memory(con, "2GB"):  # the ledger and the engine's state are gone by now
        _store(ws, cases, result, txn_ids)  # empties result
    return {
        "cases": len(cases),
        "traced": len(case_end),
        "flows": n_flows,
        "holdings": n_holdings,
        "unresolved": unresolved,
        "passes": result.loads,
        "accounts": result.accounts,
        "rows": result.ledger_rows,
        "rows_replayed": result.rows,
        "replays": result.simulations,
        "seconds_read": round(read_s, 3),  # ledger scan and in-memory index
        "seconds_trace": round(trace_s, 3),  # the time-ordered pass
        "seconds_store": round(time.perf_counter() - phase, 3),  # writing trace_flows/trace_holdings
        "cpu_read": round(read_cpu, 3),
        "cpu_trace": round(trace_cpu, 3),
        "cpu_store": round(time.process_time() - cpu, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }


class _Ledgers:
    """Every ledger row a trace may read, indexed by account in memory: one DuckDB scan, then slices are free.

    Rows are numbered in global (ts, txn_id) order and the engine uses that number as the transaction key
    (same order, cheaper than strings); ``txn_ids`` maps it back. Accounts are numbered densely in id
    order (``accounts[k]`` is the account id of number k) and the engine works with the numbers.
    """

    def __init__(self, table: pa.Table, ids, balances: dict[int, tuple[float, int | None]], end_us: int | None) -> None:
        import numpy as np

        self.np = np
        n = table.num_rows
        self.txn_ids = table.column("txn_id")
        self.ts = table.column("ts").cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
        self.src = table.column("src_k").to_numpy()  # -1: a deposit known only from a report (no payer)
        self.dst = table.column("dst_k").to_numpy()
        self.amount = table.column("amount").to_numpy()
        self.cash = table.column("cash_out").to_numpy(zero_copy_only=False)
        self.ddata = table.column("dst_data").to_numpy(zero_copy_only=False)
        self.accounts = ids.to_numpy()
        n_acc = len(self.accounts)
        # legs sorted by (account, row, side) in one sort of an int64 key: account << 33 | row << 1 | payer side
        # (rows < 2**31, accounts < 2**30); a self-transfer is one row of its ledger, booked on the payee side
        paid = np.flatnonzero((self.src >= 0) & (self.src != self.dst))
        key = np.empty(len(paid) + n, dtype=np.int64)
        m = len(paid)
        np.left_shift(self.src[paid].astype(np.int64), 33, out=key[:m])
        key[:m] |= (paid << 1) | 1
        del paid
        np.left_shift(self.dst.astype(np.int64), 33, out=key[m:])
        key[m:] |= np.arange(0, 2 * n, 2, dtype=np.int64)
        key.sort()
        self.bounds = np.searchsorted(key, np.arange(n_acc + 1, dtype=np.int64) << 33)
        self.legs = ((key >> 1) & 0xFFFFFFFF).astype(np.int32)
        del key
        ids = np.fromiter(balances, dtype=np.uint64, count=len(balances))
        at = np.searchsorted(self.accounts, ids).tolist()
        self.balances = {
            k: v
            for k, a, v in zip(at, ids.tolist(), balances.values(), strict=True)
            if k < n_acc and int(self.accounts[k]) == a
        }
        self.end_rank = n if end_us is None else int(np.searchsorted(self.ts, end_us, side="right"))

    def number(self, ids) -> list[int]:
        """Account numbers of account ids (every id must be in the ledger)."""
        return self.np.searchsorted(self.accounts, self.np.asarray(ids, dtype=self.np.uint64)).tolist()

    def rank(self, txn_ids: list[str]) -> dict[str, int]:
        import pyarrow.compute as pc

        found = pc.index_in(self.txn_ids, value_set=pa.array(sorted(set(txn_ids)), pa.string()))
        hits = pc.indices_nonzero(found.is_valid()).to_numpy()
        keys = self.txn_ids.take(pa.array(hits)).to_pylist()
        return dict(zip(keys, hits.tolist(), strict=True))

    def fill(self, sl: _Slice) -> None:
        """Turn a slice's row numbers into the engine's lists (done only for accounts that become live)."""
        r = sl.txn
        sl.txn = r.tolist()
        sl.ts = self.ts[r].tolist()
        sl.src = self.src[r].tolist()  # -1: a deposit known only from a report (no payer)
        sl.dst = self.dst[r].tolist()
        sl.amount = self.amount[r].tolist()
        sl.cash = self.cash[r].tolist()
        sl.ddata = self.ddata[r].tolist()
        sl.fill = None

    def load(self, requests: dict[int, tuple[int, int]], known=None) -> dict[int, _Slice]:
        """The slices of the requested accounts (numbers) from their requested (ts, rank) on.

        Balances come from the requested ledgers only, all at once: their legs are gathered into one
        array, signed (in +, out -, self-transfer 0) and summed per ledger."""
        np = self.np
        if not requests:
            return {}
        accts = np.fromiter(requests, dtype=np.int64, count=len(requests))
        s, e = self.bounds[accts], self.bounds[accts + 1]
        lens = e - s
        starts = np.cumsum(lens) - lens  # where each ledger begins in the gathered array
        seg = np.repeat(np.arange(len(accts), dtype=np.int64), lens)
        rows = self.legs[np.arange(int(lens.sum()), dtype=np.int64) + (s - starts)[seg]]
        owner = accts[seg]
        delta = self.amount[rows]
        into = self.dst[rows] == owner
        delta[into & (self.src[rows] == owner)] = 0.0
        np.negative(delta, out=delta, where=~into)
        del into
        run = np.empty(len(delta) + 1)  # run[k + 1] - run[starts[j]]: ledger j's sum of its legs up to k
        run[0] = 0.0
        np.cumsum(delta, out=run[1:])
        base = run[starts]
        # the lowest running balance of each ledger (opening 0) gives the smallest non-negative opening
        lowest = np.zeros(len(accts))
        full = lens > 0
        if full.any():
            lowest[full] = np.minimum.reduceat(run[1:], starts[full]) - base[full]
        derived = np.maximum(0.0, -lowest)
        # first slice row: the first leg at or after the requested rank; last: up to the end of the data
        comp = (seg << 32) | rows
        ranks = np.fromiter((k[1] for k in requests.values()), dtype=np.int64, count=len(accts))
        idx = np.arange(len(accts), dtype=np.int64) << 32
        i0 = np.searchsorted(comp, idx | ranks) - starts
        i1 = np.maximum(np.searchsorted(comp, idx | self.end_rank) - starts, i0)
        before = run[starts + i0] - base
        out: dict[int, _Slice] = {}
        for j, (acct, key) in enumerate(requests.items()):  # accounts are numbers: every one has a ledger
            given = self.balances.get(acct)
            if given is None:
                opening = float(derived[j])
            elif given[1] is None:
                opening = given[0]
            else:  # a balance at a time: the opening is that balance less what the ledger booked until then
                a = int(starts[j])
                upto = int(np.searchsorted(self.ts[rows[a : a + int(lens[j])]], given[1], side="right"))
                opening = given[0] - float(run[a + upto] - base[j])
            a = int(starts[j])
            r = rows[a + int(i0[j]) : a + int(i1[j])]
            out[acct] = _Slice(key, opening + float(before[j]), r, None, None, None, None, None, None, self.fill)
        return out


@contextmanager
def _bounded_memory(con, limit: str = "1GB"):
    """Run DuckDB under ``limit``, then let its cache go and restore the connection's limit.

    DuckDB keeps what it read and sorted cached up to its memory limit (80% of RAM by default); while the
    trace holds the ledger in memory that cache would only add to the peak."""
    memory_limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute("SET memory_limit = $m", {"m": limit}).fetchall()
    try:
        yield
        con.execute("SET memory_limit = '64MB'").fetchall()
    finally:
        con.execute("SET memory_limit = $m", {"m": memory_limit}).fetchall()


def _money(col: str) -> str:
    return f"CAST(round(greatest({col}, 0), 4) AS DECIMAL(18, 4))"


def _store(ws, cases: list[str], result: _Result, txn_ids) -> None:
    """Write the engine's columns to trace_flows/trace_holdings through Arrow (no per-row Python objects)."""
    import numpy as np

    names = pa.array(result.cases, pa.string())
    f = result.columns("flows")
    case = pa.array(f["case"].astype(np.int32))
    flows = pa.table(
        {
            "case_id": names.take(case),
            "hop": pa.array(f["hop"].astype(np.int32)),
            "txn_id": (txn_ids.take(pa.array(f["txn"].astype(np.int64))) if len(case) else pa.array([], pa.string())),
            "ts_us": pa.array(f["ts"].astype(np.int64)),
            "amount": pa.array(f["amount"]),
            "taint_poison": pa.array(f["amount"]),
            **{c: pa.array(f[c]) for c in ("taint_haircut", "taint_fifo", "taint_lifo", "taint_libr")},
            "stop": pa.array(np.array(_STOPS, dtype=object)[f["stop"].astype(np.int8)], pa.string()),
        }
    )
    del f, case
    h = result.columns("holdings")
    holds = pa.table(
        {
            "case_id": names.take(pa.array(h["case"].astype(np.int32))),
            "account_id": pa.array(np.asarray(result.holding_accounts, dtype=np.uint64), pa.uint64()),
            "hop": pa.array(h["hop"].astype(np.int32)),
            "first_us": pa.array(h["first"].astype(np.int64)),
            "last_us": pa.array(h["last"].astype(np.int64)),
            "balance": pa.array(h["balance"]),
            "held_poison": pa.array(np.maximum(h["balance"], 0.0)),
            **{c: pa.array(h[c]) for c in ("held_haircut", "held_fifo", "held_lifo", "held_libr")},
            "as_of_us": pa.array(h["at"].astype(np.int64)),
        }
    )
    del h
    result.flows, result.holdings, result.holding_accounts = array("d"), array("d"), []  # the tables hold them now
    con = ws.con
    con.register("_trace_flows_new", flows)
    con.register("_trace_holdings_new", holds)
    con.register("_trace_done", pa.table({"case_id": cases}))
    money_f = ", ".join(_money(f"f.{c}") for c in ("taint_poison", "taint_haircut", "taint_fifo", "taint_lifo"))
    money_h = ", ".join(_money(f"h.{c}") for c in ("held_poison", "held_haircut", "held_fifo", "held_lifo"))
    try:
        with ws.transaction() as tx:
            tx.execute("DELETE FROM trace_flows WHERE case_id IN (SELECT case_id FROM _trace_done)").fetchall()
            tx.execute("DELETE FROM trace_holdings WHERE case_id IN (SELECT case_id FROM _trace_done)").fetchall()
            tx.execute(
                f"""
                INSERT INTO trace_flows
                SELECT f.case_id, f.hop, f.txn_id, make_timestamp(f.ts_us),
                       coalesce(t.src_bank, v.src_bank), coalesce(t.src_account, v.src_account),
                       coalesce(t.dst_bank, v.dst_bank), coalesce(t.dst_account, v.dst_account),
                       CAST(round(f.amount, 4) AS DECIMAL(18, 4)), {money_f}, {_money("f.taint_libr")},
                       coalesce(t.channel, 'transfer'), f.stop
                FROM _trace_flows_new f
                LEFT JOIN transactions t ON t.txn_id = f.txn_id
                LEFT JOIN (SELECT txn_id, NULL::VARCHAR AS src_bank, NULL::VARCHAR AS src_account,
                                  dst_bank, dst_account FROM _trace_virtual) v ON v.txn_id = f.txn_id
                ORDER BY f.case_id, f.ts_us, f.txn_id
                """
            ).fetchall()
            tx.execute(
                f"""
                INSERT INTO trace_holdings
                SELECT h.case_id, k.bank, k.account, h.account_id, h.hop, make_timestamp(h.first_us),
                       make_timestamp(h.last_us), CAST(round(h.balance, 4) AS DECIMAL(18, 4)), {money_h},
                       {_money("h.held_libr")}, make_timestamp(h.as_of_us)
                FROM _trace_holdings_new h
                JOIN (
                    SELECT DISTINCT ON (account_id) account_id, bank, account FROM (
                        SELECT dst_id AS account_id, dst_bank AS bank, dst_account AS account
                        FROM transactions WHERE dst_id IN (SELECT account_id FROM _trace_holdings_new)
                        UNION ALL SELECT dst_id, dst_bank, dst_account FROM _trace_virtual
                    )
                ) k ON k.account_id = h.account_id
                ORDER BY h.case_id, h.hop, k.bank, k.account
                """
            ).fetchall()
    finally:
        for name in ("_trace_flows_new", "_trace_holdings_new", "_trace_done"):
            con.unregister(name)


def results(ws, case_ids: list[str] | None = None) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The stored trace of each case: {case_id: {"report": [...], "flows": [...], "holdings": [...]}}."""
    con = ws.con
    where = "" if case_ids is None else "WHERE case_id IN (SELECT unnest($ids))"
    params = {} if case_ids is None else {"ids": list(case_ids)}
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    reports = con.sql(
        f"SELECT case_id, victim_bank, victim_account, reported_at, amount_lost FROM reports {where} "
        "ORDER BY case_id, reported_at",
        params=params or None,
    ).pl()
    for r in reports.to_dicts():
        out.setdefault(r["case_id"], {"report": [], "flows": [], "holdings": []})["report"].append(r)
    for table, key in (("trace_flows", "flows"), ("trace_holdings", "holdings")):
        order = "ts, txn_id" if key == "flows" else "hop, bank, account"
        frame = con.sql(f"SELECT * FROM {table} {where} ORDER BY case_id, {order}", params=params or None).pl()
        for r in frame.to_dicts():
            out.setdefault(r["case_id"], {"report": [], "flows": [], "holdings": []})[key].append(r)
    return out
