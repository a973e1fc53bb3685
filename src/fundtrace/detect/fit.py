"""How the detector settings fit the workspace's data: the payments' time scale, the kinds that tell nothing,
behaviour (``busy_in``) standing in for commerce kinds when the registry has none, and the exchange rates
that put amounts paid in several currencies into one (``fx``).

All are read from the data at the start of every run, before the settings key is taken, so a change (a
batch with times of day, an accounts batch) makes the next run a full one like any changed setting.
"""

from __future__ import annotations

import math
from dataclasses import replace

from fundtrace.detect.settings import DetectSettings, fx_rate

DAY_US = 86_400_000_000
LONG_DAYS = 180  # patterns over months need payments over months (DAY_SCALE's fan buckets are 200 days)


def day_scale_reason(con) -> str | None:
    """Why the payments call for the day-scale defaults (a sentence), or None.

    They do when every transaction batch is AMLSim's output (the preset was tuned on it), or when every payment
    has the same time of day (AMLSim's daily steps; a bank's end-of-day postings) over LONG_DAYS or more. A
    month of payments stamped by day keeps the hour defaults: a simulated telecom world (seed 7) with its times
    cut to the day gave 1.000 / 0.859 account recall / precision with them, 1.000 / 0.013 with the day-scale ones.
    """
    first = con.execute(f"SELECT epoch_us(ts) % {DAY_US} FROM transactions LIMIT 1").fetchall()
    if not first:
        return None
    profiles = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE profile = 'amlsim') FROM batches WHERE kind = 'transactions'"
    ).fetchall()[0]
    if profiles[0] == profiles[1]:
        return "the payments are AMLSim's output"
    # LIMIT 1 ends the scan at the first other time of day: at once on payments with times (0.13 s at 10 M for
    # a min = max over all of them, in every run)
    other = con.execute(
        f"SELECT 1 FROM transactions WHERE epoch_us(ts) % {DAY_US} <> $tod LIMIT 1", {"tod": first[0][0]}
    ).fetchall()
    if other:
        return None
    days = con.execute("SELECT datediff('day', min(ts), max(ts)) FROM transactions").fetchall()[0][0]
    return f"the payments are stamped by day over {days:,} days" if days >= LONG_DAYS else None


def kind_counts(con) -> dict[str | None, int]:
    """Accounts in the registry per lower-case kind (None: no kind)."""
    return dict(con.execute("SELECT lower(kind), count(*) FROM accounts GROUP BY 1").fetchall())


def common_kinds(con, kinds: tuple[str, ...], share_max: float, counts: dict | None = None) -> list[str]:
    """The ``kinds`` held by more than ``share_max`` of the registry's accounts and of the accounts that transact.

    A kind most accounts have says nothing about any one of them, so it cannot mark an account innocent. Both
    shares must be over: a registry that lists only the merchants is not a registry of merchants. The second,
    a scan of every payment, is counted only for a kind over the first. ``counts``: :func:`kind_counts`, when
    the caller has it.
    """
    counts = kind_counts(con) if counts is None else counts
    over = sorted(k for k in {k.lower() for k in kinds} if counts.get(k, 0) > share_max * sum(counts.values()))
    if not over:
        return []
    return [k for k, _ in _held_by_most_active(con, "lower(a.kind)", over, share_max)]


def _held_by_most_active(con, value: str, values: list, share_max: float) -> list[tuple]:
    """``(value, accounts)`` for each of ``values`` of the registry column expression ``value`` (over alias
    ``a``) held by more than ``share_max`` of the accounts that transact: a scan of every payment, so the
    callers ask only for values already over the share of the registry."""
    return con.execute(
        "WITH active AS (SELECT src_id AS id FROM transactions UNION SELECT dst_id FROM transactions) "
        f"SELECT {value} AS v, count(*) FROM accounts a WHERE {value} IN (SELECT unnest($values)) "
        "AND a.account_id IN (SELECT id FROM active) GROUP BY 1 "
        "HAVING count(*) > $share_max * (SELECT count(*) FROM active) ORDER BY 1",
        {"values": values, "share_max": share_max},
    ).fetchall()


def without(kinds: tuple[str, ...], common: list[str]) -> tuple[str, ...]:
    """``kinds`` but those :func:`common_kinds` found (compared in lower case)."""
    return tuple(k for k in kinds if k.lower() not in common)


def common_note(common: list[str], share_max: float) -> str:
    """The sentence that says which kinds :func:`common_kinds` found."""
    return (
        f"account kind {', '.join(common)} is held by more than {share_max:.0%} of the accounts: it does not mark "
        "them innocent (kind_share_max)"
    )


FX_DIGITS = 4  # significant digits of a derived rate: a batch that moves the rates less keeps the settings key


def paid_currencies(con) -> list[tuple[str, int]]:
    """``(currency, payments)``, the most used first (ties by code)."""
    return con.execute("SELECT currency, count(*) AS n FROM transactions GROUP BY 1 ORDER BY n DESC, 1").fetchall()


def derived_fx(con, paid: list[tuple[str, int]]) -> tuple[str, ...]:
    """Exchange rates from what the payments themselves tell (``fx_pairs``), as ``fx`` entries; () when the
    payments are all in one currency or nothing tells a rate.

    The currency of the most payments counts 1. Each pair of currencies seen paid in one and received in the
    other gives ln(value of one unit of the first / of the second), averaged over its payments in both
    directions; the rates follow from the base along the pairs seen most often (a maximum spanning tree), so a
    rarely seen pair cannot override a well-attested path. Rounded to FX_DIGITS significant digits.
    """
    pairs = con.execute("SELECT paid, received, sum(n), sum(sum_log) FROM fx_pairs GROUP BY 1, 2").fetchall()
    if not pairs or len(paid) < 2:
        return ()
    edges: dict[tuple[str, str], list[float]] = {}  # (a, b), a < b: [payments, sum of ln(unit a / unit b)]
    for a, b, n, sum_log in pairs:  # received = paid * unit(a) / unit(b)
        key, sign = ((a, b), 1.0) if a < b else ((b, a), -1.0)
        edge = edges.setdefault(key, [0, 0.0])
        edge[0] += n
        edge[1] += sign * sum_log
    log_unit = {paid[0][0]: 0.0}
    while True:
        reach = [(n, a, b, s) for (a, b), (n, s) in edges.items() if (a in log_unit) != (b in log_unit)]
        if not reach:
            break
        n, a, b, s = max(reach)
        if a in log_unit:
            log_unit[b] = log_unit[a] - s / n
        else:
            log_unit[a] = log_unit[b] + s / n
    return tuple(f"{c}={math.exp(v):.{FX_DIGITS}g}" for c, v in sorted(log_unit.items()))


def fx_notes(paid: list[tuple[str, int]], fx: tuple[str, ...], derived: bool) -> list[str]:
    """What ``fx`` does to the amounts, in plain sentences (the currencies paid in that it gives no rate)."""
    rates = dict(fx_rate(e) for e in fx)
    base = [c for c, r in rates.items() if r == 1]
    missing = sorted(c for c, _ in paid if c not in rates)
    notes = [
        f"amounts are compared in {base[0] if len(base) == 1 else 'one currency'}, at the rates "
        + ("the payments tell" if derived else "set")
        + f" ({', '.join(fx)}; fx)"
    ]
    if missing:
        notes.append(f"no rate for {', '.join(missing)}: those amounts are compared as paid (fx)")
    return notes


def bulk_openings(con, share_max: float, total: int) -> list[tuple[str, int]]:
    """Opening times held by more than ``share_max`` of the registry's ``total`` accounts and of the accounts that
    transact, with how many accounts each: the dates a registry was loaded or migrated in bulk, not openings.

    Both shares must be over, as for the kinds (:func:`common_kinds`): a registry that lists only the accounts
    opened in a burst is not a bulk load. The second, a scan of every payment, is counted only for a time over
    the first.
    """
    over = con.execute(
        "SELECT opened_at, count(*) FROM accounts WHERE opened_at IS NOT NULL GROUP BY 1 HAVING count(*) > $m",
        {"m": share_max * total},
    ).fetchall()
    if not over:
        return []
    held = _held_by_most_active(con, "a.opened_at", [t for t, _ in over], share_max)
    return [(t.isoformat(sep=" ", timespec="microseconds"), n) for t, n in held]


def fit(con, settings: DetectSettings) -> tuple[DetectSettings, list[str]]:
    """``settings`` fitted to the data, and one plain sentence for each thing that changed."""
    notes = []
    reason = day_scale_reason(con) if settings.scale == "auto" else None
    if reason:
        notes.append(f"{reason}: the day-scale defaults apply (scale)")
    if settings.scale == "days" or reason:
        settings = settings.for_days()
    elif settings.scale == "auto":
        settings = replace(settings, scale="hours")
    derived = not settings.fx
    has_pairs = con.execute("SELECT 1 FROM fx_pairs LIMIT 1").fetchall()
    paid = paid_currencies(con) if settings.fx or has_pairs else []  # one scan, only when rates can matter
    if derived:
        settings = replace(settings, fx=derived_fx(con, paid))
    if settings.fx:
        notes += fx_notes(paid, settings.fx, derived)
    counts = kind_counts(con)
    bulk = bulk_openings(con, settings.opened_share_max, sum(counts.values()))
    if bulk:
        notes += [
            f"{n:,} of the accounts that transact opened at {t[:19]}: a registry loaded in bulk, not their opening, "
            "so no account counts as new then (opened_share_max)"
            for t, n in bulk
        ]
        settings = replace(settings, not_openings=tuple(sorted({*settings.not_openings, *(t for t, _ in bulk)})))
    common = common_kinds(con, settings.innocent_kinds + settings.income_kinds, settings.kind_share_max, counts)
    if common:
        notes.append(common_note(common, settings.kind_share_max))
        settings = replace(
            settings,
            innocent_kinds=without(settings.innocent_kinds, common),
            income_kinds=without(settings.income_kinds, common),
        )
    if any(counts.get(k.lower()) for k in settings.innocent_kinds):
        settings = replace(settings, busy_in=0.0)  # the kinds tell commerce; behaviour only stands in for them
    elif con.execute("SELECT 1 FROM transactions LIMIT 1").fetchall():  # (nothing to warn about without payments)
        busy = (
            f"; accounts paid {settings.busy_in:,.0f} times or more that keep their money are taken for commerce "
            "(busy_in)"
            if settings.busy_in
            else ""
        )
        notes.append(
            "no account is of an innocent kind (" + (", ".join(settings.innocent_kinds) or "none left") + "): shops, "
            "employers and cash machines cannot be told from mules by kind, so expect false alarms among sinks and "
            f"fan members (load an accounts file with a kind column){busy}"
        )
    return settings, notes
