"""Ordinary economic life, generated column-wise with numpy (no loop over transactions).

Each flow type draws its number of events from a rate per account and day, then its payers, payees,
times (day by weekday weight, hour by an hourly profile) and amounts as whole arrays. Monthly flows
(salaries, rent, utility bills) fall on a fixed day of the month per payer or employer.

Rates, per active personal account and day unless said otherwise (about 1.0 transaction per account
and day over the whole population):

=====================  =======  ==========================================================
flow                   rate     payer -> payee, channel
=====================  =======  ==========================================================
card payments          0.78     person -> merchant (popularity Zipf-like), pos
online services        0.05     person -> business (legitimate fan-in), online
P2P among friends      0.16     person -> person in the same community of 4-15, transfer
family support         0.01     person -> person in the same household, transfer
own accounts           0.08     account -> another account of the same holder, online;
                                30 % go on to a third account minutes later (a legitimate chain)
ATM withdrawals        0.03     person -> an ATM terminal of the account's bank, atm
salaries               monthly  employer -> each employee's first account (payroll fan-out)
rent                   monthly  25 % of persons -> a landlord
utility bills          monthly  person -> 1-2 utilities (fan-in), online
cross-border           0.001    person -> a legitimate offshore account, cross_border
supplier payments      0.8/biz  business -> business, weekdays, transfer
merchant settlements   0.5/mer  merchant -> business, weekdays, transfer
=====================  =======  ==========================================================
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from fundtrace.simulate.population import DAY, START_EPOCH, START_WEEKDAY, Population, lognormal_cents

CHANNEL_INDEX = {"transfer": 0, "atm": 1, "pos": 2, "online": 3, "crypto": 4, "cross_border": 5}

_H_RETAIL = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.5, 2, 4, 5, 5, 6, 8, 10, 8, 6, 6, 6, 7, 10, 11, 10, 8, 5, 2], float)
_H_OFFICE = np.array([0, 0, 0, 0, 0, 0, 0.2, 1, 4, 10, 10, 9, 5, 7, 9, 9, 8, 6, 2, 1, 0.5, 0.3, 0.1, 0], float)
_H_PERSONAL = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 3, 5, 6, 7, 8, 9, 8, 7, 7, 7, 8, 10, 12, 12, 10, 6, 3], float)
_W_ALL = np.array([1, 1, 1, 1, 1.1, 1.3, 1.25])  # Monday .. Sunday
_W_WEEKDAYS = np.array([1, 1, 1, 1, 1, 0.05, 0.03])


class Flows:
    """Column arrays of generated transfers (concatenated once at the end)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, src, dst, ts, cents, channel) -> None:
        n = len(src)
        if n:
            ch = np.full(n, CHANNEL_INDEX[channel], np.int8) if isinstance(channel, str) else channel
            self.parts.append((src.astype(np.int32), dst.astype(np.int32), ts.astype(np.int64), cents, ch))

    def arrays(self) -> dict[str, np.ndarray]:
        names = ("src", "dst", "ts", "cents", "channel")
        if not self.parts:
            empty = (np.int32, np.int32, np.int64, np.int64, np.int8)
            return {k: np.zeros(0, t) for k, t in zip(names, empty, strict=True)}
        return {k: np.concatenate([p[i] for p in self.parts]) for i, k in enumerate(names)}


def _times(rng, n: int, days: int, weekday_w: np.ndarray, hour_w: np.ndarray) -> np.ndarray:
    dw = weekday_w[(START_WEEKDAY + np.arange(days)) % 7]
    day = rng.choice(days, size=n, p=dw / dw.sum())
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    return day.astype(np.int64) * DAY + hour * 3600 + rng.integers(0, 3600, n)


def _month_days(days: int, dom: np.ndarray) -> list[np.ndarray]:
    """For each calendar month touching the window, the window day index of day-of-month ``dom``
    (-1 when outside the window)."""
    start = dt.datetime.fromtimestamp(START_EPOCH, dt.UTC).date()
    out, y, m = [], start.year, start.month
    while True:
        first = dt.date(y, m, 1)
        offset = (first - start).days
        if offset >= days:
            break
        d = offset + dom.astype(np.int64) - 1
        out.append(np.where((d >= 0) & (d < days), d, -1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _poisson_count(rng, rate: float, n: int, days: int) -> int:
    return int(rng.poisson(rate * n * days)) if n else 0


def generate(rng: np.random.Generator, pop: Population, days: int) -> dict[str, np.ndarray]:
    """Every ordinary transfer of the window, unsorted. Dormant accounts, accounts not yet open and
    self-transfers are filtered out at the end."""
    f = Flows()
    p0, p1 = pop.ranges["personal"]
    b0, b1 = pop.ranges["business"]
    m0, m1 = pop.ranges["merchant"]
    u0, u1 = pop.ranges["utility"]
    a0, a1 = pop.ranges["atm"]
    x0, x1 = pop.ranges["offshore"]
    n_pers = p1 - p0
    person_of = np.repeat(np.arange(pop.n_persons, dtype=np.int32), pop.person_count)
    wealth = pop.person_wealth[person_of]
    # Activity: a heavy-tailed weight per personal account.
    activity = np.exp(rng.normal(0, 0.8, n_pers))
    activity /= activity.sum()

    def payers(rate: float) -> np.ndarray:
        k = _poisson_count(rng, rate, n_pers, days)
        return rng.choice(n_pers, size=k, p=activity).astype(np.int32)

    # Card payments at merchants (fan-in), Zipf-like popularity.
    n_merch = m1 - m0
    pop_w = 1.0 / np.arange(1, n_merch + 1) ** 0.9
    pop_w = rng.permutation(pop_w / pop_w.sum())
    src = payers(0.78)
    dst = m0 + rng.choice(n_merch, size=len(src), p=pop_w)
    cents = (lognormal_cents(rng, 60, 1.0, len(src), 1, 20_000) * np.sqrt(wealth[src])).astype(np.int64)
    f.add(src, dst, _times(rng, len(src), days, _W_ALL, _H_RETAIL), np.maximum(cents, 100), "pos")

    # Online services paid to businesses (legitimate fan-in).
    src = payers(0.05)
    dst = rng.integers(b0, b1, len(src))
    f.add(
        src,
        dst,
        _times(rng, len(src), days, _W_ALL, _H_PERSONAL),
        lognormal_cents(rng, 300, 1.0, len(src), 5, 50_000),
        "online",
    )

    # P2P among friends: a random other member of the payer's community.
    src = payers(0.16)
    comm = pop.person_community[person_of[src]]
    order = np.argsort(pop.person_community, kind="stable")
    sorted_comm = pop.person_community[order]
    lo = np.searchsorted(sorted_comm, comm, "left")
    hi = np.searchsorted(sorted_comm, comm, "right")
    friend = order[lo + (rng.random(len(src)) * (hi - lo)).astype(np.int64)]
    dst = pop.person_first[friend]
    round_amt = rng.choice(np.array([50, 100, 200, 300, 500, 1000, 2000]) * 100, len(src))
    cents = np.where(rng.random(len(src)) < 0.45, round_amt, lognormal_cents(rng, 150, 1.0, len(src), 1, 20_000))
    f.add(src, dst, _times(rng, len(src), days, _W_ALL, _H_PERSONAL), cents, "transfer")

    # Family support inside a household (larger amounts).
    src = payers(0.01)
    hh = pop.person_household[person_of[src]]
    hlo = np.searchsorted(pop.person_household, hh, "left")
    hhi = np.searchsorted(pop.person_household, hh, "right")
    member = hlo + (rng.random(len(src)) * (hhi - hlo)).astype(np.int64)
    f.add(src, pop.person_first[member], _times(rng, len(src), days, _W_ALL, _H_PERSONAL),
          lognormal_cents(rng, 3000, 0.9, len(src), 100, 200_000), "transfer")  # fmt: skip

    # Own accounts at several banks: same holder, sometimes a 2-hop chain within minutes.
    multi = np.flatnonzero(pop.person_count >= 2)
    if len(multi):
        k = _poisson_count(rng, 0.08, len(multi), days)
        who = rng.choice(multi, k)
        cnt = pop.person_count[who].astype(np.int64)
        i = rng.integers(0, cnt)
        j = (i + 1 + rng.integers(0, cnt - 1)) % cnt
        src = pop.person_first[who] + i
        dst = pop.person_first[who] + j
        ts = _times(rng, k, days, _W_ALL, _H_PERSONAL)
        cents = (lognormal_cents(rng, 2000, 1.1, k, 10, 300_000) * np.sqrt(pop.person_wealth[who])).astype(np.int64)
        cents = np.maximum(cents, 100)
        f.add(src, dst, ts, cents, "online")
        chain = (rng.random(k) < 0.3) & (cnt >= 3)
        third = pop.person_first[who] + (3 - i - j)  # the remaining one of three accounts
        f.add(dst[chain], third[chain], ts[chain] + rng.integers(120, 3600, int(chain.sum())),
              np.maximum(cents[chain] * 9 // 10, 100), "online")  # fmt: skip

    # ATM withdrawals at a terminal of the account's own bank.
    src = payers(0.03)
    atms = np.arange(a0, a1)
    atm_bank = pop.bank[atms]
    order = np.argsort(atm_bank, kind="stable")
    sb = atm_bank[order]
    lo = np.searchsorted(sb, pop.bank[src], "left")
    hi = np.searchsorted(sb, pop.bank[src], "right")
    dst = atms[order][lo + (rng.random(len(src)) * (hi - lo)).astype(np.int64)]
    cents = rng.choice(np.array([100, 200, 300, 500, 800, 1000, 2000, 3000]) * 100, len(src))
    f.add(src, dst, _times(rng, len(src), days, _W_ALL, _H_RETAIL), cents, "atm")

    # Legitimate cross-border payments (tuition, purchases abroad).
    src = payers(0.001)
    f.add(src, rng.integers(x0, x1, len(src)), _times(rng, len(src), days, _W_ALL, _H_OFFICE),
          lognormal_cents(rng, 5000, 1.0, len(src), 100, 200_000), "cross_border")  # fmt: skip

    # Salaries: employer -> employees' first accounts, once a month on the employer's payday.
    employed = np.flatnonzero(pop.person_employer >= 0)
    emp = pop.person_employer[employed]
    payday = np.zeros(pop.n, np.int64)
    payday[b0:b1] = rng.integers(5, 29, b1 - b0)
    salary = lognormal_cents(rng, 7000, 0.5, len(employed), 2000, 200_000) * pop.person_wealth[employed] // 1
    for d in _month_days(days, payday[emp]):
        ok = d >= 0
        n_ok = int(ok.sum())
        ts = d[ok] * DAY + 9 * 3600 + rng.integers(0, 3 * 3600, n_ok)
        f.add(emp[ok], pop.person_first[employed[ok]], ts, salary[ok].astype(np.int64), "transfer")

    # Rent: a quarter of persons pay a landlord (another person) early in the month.
    tenants = np.flatnonzero(rng.random(pop.n_persons) < 0.25)
    landlords = rng.choice(pop.n_persons, max(1, pop.n_persons // 40))
    landlord = landlords[rng.integers(0, len(landlords), len(tenants))]
    rent = lognormal_cents(rng, 2500, 0.4, len(tenants), 500, 30_000)
    for d in _month_days(days, rng.integers(1, 6, len(tenants))):
        ok = (d >= 0) & (landlord != tenants)
        ts = d[ok] * DAY + rng.integers(8 * 3600, 22 * 3600, int(ok.sum()))
        f.add(pop.person_first[tenants[ok]], pop.person_first[landlord[ok]], ts, rent[ok], "transfer")

    # Utility bills: each person pays 1-2 utilities once a month (fan-in to few accounts).
    for _ in range(2):
        payer = np.flatnonzero(rng.random(pop.n_persons) < 0.7)
        util = rng.integers(u0, u1, len(payer))
        bill = lognormal_cents(rng, 150, 0.6, len(payer), 10, 5_000)
        for d in _month_days(days, rng.integers(1, 29, len(payer))):
            ok = d >= 0
            ts = d[ok] * DAY + rng.integers(7 * 3600, 23 * 3600, int(ok.sum()))
            f.add(pop.person_first[payer[ok]], util[ok], ts, bill[ok], "online")

    # Businesses pay suppliers; merchants settle with suppliers (weekdays, office hours).
    for lo_, hi_, rate, median in ((b0, b1, 0.8, 20_000), (m0, m1, 0.5, 5_000)):
        k = _poisson_count(rng, rate, hi_ - lo_, days)
        src = rng.integers(lo_, hi_, k)
        dst = rng.integers(b0, b1, k)
        ts = _times(rng, k, days, _W_WEEKDAYS, _H_OFFICE)
        f.add(src, dst, ts, lognormal_cents(rng, median, 1.2, k, 100, 5_000_000), "transfer")

    out = f.arrays()
    keep = (
        (out["src"] != out["dst"])
        & ~pop.dormant[out["src"]]
        & ~pop.dormant[out["dst"]]
        & (out["ts"] >= pop.opened[out["src"]])
        & (out["ts"] >= pop.opened[out["dst"]])
    )
    return {k: v[keep] for k, v in out.items()}
