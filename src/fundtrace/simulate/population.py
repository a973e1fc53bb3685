"""Who lives in the synthetic world: holders, their accounts at several banks, and their identifiers.

Accounts are integer indices into flat numpy arrays; their text form (bank code, card number,
holder id, name, phone) is only built when files are written. Everything is drawn from one
``numpy.random.Generator`` so a seed fixes the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DAY = 86_400
# 2024-03-01T00:00:00Z, a Friday: the first second of the simulated window.
START_EPOCH = 1_709_251_200
START_WEEKDAY = 4  # Monday = 0

BANKS = ("ICBC", "CCB", "ABC", "BOC", "BOCOM", "CMB", "PSBC", "CIB", "SPDB", "CITIC")
BANK_WEIGHTS = np.array([0.2, 0.18, 0.16, 0.12, 0.08, 0.08, 0.08, 0.04, 0.03, 0.03])
BANK_BIN = ("622202", "621700", "622848", "621661", "622262", "621483", "621799", "622909", "622521", "621771")
OFFSHORE_BANKS = ("HSBC-HK", "DBS-SG", "MAYBANK-MY")
ALL_BANKS = BANKS + OFFSHORE_BANKS

# Account kinds (index -> name written to accounts.kind).
PERSONAL, BUSINESS, MERCHANT, UTILITY, ATM, OFFSHORE, OTC = range(7)
KIND_NAMES = ("personal", "business", "merchant", "utility", "atm", "offshore", "otc")

# Holder types (holder_id prefix).
H_PERSON, H_COMPANY, H_BANK, H_FAKE = range(4)
HOLDER_PREFIX = ("P", "C", "B", "F")


@dataclass
class Population:
    """Flat per-account and per-person arrays. Accounts ``[0, n_personal)`` belong to persons,
    contiguous per person; then businesses, merchants, utilities, ATM terminals, legitimate
    offshore counterparties; then accounts the fraud module appends (card farms, cash-out sinks)."""

    bank: np.ndarray  # int16 index into ALL_BANKS
    kind: np.ndarray  # int8 index into KIND_NAMES
    holder_type: np.ndarray  # int8
    holder_num: np.ndarray  # int32
    opened: np.ndarray  # int64 seconds from START (negative: before the window)
    base_open: np.ndarray  # int64 cents: the opening balance before the ledger check raises it
    dormant: np.ndarray  # bool: no ordinary activity at all
    phone: np.ndarray  # object (str): registered phone
    # persons
    person_first: np.ndarray  # int32 first account of each person
    person_count: np.ndarray  # int8 accounts per person
    person_employer: np.ndarray  # int32 account index of the employer (business), -1 none
    person_community: np.ndarray  # int32 friends' community
    person_household: np.ndarray  # int32
    person_wealth: np.ndarray  # float64 amount multiplier
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    links: list[tuple[np.ndarray, str, np.ndarray, np.ndarray]] = field(default_factory=list)
    # links: (account indices, kind, values (object str), first_seen seconds)

    @property
    def n(self) -> int:
        return len(self.bank)

    @property
    def n_persons(self) -> int:
        return len(self.person_first)

    def append(
        self,
        *,
        bank: np.ndarray,
        kind: int,
        holder_type: int,
        holder_num: np.ndarray,
        opened: np.ndarray,
        base_open: np.ndarray,
        phone: np.ndarray,
    ) -> np.ndarray:
        """Add accounts (used by the fraud module); returns their indices."""
        k = len(bank)
        idx = np.arange(self.n, self.n + k)
        self.bank = np.concatenate([self.bank, bank.astype(np.int16)])
        self.kind = np.concatenate([self.kind, np.full(k, kind, np.int8)])
        self.holder_type = np.concatenate([self.holder_type, np.full(k, holder_type, np.int8)])
        self.holder_num = np.concatenate([self.holder_num, holder_num.astype(np.int32)])
        self.opened = np.concatenate([self.opened, opened.astype(np.int64)])
        self.base_open = np.concatenate([self.base_open, base_open.astype(np.int64)])
        self.dormant = np.concatenate([self.dormant, np.zeros(k, bool)])
        self.phone = np.concatenate([self.phone, phone.astype(object)])
        return idx


def phone_numbers(nums: np.ndarray, prefix: str, salt: int) -> np.ndarray:
    """Distinct 11-digit numbers starting with ``prefix`` for distinct ``nums`` (a bijection)."""
    width = 11 - len(prefix)
    scrambled = (nums.astype(np.int64) * 48_271 + salt) % 10**width
    return np.array([f"{prefix}{v:0{width}d}" for v in scrambled.tolist()], dtype=object)


def lognormal_cents(rng: np.random.Generator, median: float, sigma: float, n: int, lo: float, hi: float) -> np.ndarray:
    """Amounts in cents, log-normal around ``median`` yuan, clipped to [lo, hi] yuan."""
    yuan = np.exp(rng.normal(np.log(median), sigma, n))
    return np.round(np.clip(yuan, lo, hi) * 100).astype(np.int64)


def build(rng: np.random.Generator, n_accounts: int, reserved: int) -> Population:
    """Everyone except the fraud module's own accounts (``reserved`` of ``n_accounts``)."""
    n = max(n_accounts - reserved, 200)
    n_bus = max(10, int(0.015 * n))
    n_merch = max(20, int(0.04 * n))
    n_util = max(3, n // 4000)
    n_atm = max(len(BANKS), n // 1000)
    n_xb = max(3, n // 5000)
    n_pers = n - n_bus - n_merch - n_util - n_atm - n_xb

    # Persons hold 1-3 accounts, often at different banks.
    per = rng.choice(np.array([1, 2, 3], np.int8), size=n_pers, p=[0.65, 0.25, 0.10])
    cum = np.cumsum(per, dtype=np.int64)
    n_persons = int(np.searchsorted(cum, n_pers)) + 1
    per = per[:n_persons].copy()
    per[-1] -= int(cum[n_persons - 1] - n_pers)
    first = np.concatenate([[0], np.cumsum(per[:-1], dtype=np.int64)]).astype(np.int32)
    person_of = np.repeat(np.arange(n_persons, dtype=np.int32), per)

    bank = np.empty(n, np.int16)
    bank[:n_pers] = rng.choice(len(BANKS), size=n_pers, p=BANK_WEIGHTS)
    s = n_pers
    ranges = {"personal": (0, n_pers)}
    for name, count in (("business", n_bus), ("merchant", n_merch), ("utility", n_util)):
        bank[s : s + count] = rng.choice(len(BANKS), size=count, p=BANK_WEIGHTS)
        ranges[name] = (s, s + count)
        s += count
    bank[s : s + n_atm] = np.arange(n_atm) % len(BANKS)
    ranges["atm"] = (s, s + n_atm)
    s += n_atm
    bank[s : s + n_xb] = len(BANKS) + np.arange(n_xb) % len(OFFSHORE_BANKS)
    ranges["offshore"] = (s, s + n_xb)

    kind = np.concatenate(
        [
            np.full(n_pers, PERSONAL, np.int8),
            np.full(n_bus, BUSINESS, np.int8),
            np.full(n_merch, MERCHANT, np.int8),
            np.full(n_util, UTILITY, np.int8),
            np.full(n_atm, ATM, np.int8),
            np.full(n_xb, OFFSHORE, np.int8),
        ]
    )
    n_comp = n_bus + n_merch + n_util + n_xb
    holder_type = np.concatenate(
        [
            np.full(n_pers, H_PERSON, np.int8),
            np.full(n_bus + n_merch + n_util, H_COMPANY, np.int8),
            np.full(n_atm, H_BANK, np.int8),
            np.full(n_xb, H_COMPANY, np.int8),
        ]
    )
    holder_num = np.concatenate(
        [
            person_of,
            np.arange(n_bus + n_merch + n_util, dtype=np.int32),
            bank[ranges["atm"][0] : ranges["atm"][1]].astype(np.int32),
            np.arange(n_bus + n_merch + n_util, n_comp, dtype=np.int32),
        ]
    )
    # Opened months to years before the window; a few persons opened an account recently.
    opened = -rng.integers(30 * DAY, 3650 * DAY, n).astype(np.int64)
    recent = rng.random(n_pers) < 0.01
    opened[:n_pers][recent] = -rng.integers(DAY, 20 * DAY, int(recent.sum()))
    opened = (opened // 60) * 60

    wealth = np.exp(rng.normal(0.0, 0.6, n_persons))
    base_open = np.zeros(n, np.int64)
    base_open[:n_pers] = lognormal_cents(rng, 6000, 1.0, n_pers, 0, 2_000_000) * wealth[person_of] // 1
    for name, median in (("business", 300_000), ("merchant", 40_000), ("utility", 1_000_000)):
        a, b = ranges[name]
        base_open[a:b] = lognormal_cents(rng, median, 0.8, b - a, 1000, 50_000_000)

    # 5 % of personal accounts are dormant: opened long ago, no activity.
    dormant = np.zeros(n, bool)
    dormant[:n_pers] = rng.random(n_pers) < 0.05

    businesses = np.arange(*ranges["business"], dtype=np.int32)
    employer = np.where(rng.random(n_persons) < 0.85, rng.choice(businesses, n_persons), -1).astype(np.int32)
    # Friends' communities of 4-15 people and households of 1-4, over a shuffled order of persons.
    order = rng.permutation(n_persons)
    community = np.empty(n_persons, np.int32)
    community[order] = np.repeat(np.arange(n_persons), rng.integers(4, 16, n_persons))[:n_persons]
    household = np.repeat(np.arange(n_persons), rng.choice([1, 2, 3, 4], n_persons, p=[0.3, 0.35, 0.25, 0.1]))
    household = household[:n_persons].astype(np.int32)

    person_phone = phone_numbers(np.arange(n_persons), "13", 12_345)
    comp_phone = np.array([f"0{10 + i % 80}{6_000_000 + i:08d}" for i in range(n_comp)], dtype=object)
    phone = np.empty(n, dtype=object)
    phone[:n_pers] = person_phone[person_of]
    # Families: a parent's account registered with a child's phone (shared phone numbers).
    shared = rng.random(n_pers) < 0.06
    hh_head = np.zeros(n_persons, np.int64)
    _, first_in_hh = np.unique(household, return_index=True)
    hh_head[:] = np.repeat(first_in_hh, np.diff(np.append(first_in_hh, n_persons)))
    phone[:n_pers][shared] = person_phone[hh_head[person_of[shared]]]
    phone[n_pers : ranges["atm"][0]] = comp_phone[: n_bus + n_merch + n_util]
    phone[ranges["atm"][0] : ranges["atm"][1]] = "95588"
    phone[ranges["offshore"][0] : ranges["offshore"][1]] = comp_phone[n_bus + n_merch + n_util :]

    pop = Population(
        bank=bank,
        kind=kind,
        holder_type=holder_type,
        holder_num=holder_num,
        opened=opened,
        base_open=base_open,
        dormant=dormant,
        phone=phone,
        person_first=first,
        person_count=per,
        person_employer=employer,
        person_community=community,
        person_household=household,
        person_wealth=wealth,
        ranges=ranges,
    )
    _innocent_links(rng, pop, person_of, n_pers)
    return pop


def _innocent_links(rng: np.random.Generator, pop: Population, person_of: np.ndarray, n_pers: int) -> None:
    """Phone, ID card, device and IP per personal account; families share devices and home IPs,
    colleagues share office devices and IPs, many people share public IPs."""
    acc = np.arange(n_pers)
    opened = pop.opened[:n_pers]
    pop.links.append((acc, "phone_card", pop.phone[:n_pers], opened))
    idcard = np.array([f"ID{(p * 7_919 + 3) % 10**12:012d}" for p in person_of.tolist()], dtype=object)
    pop.links.append((acc, "id_card", idcard, opened))
    # Device: own phone, or the household's shared tablet (35 %).
    hh = pop.person_household[person_of]
    use_hh = rng.random(n_pers) < 0.35
    dev = np.where(use_hh, hh.astype(np.int64) + 10**9, person_of.astype(np.int64))
    pop.links.append((acc, "device", np.array([f"DEV{d:010x}" for d in dev.tolist()], dtype=object), opened))
    # IP: home router per household (60 %), office IP of the employer (25 %), public IPs (15 %).
    u = rng.random(n_pers)
    emp = pop.person_employer[person_of]
    n_public = max(5, n_pers // 400)
    ipnum = np.where(
        u < 0.6,
        hh.astype(np.int64),
        np.where(
            (u < 0.85) & (emp >= 0), 5_000_000 + emp.astype(np.int64), 9_000_000 + rng.integers(0, n_public, n_pers)
        ),
    )
    ips = np.array([f"{36 + (v >> 16) % 180}.{(v >> 8) & 255}.{v & 255}.{(v * 7) % 250 + 2}" for v in ipnum.tolist()])
    pop.links.append((acc, "ip", ips.astype(object), opened))
    # Office PCs: 20 % of employees log in from a shared office device.
    office = (rng.random(n_pers) < 0.2) & (emp >= 0)
    pop.links.append(
        (
            acc[office],
            "device",
            np.array([f"OFC{e:08x}" for e in emp[office].tolist()], dtype=object),
            opened[office],
        )
    )
