"""Fraud gangs: mule networks by typology, victims, calls, reports and money-level truth.

A gang has a fixed network of mule accounts in levels (pools per level); each case routes one
victim's money through one selection of that network, stage by stage. Every fraud transfer carries
the money of exactly one case; the generator keeps, per case and account, the victim money that
arrived and has not yet left (see the package docstring for the accounting rules). This part loops
in Python per case and per transfer: fraud is a small share of all transfers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fundtrace.simulate.normal import CHANNEL_INDEX
from fundtrace.simulate.population import (
    BANK_WEIGHTS,
    BANKS,
    DAY,
    H_COMPANY,
    H_FAKE,
    OFFSHORE,
    OFFSHORE_BANKS,
    OTC,
    PERSONAL,
    Population,
    lognormal_cents,
    phone_numbers,
)

TYPOLOGIES = (
    "chain",
    "fan_in",
    "fan_out",
    "scatter_gather",
    "gather_scatter",
    "stacked",
    "bipartite",
    "cycle",
    "structuring",
)
THRESHOLD_CENTS = 5_000_000  # 50,000 CNY: the large-transaction reporting threshold
CASH_OUT_METHODS = ("atm", "crypto", "cross_border", "pos")
CASES_PER_ACCOUNT_DAY = 0.00025
REPORT_PROBABILITY = 0.85
CARD_FARM_SHARE = 0.4


@dataclass
class Gang:
    gid: int
    typology: str
    pool_sizes: list[int]
    card_farm: bool
    case_starts: list[int]  # seconds from START: when each case's victim is called
    levels: list[np.ndarray] = field(default_factory=list)
    commission: dict[int, float] = field(default_factory=dict)
    otc: int = -1
    offshore: int = -1
    phones: list[str] = field(default_factory=list)
    cashout_p: np.ndarray | None = None

    @property
    def n_mules(self) -> int:
        return sum(self.pool_sizes)


@dataclass
class Fraud:
    """Everything the fraud module produced, as columns (lists) ready for numpy/polars."""

    # transactions (fraud and the card farms' camouflage)
    src: list[int] = field(default_factory=list)
    dst: list[int] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    cents: list[int] = field(default_factory=list)
    channel: list[int] = field(default_factory=list)
    case: list[int] = field(default_factory=list)  # -1: camouflage (not fraud)
    hop: list[int] = field(default_factory=list)
    # per case
    cases: list[dict] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    holdings: list[dict] = field(default_factory=list)
    calls: list[tuple[int, str, str, int]] = field(default_factory=list)
    # per account (index -> value)
    role: dict[int, str] = field(default_factory=dict)
    mule_level: dict[int, int] = field(default_factory=dict)
    ring: dict[int, str] = field(default_factory=dict)
    gang_of: dict[int, int] = field(default_factory=dict)
    gangs: list[Gang] = field(default_factory=list)

    def transfer(self, src: int, dst: int, ts: int, cents: int, channel: str, case: int, hop: int) -> None:
        if cents <= 0:
            raise AssertionError(f"simulator produced a non-positive transfer ({cents} cents)")
        self.src.append(src)
        self.dst.append(dst)
        self.ts.append(ts)
        self.cents.append(cents)
        self.channel.append(CHANNEL_INDEX[channel])
        self.case.append(case)
        self.hop.append(hop)


def plan(rng: np.random.Generator, n_accounts: int, days: int) -> list[Gang]:
    """How many gangs, their typologies, network sizes and case times (before the population exists)."""
    n_gangs = max(len(TYPOLOGIES), round(n_accounts / 2000))
    offset = int(rng.integers(len(TYPOLOGIES)))
    total_cases = CASES_PER_ACCOUNT_DAY * n_accounts * days
    per_gang = total_cases / n_gangs
    gangs = []
    farm = rng.random(n_gangs) < CARD_FARM_SHARE
    farm[rng.choice(n_gangs, 2, replace=False)] = True  # at least two card farms in every world
    for g in range(n_gangs):
        typ = TYPOLOGIES[(g + offset) % len(TYPOLOGIES)]
        n_cases = max(2, int(rng.poisson(per_gang)))
        day = rng.integers(0, max(days, 1), n_cases)
        hour = rng.choice(np.arange(8, 22), n_cases)
        starts = sorted((day * DAY + hour * 3600 + rng.integers(0, 3600, n_cases)).tolist())
        gangs.append(Gang(g, typ, _pool_sizes(rng, typ), bool(farm[g]), starts))
    return gangs


def reserved_accounts(gangs: list[Gang]) -> int:
    """Accounts the fraud module creates itself: card-farm mules and two cash-out sinks per gang."""
    return sum(g.n_mules for g in gangs if g.card_farm) + 2 * len(gangs)


def _pool_sizes(rng: np.random.Generator, typ: str) -> list[int]:
    r = lambda a, b: int(rng.integers(a, b + 1))  # noqa: E731
    if typ == "chain":
        return [2] * r(2, 5)
    if typ == "fan_in":
        return [r(8, 14)] + [1] * r(1, 3)
    if typ == "fan_out":
        k = r(5, 9)
        return [2, k] + ([k] if rng.random() < 0.5 else [])
    if typ == "scatter_gather":
        return [2, r(4, 6), 1] + ([1] if rng.random() < 0.5 else [])
    if typ == "gather_scatter":
        return [r(6, 8), 1, r(4, 6)]
    if typ == "stacked":
        w = r(2, 4)
        return [2] + [w + 1] * r(2, 4)
    if typ == "bipartite":
        return [r(4, 5), r(4, 5)] + ([1] if rng.random() < 0.5 else [])
    if typ == "cycle":
        return [1] * r(4, 6)
    if typ == "structuring":
        return [2] * r(2, 3)
    raise ValueError(typ)


def populate(rng: np.random.Generator, pop: Population, gangs: list[Gang], days: int) -> None:
    """Create card-farm accounts and cash-out sinks, pick bought mule accounts among persons."""
    p0, p1 = pop.ranges["personal"]
    taken = np.zeros(p1 - p0, bool)
    fake_holder = 0
    for g in gangs:
        first_use = g.case_starts[0]
        g.phones = list(phone_numbers(np.arange(3) + 3 * g.gid, "170", 777 + g.gid))
        g.cashout_p = rng.dirichlet([2.0, 2.0, 1.0, 1.0])
        if g.card_farm:
            n = g.n_mules
            # Bought or forged ID cards: each opens accounts at ~3 banks, within days of each other.
            holders = fake_holder + np.arange(n) // 3
            fake_holder = int(holders[-1]) + 1
            banks = np.empty(n, np.int64)
            for h in np.unique(holders):
                sel = np.flatnonzero(holders == h)
                banks[sel] = rng.choice(len(BANKS), len(sel), replace=False, p=BANK_WEIGHTS)
            base = first_use - int(rng.integers(4, 16)) * DAY
            opened = base + rng.integers(0, 3 * DAY, n)
            opened = (opened // 60) * 60
            ring_phones = phone_numbers(np.arange(max(2, n // 4)) + 100 * g.gid, "171", 4242)
            phone = ring_phones[np.arange(n) % len(ring_phones)]
            idx = pop.append(
                bank=banks,
                kind=PERSONAL,
                holder_type=H_FAKE,
                holder_num=holders,
                opened=opened,
                base_open=rng.integers(1_000, 20_000, n),
                phone=phone,
            )
            dev = np.array([f"FARM{g.gid:05d}-{i % 2}" for i in range(n)], dtype=object)
            pop.links.append((idx, "phone_card", phone, opened))
            pop.links.append(
                (idx, "id_card", np.array([f"FID{h:010d}" for h in holders.tolist()], dtype=object), opened)
            )
            pop.links.append((idx, "device", dev, opened))
            pop.links.append((idx, "ip", np.full(n, f"117.{g.gid % 250}.{(g.gid * 7) % 250}.9", dtype=object), opened))
            accounts = idx
        else:
            # Bought accounts: existing persons' cards, 30 % of them long dormant.
            n = g.n_mules
            free_dormant = np.flatnonzero(pop.dormant[p0:p1] & ~taken)
            free_active = np.flatnonzero(~pop.dormant[p0:p1] & ~taken)
            n_d = min(len(free_dormant), int(round(0.3 * n)))
            accounts = np.concatenate(
                [rng.choice(free_dormant, n_d, replace=False), rng.choice(free_active, n - n_d, replace=False)]
            )
            accounts = p0 + rng.permutation(accounts)
            taken[accounts - p0] = True
            ops = accounts[rng.random(n) < 0.5]  # operators log in from the gang's phones
            pop.links.append(
                (ops, "device", np.full(len(ops), f"GANG{g.gid:05d}", dtype=object), np.full(len(ops), first_use - DAY))
            )
        cuts = np.cumsum([0, *g.pool_sizes])
        g.levels = [np.asarray(accounts[cuts[i] : cuts[i + 1]]) for i in range(len(g.pool_sizes))]
        g.commission = {int(a): float(rng.uniform(0.005, 0.03)) for a in accounts}
        sinks = pop.append(
            bank=np.array([rng.choice(len(BANKS)), len(BANKS) + rng.integers(len(OFFSHORE_BANKS))]),
            kind=OTC,
            holder_type=H_COMPANY,
            holder_num=np.array([900_000 + 2 * g.gid, 900_001 + 2 * g.gid]),
            opened=np.array([-400 * DAY, -400 * DAY]),
            base_open=np.zeros(2, np.int64),
            phone=np.array(["", ""], dtype=object),
        )
        pop.kind[sinks[1]] = OFFSHORE
        g.otc, g.offshore = int(sinks[0]), int(sinks[1])
    pop.taken = taken  # persons' accounts used as mules: never victims


def run(rng: np.random.Generator, pop: Population, gangs: list[Gang], days: int) -> Fraud:
    """Every case of every gang, in gang order, then calls and the card farms' camouflage."""
    fr = Fraud(gangs=gangs)
    p0, p1 = pop.ranges["personal"]
    m0, m1 = pop.ranges["merchant"]
    a0, a1 = pop.ranges["atm"]
    atm_by_bank = {b: np.flatnonzero(pop.bank[a0:a1] == b) + a0 for b in range(len(BANKS))}
    n_cases = sum(len(g.case_starts) for g in gangs)
    eligible = np.flatnonzero(~pop.dormant[p0:p1] & ~pop.taken & (pop.opened[p0:p1] < 0)) + p0
    victims = rng.choice(eligible, n_cases, replace=False)
    for g in gangs:
        for level, pool in enumerate(g.levels, start=1):
            for a in pool.tolist():
                fr.role[a] = "mule"
                fr.mule_level.setdefault(a, level)
                fr.gang_of[a] = g.gid
                if g.card_farm:
                    fr.ring[a] = f"R{g.gid:04d}"
        for a in (g.otc, g.offshore):
            fr.role[a] = "cash_out"
            fr.gang_of[a] = g.gid
    c = 0
    for g in gangs:
        for start in g.case_starts:
            victim = int(victims[c])
            fr.role[victim] = "victim"
            _case(rng, fr, pop, g, c, victim, start, (m0, m1), atm_by_bank)
            c += 1
    _calls(rng, fr, pop, days)
    _farm_camouflage(rng, fr, pop, gangs, days, (m0, m1))
    return fr


def _route(rng: np.random.Generator, g: Gang) -> tuple[list[list[int]], list[str]]:
    """The accounts each stage of one case uses, and how stage i hands to stage i+1
    (``all``: every sender pays every receiver; ``pair``: sender i pays receiver i mod n)."""
    lv = [p.tolist() for p in g.levels]

    def pick(pool: list[int], k: int) -> list[int]:
        k = max(1, min(k, len(pool)))
        return [pool[i] for i in sorted(rng.choice(len(pool), k, replace=False).tolist())]

    t = g.typology
    modes = ["all"] * (len(lv) - 1)
    if t in ("chain", "structuring"):
        stages = [pick(p, 1) for p in lv]
    elif t == "fan_in":
        stages = [pick(lv[0], int(rng.integers(1, 4)))] + lv[1:]
    elif t == "fan_out":
        k = int(rng.integers(4, len(lv[1]) + 1))
        stages = [pick(lv[0], 1), pick(lv[1], k)] + ([pick(lv[2], k)] if len(lv) > 2 else [])
        if len(lv) > 2:
            modes[1] = "pair"
    elif t == "scatter_gather":
        stages = [pick(lv[0], 1), pick(lv[1], int(rng.integers(3, len(lv[1]) + 1)))] + lv[2:]
    elif t == "gather_scatter":
        stages = [pick(lv[0], int(rng.integers(2, 4))), lv[1], pick(lv[2], int(rng.integers(3, len(lv[2]) + 1)))]
    elif t == "stacked":
        stages = [pick(lv[0], 1)] + [pick(p, len(p) - 1) for p in lv[1:]]
    elif t == "bipartite":
        stages = [pick(lv[0], int(rng.integers(2, 4))), pick(lv[1], int(rng.integers(3, 5)))] + lv[2:]
    elif t == "cycle":
        accts = [p[0] for p in lv]
        k = int(rng.integers(3, len(accts)))  # the cycle a1 -> ... -> ak -> a1, then onwards
        stages = [[a] for a in accts[:k]] + [[accts[0]]] + [[a] for a in accts[k:]]
        modes = ["all"] * (len(stages) - 1)
    else:
        raise ValueError(t)
    return stages, modes


def _delay(rng: np.random.Generator, median_s: float, lo: float, hi: float) -> int:
    return int(np.clip(np.exp(rng.normal(math.log(median_s), 1.0)), lo, hi))


def _split(rng: np.random.Generator, total: int, k: int) -> list[int]:
    """``total`` cents in ``k`` positive, uneven parts that add up exactly."""
    if k == 1:
        return [total]
    parts = np.floor(rng.dirichlet(np.full(k, 3.0)) * total).astype(np.int64)
    parts[-1] += total - int(parts.sum())
    if (parts <= 0).any():
        parts = np.full(k, total // k, np.int64)
        parts[-1] += total - int(parts.sum())
    return parts.tolist()


def _parcels(rng: np.random.Generator, total: int) -> list[int]:
    """Structuring: ``total`` in parcels each just under the 50,000 reporting threshold."""
    if total < THRESHOLD_CENTS:
        return [total]
    n = math.ceil(total / 4_800_000)
    parts = np.full(n, total // n, np.int64) + rng.integers(-80_000, 80_000, n)
    parts[-1] = total - int(parts[:-1].sum())
    if (parts <= 0).any() or (parts >= THRESHOLD_CENTS).any():
        parts = np.full(n, total // n, np.int64)
        parts[-1] += total - int(parts.sum())
    return parts.tolist()


def _case(rng, fr: Fraud, pop: Population, g: Gang, c: int, victim: int, start: int, merchants, atm_by_bank) -> None:
    first_txn = len(fr.src)
    stages, modes = _route(rng, g)
    structuring = g.typology == "structuring"
    if structuring:
        amount = int(lognormal_cents(rng, 250_000, 0.6, 1, 120_000, 2_000_000)[0])
    else:
        amount = int(lognormal_cents(rng, 30_000, 1.0, 1, 2_000, 1_500_000)[0])

    # Hop 0: the victim pays the first-level account(s) minutes after the call.
    firsts = stages[0]
    targets = firsts if len(firsts) > 1 else firsts * (2 if rng.random() < 0.25 else 1)
    arrivals: list[dict[int, list[tuple[int, int]]]] = [dict() for _ in stages]
    t = start + int(rng.integers(3 * 60, 45 * 60))
    payments = []
    for dst, cents in zip(targets, _split(rng, amount, len(targets)), strict=True):
        channel = "online" if rng.random() < 0.6 else "transfer"
        fr.transfer(victim, dst, t, cents, channel, c, 0)
        payments.append((len(fr.src) - 1, dst, t, cents))
        arrivals[0].setdefault(dst, []).append((t, cents))
        t += int(rng.integers(2 * 60, 20 * 60))

    last = len(stages) - 1
    for s, accounts in enumerate(stages):
        for i, a in enumerate(accounts):
            got = arrivals[s].get(a)
            if not got:
                continue
            total = sum(x for _, x in got)
            keep = int(round(total * g.commission[a]))
            avail = total - keep
            t = max(x for x, _ in got)
            if s < last:
                t += _delay(rng, 20 * 60, 120, 8 * 3600)
                nxt = stages[s + 1]
                receivers = nxt if modes[s] == "all" else [nxt[i % len(nxt)]]
                for r, part in zip(receivers, _split(rng, avail, len(receivers)), strict=True):
                    for piece in _parcels(rng, part) if structuring else [part]:
                        fr.transfer(a, r, t, piece, "online" if rng.random() < 0.3 else "transfer", c, s + 1)
                        arrivals[s + 1].setdefault(r, []).append((t, piece))
                        t += int(rng.integers(60, 8 * 60))
            else:
                t += _delay(rng, 40 * 60, 180, 12 * 3600)
                _cash_out(rng, fr, pop, g, a, avail, t, c, s + 1, structuring, merchants, atm_by_bank)

    paid_at = payments[0][2]
    last_paid = payments[-1][2]
    reported = rng.random() < REPORT_PROBABILITY
    reported_at = last_paid + _delay(rng, 3 * 3600, 600, 5 * DAY) if reported else None
    case_id = f"C{c + 1:06d}"
    fr.cases.append(
        {
            "case_id": case_id,
            "victim": victim,
            "amount_lost": amount,
            "paid_at": paid_at,
            "reported_at": reported_at,
            "typology": g.typology,
            "gang": g.gid,
        }
    )
    # Calls from the gang's phone card to the victim minutes before the payment (and sometimes the day before).
    caller = g.phones[int(rng.integers(len(g.phones)))]
    fr.calls.append((start, caller, pop.phone[victim], int(rng.integers(600, 3600))))
    if rng.random() < 0.4:
        fr.calls.append((start - int(rng.integers(3600, DAY)), caller, pop.phone[victim], int(rng.integers(60, 900))))
    for _ in range(int(rng.integers(5, 16))):  # numbers that hung up: called, never paid
        fr.calls.append(
            (start + int(rng.integers(-DAY, DAY)), caller, pop.phone[int(rng.integers(*pop.ranges["personal"]))],
             int(rng.integers(5, 120)))
        )  # fmt: skip
    if reported:
        for txn, first, t_pay, cents in payments:
            fr.reports.append({"case": c, "txn": txn, "first": first, "paid_at": t_pay, "amount": cents})
        fr.holdings.extend(_holdings(fr, c, case_id, first_txn, reported_at))


def _cash_out(rng, fr: Fraud, pop: Population, g: Gang, a: int, avail: int, t: int, c: int, hop: int,
              structuring: bool, merchants, atm_by_bank) -> None:  # fmt: skip
    """The last level takes the money out: ATM cash, crypto via an OTC dealer, a cross-border
    transfer or purchases at merchants. Whatever is not taken out stays as the mule's commission."""
    method = CASH_OUT_METHODS[int(rng.choice(4, p=g.cashout_p))]
    if structuring:
        method = "crypto" if rng.random() < 0.7 else "cross_border"
    if method == "atm" and avail > 10_000_000:
        method = "crypto"
    if avail < 10_000:  # under 100 yuan: one purchase
        method = "pos"
    if method == "atm":
        n = math.ceil(avail / 2_000_000)
        hundreds = avail // 10_000  # whole hundreds, at most 20,000 a withdrawal
        parts = [hundreds // n + (1 if i < hundreds % n else 0) for i in range(n)]
        terminals = atm_by_bank[int(pop.bank[a])]
        for part in parts:
            fr.transfer(a, int(rng.choice(terminals)), t, part * 10_000, "atm", c, hop)
            t += int(rng.integers(60, 10 * 60))
        return
    if method == "pos":
        pieces = _split(rng, avail, int(rng.integers(1, 4)) if avail > 100_000 else 1)
        for piece in pieces:
            fr.transfer(a, int(rng.integers(*merchants)), t, piece, "pos", c, hop)
            t += int(rng.integers(5 * 60, 40 * 60))
        return
    dst = g.otc if method == "crypto" else g.offshore
    k = int(rng.integers(1, 3))
    for part in _split(rng, avail, k):
        for piece in _parcels(rng, part) if structuring else [part]:
            fr.transfer(a, dst, t, piece, method, c, hop)
            t += int(rng.integers(60, 15 * 60))


def _holdings(fr: Fraud, c: int, case_id: str, first_txn: int, as_of: int) -> list[dict]:
    """Replay the case's transfers in time order with a pool per (case, account): money that
    arrives joins the pool, money sent leaves it; at an account's last send for the case, what
    remains is its commission and leaves the pool (it is the mule's own money from then on).
    Returns the pools of mule accounts at ``as_of``."""
    idx = range(first_txn, len(fr.src))
    mules = {i: fr.role.get(fr.dst[i]) == "mule" for i in idx}
    last_send: dict[int, int] = {}
    for i in idx:
        last_send[fr.src[i]] = max(last_send.get(fr.src[i], -(2**62)), fr.ts[i])
    pool: dict[int, int] = {}
    # Arrivals before sends at one instant cannot happen: every send waits at least a minute.
    for i in sorted(idx, key=lambda i: (fr.ts[i], i)):
        if fr.ts[i] > as_of:
            break
        if fr.hop[i] > 0:  # the victim's own account is not a pool
            a = fr.src[i]
            pool[a] = pool.get(a, 0) - fr.cents[i]
            if pool[a] < 0:
                raise AssertionError(f"case {case_id}: account {a} sent victim money it did not hold")
            if fr.ts[i] == last_send[a]:
                pool[a] = 0  # the rest is commission: the mule's own money
        if mules[i]:
            pool[fr.dst[i]] = pool.get(fr.dst[i], 0) + fr.cents[i]
    return [{"case_id": case_id, "account": a, "held": v} for a, v in sorted(pool.items()) if v > 0]


def _calls(rng: np.random.Generator, fr: Fraud, pop: Population, days: int) -> None:
    """Background calls between ordinary people, so that being called is not itself a signal."""
    p0, p1 = pop.ranges["personal"]
    k = int(rng.poisson(0.02 * (p1 - p0) * days))
    a = rng.integers(p0, p1, k)
    b = rng.integers(p0, p1, k)
    ts = rng.integers(0, days * DAY, k)
    dur = rng.integers(10, 900, k)
    ok = pop.phone[a] != pop.phone[b]
    fr.calls.extend(zip(ts[ok].tolist(), pop.phone[a[ok]].tolist(), pop.phone[b[ok]].tolist(), dur[ok].tolist(),
                        strict=True))  # fmt: skip


def _farm_camouflage(rng, fr: Fraud, pop: Population, gangs: list[Gang], days: int, merchants) -> None:
    """Card-farm accounts buy a few small things so that they do not look empty."""
    for g in gangs:
        if not g.card_farm:
            continue
        for a in np.concatenate(g.levels).tolist():
            start = max(int(pop.opened[a]), 0)
            if start >= days * DAY:
                continue
            for _ in range(int(rng.poisson(0.3 * (days * DAY - start) / DAY))):
                ts = int(rng.integers(start, days * DAY))
                cents = int(lognormal_cents(rng, 30, 0.8, 1, 1, 500)[0])
                fr.transfer(a, int(rng.integers(*merchants)), ts, cents, "pos", -1, -1)
