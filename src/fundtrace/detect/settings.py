"""Every window and threshold of the detectors, in one frozen dataclass (config section ``detect``).

Field names equal the ``-- param:`` names of the SQL files under ``queries/detect/``, so a setting
reaches its query without a mapping table. The defaults are for telecom-fraud speed (money moves on
within hours). On AMLSim's output, or payments stamped by day over half a year or more, where patterns
unfold over days to months, every setting left at its default takes its value from :data:`DAY_SCALE` instead
(``scale``, :meth:`DetectSettings.for_days`; ``fit.py`` tells which scale the payments have).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from datetime import datetime

CYCLE_KINDS = ("temporal", "static")  # cycle_kinds: hops in time order; hops in any order
# The widest window (hours; dormant_days: a 24th of it). Windows become microseconds in BIGINT arithmetic and
# datetime offsets from the payments' times: an infinite or huge one fails deep in a query.
MAX_WINDOW_HOURS = 87_600
TYPOLOGIES = (
    "pass_through", "chain", "fan_in", "fan_out", "scatter_gather", "gather_scatter", "stacked", "bipartite",
    "cycle", "structuring", "card_farm_ring", "new_account_burst", "dormant_active",
)  # fmt: skip
SCALES = ("auto", "hours", "days")  # scale: from the payments' times; hour defaults; DAY_SCALE

# The defaults for payments stamped by day, tuned on AMLSim's development set (bench/amlsim_quality.py).
# AMLSim's patterns spread over days to months and its launderers need not pass their money on (hubs keep what
# they gather, cycles draw each hop's amount independently): corroboration by pass-through share would hide them.
DAY_SCALE: dict[str, object] = {
    "fan_window_hours": 4800.0,  # fan-in/fan-out alerts spread over 80-600 days: 400-day windows (two buckets)
    "fan_min": 4.0,
    "fan_max": 300.0,  # fan-in hubs of the normal population get up to ~2,000 payments
    "fan_max_cv": 1.0,  # fan amounts drawn uniformly (100-1,000)
    "fan_min_one_shot": 0.3,  # a hub's ordinary payers pay it again and again over 400 days
    "fan_pass_through": False,  # fan hubs need not forward what they collect
    "cycle_window_hours": 480.0,  # cycles finish within ~19 days
    "cycle_tolerance": -1.0,  # each hop's amount drawn independently
    "cycle_kinds": ("static",),  # hops not in time order; normal traffic has many temporal cycles
    "cycle_max_len": 10,  # cycles of 5-10 accounts
    "cycle_max_degree": 250.0,  # a cycle may run through a busy account (~200 payments in 40 days)
    "cycle_min_quiet_share": 0.5,  # half the accounts do nothing else in the window (normal cycles: none)
    "cycle_pass_through_only": False,  # cycle members need not pass on what they receive
    "gs_balance": False,  # gather-scatter hubs do not pass on what they gathered
    "gs_gather_first": True,  # a normal gather-scatter hub also gets ordinary payments around it
    "corroborate": ("pass_through",),
    "hub_corroborates": (),
    "layer_min": 2.0,
    "layer_window_hours": 480.0,  # two buckets hold a whole ~19-day scatter-gather / gather-scatter
    "gather_min": 2.0,  # 8 of the 30 gather-scatter alerts gather from only two accounts
    # Account life instead: launderers are drawn from all accounts and many transact only inside their alert,
    # while normal senders pay steadily (each pays out >= 60 times in 720 days). An alert needs two members that
    # pay out and make <= 10 payments in all (or such a hub); a gather-scatter also a fresh payee.
    "life_corroborates": ("fan_in", "scatter_gather", "gather_scatter"),
    "life_sinks": ("gather_scatter",),
    "life_min": 2,
    "life_max_txns": 10,
    "life_max_hours": 17520.0,  # the whole 720 days: the count is what tells
    # A 400-day fan also collects ordinary customers' one-off payments: publish only its short-lived payers (and
    # the hub). A fan around the source, sink or hub of a kept scatter-gather or gather-scatter in its span, with
    # half its counterparties in it, is that layering, not a fan.
    "life_members": ("fan_in",),
    "fans_yield": ("fan_in", "fan_out"),
    # Over two years launderers live ordinary lives too, paid 100 times or more: busy_in cost recall (cycle 0.946
    # -> 0.935, fan_out 0.844 -> 0.827) and bought no precision on the development set.
    "busy_in": 0.0,
    # Detected, not published: AMLSim's normal senders pay dozens of one-off payees over 400 days just as its
    # fan-out launderers do. On the development set fan_out alerts flagged 3,519 of the 4,900 accounts that
    # transact, 14.6 % of them laundering against 23.9 % of all of them: worse than picking accounts at random.
    # Without them overall recall 0.939 -> 0.752, precision 0.267 -> 0.847 (bench/amlsim_quality.py).
    "unpublished": ("fan_out",),
}


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def fx_rate(entry: str) -> tuple[str, float] | None:
    """``("USD", 7.1)`` from an ``fx`` entry ``"USD=7.1"``; None when it is not one (a code and a positive rate)."""
    code, _, value = entry.partition("=")
    try:
        rate = float(value)
    except ValueError:
        return None
    return (code.strip().upper(), rate) if code.strip() and math.isfinite(rate) and rate > 0 else None


@dataclass(frozen=True)
class DetectSettings:
    """Windows (hours unless named *_days), thresholds and caps of every detector."""

    # DuckDB memory limit while detecting (spills to disk beyond it). 10 M payments: 1.2 GB spills less than 1 GB
    # (detect 15-20 % less CPU, measured in pairs) at a process peak of ~1.38 GiB, under the 1.5 GiB budget.
    memory_limit: str = "1200MB"
    # auto: DAY_SCALE on AMLSim's output or payments stamped by day over 180 days or more (fit.py), else these
    scale: str = "auto"
    # A kind held by more than this share of the registry's accounts marks none of them innocent: in a registry of
    # companies (AMLworld's entities are all corporations, partnerships and sole proprietorships) the launderers
    # are businesses too. A simulated world with every person made a business lost recall 1.000 -> 0.014 without it.
    kind_share_max: float = 0.5
    # Without kinds, behaviour: when no account is of an innocent kind (no registry, or one without kinds; fit.py
    # sets it to 0 otherwise), an account paid at least this many times over its history that is no pass-through
    # account (share under share_min) is taken for commerce (a shop, an employer, a cash machine): not listed as a
    # sink or member, and an alert whose hub or mule it is is dropped (corroborate.sql). Six simulated worlds
    # without kinds: precision 0.26-0.60 -> 0.68-0.90, recall -0.01 at most; 50 lost more recall on the 90-day
    # world. 0: off.
    busy_in: float = 100.0
    # Exchange rates, "CODE=value" (the value of one unit of CODE in the currency detection counts in, whose own
    # entry is "=1"): amounts are compared in one currency. Empty: derived by fit.py from the rates the data
    # itself tells (fx_pairs: AMLworld gives each payment as paid and as received); none known, as paid.
    fx: tuple[str, ...] = ()
    skip_same_holder: bool = True  # transfers between two accounts of one holder are not evidence, unless:
    same_holder_onward: bool = True  # ... the money only transits the holder: in from others, out to others (dwell)
    innocent_kinds: tuple[str, ...] = ("business", "merchant", "utility", "government", "payroll", "atm")
    # payers whose money is income (see income_max): the innocent kinds but the cash channel, since victims are
    # also told to deposit cash into a mule account
    income_kinds: tuple[str, ...] = ("business", "merchant", "utility", "government", "payroll")
    # corroboration: an alert of these typologies needs an account whose money mostly passes through
    share_min: float = 0.4
    share_alone: float = 0.9  # a pass-through alert needs no link above this share
    sink_share: float = 0.05  # a sink must get this share of the alert's money (or pass money through itself)
    sink_checked: tuple[str, ...] = ("pass_through", "chain", "stacked")
    hub_corroborates: tuple[str, ...] = ("fan_in", "fan_out", "gather_scatter")  # the hub itself must pass through
    path_corroborates: tuple[str, ...] = ("chain", "stacked")  # need path_core_min pass-through mules
    path_core_min: int = 2
    corroborate: tuple[str, ...] = ("pass_through", "chain", "stacked", "fan_in", "fan_out", "gather_scatter", "cycle")
    # account life: alerts of these typologies also need short-lived accounts (few payments over a short
    # span, money paid out): life_min members other than the hub, or the hub itself
    life_corroborates: tuple[str, ...] = ()
    life_min: int = 2
    life_sinks: tuple[str, ...] = ()  # ...and also a short-lived sink (one that only receives counts)
    life_members: tuple[str, ...] = ()  # published members other than the hub must be short-lived
    life_max_txns: int = 10
    life_max_hours: float = 720.0
    # fan alerts that give way to a kept scatter-gather / gather-scatter alert around their hub
    fans_yield: tuple[str, ...] = ()
    fans_yield_share: float = 0.5  # ...when this share of the fan's counterparties are its members
    # Typologies detected (kept in the raw alerts) but never published nor counted as a link; `detect --only` a
    # typology publishes it all the same.
    unpublished: tuple[str, ...] = ()
    # pass-through (FlowScope flow balance)
    dwell_hours: float = 48.0
    # The largest share of an episode's money in that may stay behind (also the holder-transit and gather-scatter
    # balance). 0.15, not 0.2: ordinary heavy spenders (a salary spent within 48 h) keep ~0-20 %, mules a commission
    # of a few percent (the simulator 0.5-3 %; its mule episodes keep 1.5 % median, 7.5-12 % at the 99th percentile,
    # payments out split by the dwell window). 0.15 drops the ~18 % of spender episodes keeping 15-20 %: precision
    # over 0.2 +1.5 to +7.5 points on each of six simulated worlds (bench/sim_quality.py), AMLSim unchanged, still
    # 5x the simulator's largest commission. 0.1 gained 3-8 points more but cuts into the mules' own tail.
    keep_max: float = 0.15
    over_max: float = 0.1
    # An episode whose money in came mostly (more than this share) from accounts of the income kinds (an
    # employer, a government, a merchant's refund) is income being spent, not victims' money passed on: the
    # heavy spender who gets a salary and pays rent, family and shops within two days. On six simulated worlds
    # (bench/sim_quality.py) it lifts overall precision by 4-10 points (e.g. 0.752 -> 0.848) and changes no
    # recall; 0.2 and 0.5 gave the same. 0.5, a majority, leaves an episode fed partly by a business victim.
    income_max: float = 0.5
    alpha: float = 1.0
    min_amount: float = 100.0
    max_in: float = 30.0
    # chains and stacked layers
    hop_tolerance: float = 0.05
    min_hop_share: float = 0.05
    max_hops: int = 6
    chain_min_levels: int = 2
    # fan-in / fan-out
    fan_window_hours: float = 72.0
    fan_min: float = 5.0
    fan_max: float = 60.0
    fan_max_cv: float = 0.6
    fan_min_one_shot: float = 0.6
    fan_pass_through: bool = True
    # scatter-gather / gather-scatter / bipartite
    layer_window_hours: float = 72.0
    layer_min: float = 3.0
    layer_max: float = 60.0
    layer_tolerance: float = 0.2
    gather_min: float = 2.0
    gs_balance: bool = True
    gs_gather_first: bool = False  # count ins up to the first out after an in, outs from then on
    # cycles
    cycle_kinds: tuple[str, ...] = ("temporal", "static")  # temporal: hops in time order; static: in any order
    cycle_window_hours: float = 72.0  # temporal: after the first payment; static: a bucket and the next
    cycle_max_len: int = 6
    cycle_min_len: int = 3
    cycle_tolerance: float = 0.2  # per hop (static: per edge's money in the window); negative: not compared
    cycle_max_degree: float = 60.0
    cycle_pass_through_only: bool = True
    cycle_min_quiet_share: float = 0.5  # static: share of accounts with no other payments in the window
    # temporal: open walks a round may hold (~200 bytes each); past it detection stops with an error rather than
    # fill the disk (a dense mesh of equal payments has more time-ordered cycles than any analyst could read)
    cycle_max_walks: int = 5_000_000
    # structuring
    threshold: float = 50_000.0
    margin: float = 0.1
    structuring_min: float = 3.0
    structuring_window_hours: float = 168.0
    # new-account burst
    burst_hours: float = 72.0
    burst_min_txns: float = 10.0
    burst_min_amount: float = 50_000.0
    # dormant then active
    dormant_days: float = 180.0
    active_hours: float = 72.0
    active_min_txns: float = 5.0
    active_min_amount: float = 50_000.0
    # An opening time held by more than this share of the registry's accounts, and of the accounts that transact, is
    # the date a registry was loaded or migrated in bulk, not when they opened (AMLSim opens all 12,043 accounts at
    # day 0): fit.py lists it in not_openings, and no account is new then. On the AMLSim development set
    # new_account_burst flagged 605 accounts (80 laundering) without it.
    opened_share_max: float = 0.5
    not_openings: tuple[str, ...] = ()  # opening times that are none ("2017-01-01 00:00:00"); fit.py adds to them

    def validate(self) -> list[tuple[str, str]]:
        """``(field, message)`` for every bad setting; a field that is no finite number gets only that message."""
        infinite = [
            (f.name, "must be a finite number")
            for f in fields(self)
            if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))
        ]
        problems = []
        for name in ("dwell_hours", "life_max_hours", "fan_window_hours", "layer_window_hours", "cycle_window_hours",
                     "structuring_window_hours", "burst_hours", "active_hours"):  # fmt: skip
            if not 0 < getattr(self, name) <= MAX_WINDOW_HOURS:
                problems.append((name, f"must be greater than 0 and at most {MAX_WINDOW_HOURS:,} (10 years)"))
        if not 0 < self.dormant_days <= MAX_WINDOW_HOURS // 24:
            problems.append(
                ("dormant_days", f"must be greater than 0 and at most {MAX_WINDOW_HOURS // 24:,} (10 years)")
            )
        if self.life_max_txns < 1:
            problems.append(("life_max_txns", "must be at least 1"))
        if self.life_min < 0:
            problems.append(("life_min", "must be at least 0"))
        for name in ("keep_max", "margin", "min_hop_share", "share_min", "share_alone", "sink_share"):
            if not 0 <= getattr(self, name) < 1:
                problems.append((name, "must be at least 0 and below 1"))
        if not 0 <= self.income_max <= 1:
            problems.append(("income_max", "must be between 0 and 1"))
        if self.busy_in < 0:
            problems.append(("busy_in", "must be at least 0 (0: off)"))
        for name in ("kind_share_max", "opened_share_max"):
            if not 0 < getattr(self, name) <= 1:
                problems.append((name, "must be greater than 0 and at most 1"))
        if any(_timestamp(t) is None for t in self.not_openings):
            problems.append(("not_openings", 'entries must be times such as "2017-01-01 00:00:00"'))
        if any(fx_rate(e) is None for e in self.fx):
            problems.append(("fx", 'entries must be "CODE=value" with a value greater than 0, e.g. "USD=1"'))
        if set(self.unpublished) - set(TYPOLOGIES):
            problems.append(("unpublished", f"entries must be typologies: {', '.join(TYPOLOGIES)}"))
        if self.scale not in SCALES:
            problems.append(("scale", f"must be one of {', '.join(SCALES)}"))
        for name in ("max_hops", "cycle_max_len"):
            if not 1 <= getattr(self, name) <= 12:
                problems.append((name, "must be between 1 and 12"))
        if self.fan_min < 2:
            problems.append(("fan_min", "must be at least 2"))
        if self.fan_max < self.fan_min and math.isfinite(self.fan_min):
            problems.append(("fan_max", "must be at least fan_min"))
        if self.layer_min < 2:
            problems.append(("layer_min", "must be at least 2"))
        if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", self.memory_limit):
            problems.append(("memory_limit", "must be a size such as 1GB or 1536MiB"))
        if self.threshold <= 0:
            problems.append(("threshold", "must be greater than 0"))
        if not self.cycle_kinds or set(self.cycle_kinds) - set(CYCLE_KINDS):
            problems.append(("cycle_kinds", f"must name one or both of {', '.join(CYCLE_KINDS)}"))
        if self.cycle_max_walks < 1:
            problems.append(("cycle_max_walks", "must be at least 1"))
        if not 0 <= self.cycle_min_quiet_share <= 1:
            problems.append(("cycle_min_quiet_share", "must be between 0 and 1"))
        return infinite + [p for p in problems if p[0] not in {name for name, _ in infinite}]

    def for_days(self) -> DetectSettings:
        """These settings for payments stamped by day: each one left at its default takes its DAY_SCALE value.

        A value the user set stays, unless it equals the hour-scale default (``scale = "hours"`` keeps them all).
        """
        default = DetectSettings()
        changes = {k: v for k, v in DAY_SCALE.items() if getattr(self, k) == getattr(default, k)}
        return replace(self, scale="days", **changes)
