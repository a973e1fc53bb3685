"""A synthetic telecom-fraud world with money-level ground truth.

``simulate(out, accounts=20_000, days=30, seed=7, fmt="csv")`` writes, in ``out``:

- ``accounts``, ``transactions``, ``links``, ``reports``, ``calls``: the native input kinds
  (load them in that order: links and reports refer to accounts and transactions);
- ``truth_transactions``, ``truth_accounts``, ``truth_cases``, ``truth_holdings``: the ground truth;
- ``truth_balances`` (bank, account, opening, closing, min_balance): every account's ledger.

The world
---------
Ordinary life (``normal.py``, vectorised): card payments at merchants, salaries, rent, utility
bills, P2P among friends, family support, transfers between a holder's own accounts at several banks,
ATM withdrawals, supplier payments, a little cross-border, with daily and weekly rhythm; 5 % of
personal accounts are dormant. About 1.0 transaction per account and day: 20,000 accounts x 30 days
give ~0.6 M transactions, 33,000 x 30 about 1 M, 330,000 x 30 about 10 M.

Fraud (``fraud.py``): about 1 gang per 2,000 accounts (at least 9, one per typology: chain, fan_in,
fan_out, scatter_gather, gather_scatter, stacked, bipartite, cycle, structuring) and 0.25 cases per
1,000 account-days. A gang's phone card calls the victim minutes before the victim pays one or more
first-level mules; the money goes through 2-6 levels, each account forwarding 2 minutes to 8 hours
after the money arrived, then is cashed out by ATM withdrawals (whole hundreds, at most 20,000 each),
an OTC crypto dealer, a cross-border account or purchases at merchants. Structuring gangs move it in
parcels just under 50,000 CNY. 40 % of gangs (at least two per world) use card-farm accounts: opened
within three days of each other at several banks by a few ID cards, sharing phone cards, two devices
and an IP (``ring_id`` in truth_accounts); the others buy existing persons' accounts, 30 % of them
long dormant, which keep their owners' ordinary payments as camouflage. Innocents share identifiers
too (family phones and tablets, home routers, office PCs and IPs, public IPs). 15 % of victims never
report; reports come 10 minutes to 5 days after the last payment.

How money is counted (truth_holdings)
-------------------------------------
The generator earmarks money; it never has to guess:

1. Every fraud transfer carries money of exactly one case (its ``case_id`` in truth_transactions).
   A mule serving several cases at once holds separate pools per case; its ordinary payments are paid
   from its own money, never from a pool (its opening balance is chosen large enough for that).
2. A mule forwards what it received for a case minus a commission (0.5-3 % per account, plus the
   ATM rounding at the last level). Until the mule's **last** outgoing transfer for the case, all
   money of the case that arrived and has not left is victim money, the future commission included.
   At that last transfer the remainder becomes the mule's own money and no longer counts.
   So, for case c, mule account m and time T (recomputable from truth_transactions alone)::

       held(c, m, T) = in(c, m, <= T) - out(c, m, <= T) - [T >= last_out(c, m)] * commission(c, m)
       commission(c, m) = in(c, m, all time) - out(c, m, all time)

   where in/out sum the case's transfers into/out of m with ts <= T.
3. Money that reached a cash-out (an ATM terminal, the OTC dealer, the cross-border account, a
   merchant) has left the gang and is not held. The victim's own account holds nothing.
4. truth_holdings lists, for reported cases only, every mule with held > 0 at the case's
   ``reported_at``; the sum per case is at most the case's amount_lost.

Ledgers: every account's opening balance (``accounts.balance``, ``balance_at`` empty) is at least its
drawn base value and large enough that opening + in - out never goes below zero, in file order
(time, then txn_id). Mules get small base balances (card farms 10-200 CNY).

Everything is drawn from one ``numpy.random.Generator(seed)``: the same seed gives byte-identical
files. Amounts have at most two decimals, times are ISO 8601 UTC (``...Z``), txn ids are unique.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from fundtrace.errors import UsageError
from fundtrace.simulate import fraud, normal, output, population
from fundtrace.simulate.fraud import TYPOLOGIES
from fundtrace.simulate.population import KIND_NAMES

__all__ = ["TYPOLOGIES", "simulate", "FILES"]

FILES = (
    "accounts",
    "transactions",
    "links",
    "reports",
    "calls",
    "truth_transactions",
    "truth_accounts",
    "truth_cases",
    "truth_holdings",
    "truth_balances",
)
MIN_ACCOUNTS = 1000


def simulate(out: Path, *, accounts: int = 20_000, days: int = 30, seed: int = 7, fmt: str = "csv") -> dict:
    """Generate a world into ``out`` (created if needed); returns rows written per file."""
    if fmt not in ("csv", "parquet"):
        raise UsageError(f"unknown format {fmt!r} (use csv or parquet)")
    if accounts < MIN_ACCOUNTS:
        raise UsageError(f"--accounts must be at least {MIN_ACCOUNTS:,} (got {accounts:,})")
    if not 1 <= days <= 3650:
        raise UsageError(f"--days must be between 1 and 3650 (got {days})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:  # no stale files of the other format
        for ext in ("csv", "parquet"):
            (out / f"{name}.{ext}").unlink(missing_ok=True)

    rng = np.random.default_rng(seed)
    gangs = fraud.plan(rng, accounts, days)
    pop = population.build(rng, accounts, fraud.reserved_accounts(gangs))
    fraud.populate(rng, pop, gangs, days)
    ordinary = normal.generate(rng, pop, days)
    fr = fraud.run(rng, pop, gangs, days)

    n_normal = len(ordinary["src"])
    src = np.concatenate([ordinary["src"], np.array(fr.src, np.int32)])
    dst = np.concatenate([ordinary["dst"], np.array(fr.dst, np.int32)])
    ts = np.concatenate([ordinary["ts"], np.array(fr.ts, np.int64)])
    cents = np.concatenate([ordinary["cents"], np.array(fr.cents, np.int64)])
    channel = np.concatenate([ordinary["channel"], np.array(fr.channel, np.int8)])
    case = np.concatenate([np.full(n_normal, -1, np.int32), np.array(fr.case, np.int32)])
    hop = np.concatenate([np.full(n_normal, -1, np.int8), np.array(fr.hop, np.int8)])
    del ordinary
    order = np.argsort(ts, kind="stable")
    src, dst, ts, cents, channel, case, hop = (a[order] for a in (src, dst, ts, cents, channel, case, hop))
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    del order

    is_mule = np.zeros(pop.n, bool)
    is_mule[[a for a, r in fr.role.items() if r == "mule"]] = True
    fraud_txn = case >= 0
    own = np.empty(2 * len(src), bool)
    own[0::2] = ~(fraud_txn & is_mule[src])
    own[1::2] = ~(fraud_txn & is_mule[dst])
    cushion = population.lognormal_cents(rng, 300, 1.0, pop.n, 1, 50_000)
    opening, closing, minimum = output.ledger(src, dst, cents, own, pop.base_open, cushion)
    del own
    if (minimum < 0).any():
        raise AssertionError("simulator bug: a ledger went negative")

    bank_s, acct_s = output.account_text(pop)
    w = output.Writer(out, fmt)
    _write_accounts(w, pop, bank_s, acct_s, opening)
    w.write("transactions", _transaction_chunks(src, dst, ts, cents, channel, bank_s, acct_s))
    _write_links(w, pop, bank_s, acct_s)
    _write_cases(w, fr, pop, bank_s, acct_s, position, n_normal)
    _write_calls(w, fr)
    w.write("truth_transactions", _truth_chunks(case, hop, [g.typology for g in gangs], fr))
    _write_truth_accounts(w, fr, pop, bank_s, acct_s)
    w.write(
        "truth_balances",
        pl.DataFrame(
            [bank_s, acct_s, output.money(opening).alias("opening"), output.money(closing).alias("closing"),
             output.money(minimum).alias("min_balance")]
        ),
    )  # fmt: skip
    return dict(w.counts)


def _txn_ids(start: int, k: int) -> pl.Series:
    return pl.select(pl.format("T{}", pl.int_range(start + 1, start + k + 1).cast(pl.String).str.zfill(10))).to_series()


def _transaction_chunks(src, dst, ts, cents, channel, bank_s, acct_s):
    channels = pl.Series(output.CHANNEL_NAMES, dtype=pl.String)
    for a in range(0, max(len(src), 1), output.CHUNK_ROWS):
        b = min(a + output.CHUNK_ROWS, len(src))
        s, d = pl.Series(src[a:b]), pl.Series(dst[a:b])
        yield pl.DataFrame(
            [
                _txn_ids(a, b - a).alias("txn_id"),
                output.times(ts[a:b]).alias("ts"),
                bank_s.gather(s).alias("src_bank"),
                acct_s.gather(s).alias("src_account"),
                bank_s.gather(d).alias("dst_bank"),
                acct_s.gather(d).alias("dst_account"),
                output.money(cents[a:b]).alias("amount"),
                pl.Series("currency", ["CNY"] * (b - a), pl.String),
                channels.gather(pl.Series(channel[a:b])).alias("channel"),
            ]
        )


def _truth_chunks(case, hop, gang_typology, fr):
    case_typology = pl.Series([gang_typology[c["gang"]] for c in fr.cases], dtype=pl.String)
    for a in range(0, max(len(case), 1), output.CHUNK_ROWS):
        b = min(a + output.CHUNK_ROWS, len(case))
        c = pl.Series(case[a:b])
        is_fraud = c >= 0
        cidx = pl.Series(np.where(case[a:b] >= 0, case[a:b], 0))
        yield pl.DataFrame(
            [
                _txn_ids(a, b - a).alias("txn_id"),
                is_fraud.alias("is_fraud"),
                pl.select(pl.when(is_fraud).then(pl.format("C{}", (cidx + 1).cast(pl.String).str.zfill(6))))
                .to_series()
                .alias("case_id"),
                pl.select(pl.when(is_fraud).then(case_typology.gather(cidx))).to_series().alias("typology"),
                pl.select(pl.when(is_fraud).then(pl.Series(hop[a:b]).cast(pl.Int32))).to_series().alias("hop"),
            ]
        )


def _write_accounts(w, pop, bank_s, acct_s, opening) -> None:
    hid, hname = output.holders(pop)
    w.write(
        "accounts",
        pl.DataFrame(
            [
                bank_s,
                acct_s,
                hid,
                hname,
                pl.Series("phone", pop.phone.tolist(), pl.String).replace("", None),
                output.times(pop.opened).alias("opened_at"),
                output.kind_names(pop),
                output.money(opening).alias("balance"),
                pl.Series("balance_at", [None] * pop.n, pl.Datetime("us")),
            ]
        ),
    )


def _write_links(w, pop, bank_s, acct_s) -> None:
    parts = []
    for idx, kind, values, first_seen in pop.links:
        parts.append(
            pl.DataFrame(
                {
                    "i": np.asarray(idx, np.int64),
                    "kind": [kind] * len(idx),
                    "value": pl.Series(list(values), dtype=pl.String),
                    "first_seen": np.asarray(first_seen, np.int64),
                }
            )
        )
    links = pl.concat(parts).unique(["i", "kind", "value"], keep="first", maintain_order=True)
    w.write(
        "links",
        pl.DataFrame(
            [
                bank_s.gather(links["i"]),
                acct_s.gather(links["i"]),
                links["kind"],
                links["value"],
                output.times(links["first_seen"]).alias("first_seen"),
            ]
        ),
    )


def _write_cases(w, fr, pop, bank_s, acct_s, position, n_normal) -> None:
    def bank(i):
        return bank_s[int(i)]

    def acct(i):
        return acct_s[int(i)]

    cases = fr.cases
    w.write(
        "reports",
        pl.DataFrame(
            {
                "case_id": [cases[r["case"]]["case_id"] for r in fr.reports],
                "victim_bank": [bank(cases[r["case"]]["victim"]) for r in fr.reports],
                "victim_account": [acct(cases[r["case"]]["victim"]) for r in fr.reports],
                "reported_at": output.times([cases[r["case"]]["reported_at"] for r in fr.reports]),
                "amount_lost": output.money([r["amount"] for r in fr.reports]),
                "txn_id": [f"T{position[n_normal + r['txn']] + 1:010d}" for r in fr.reports],
                "first_bank": [bank(r["first"]) for r in fr.reports],
                "first_account": [acct(r["first"]) for r in fr.reports],
                "paid_at": output.times([r["paid_at"] for r in fr.reports]),
            },
            schema_overrides={"reported_at": pl.Datetime("us"), "paid_at": pl.Datetime("us")},
        ),
    )
    w.write(
        "truth_cases",
        pl.DataFrame(
            {
                "case_id": [c["case_id"] for c in cases],
                "victim_bank": [bank(c["victim"]) for c in cases],
                "victim_account": [acct(c["victim"]) for c in cases],
                "amount_lost": output.money([c["amount_lost"] for c in cases]),
                "paid_at": output.times([c["paid_at"] for c in cases]),
                "reported_at": output.times([c["reported_at"] for c in cases]),
                "typology": [c["typology"] for c in cases],
                "gang_id": [f"G{c['gang']:04d}" for c in cases],
            },
            schema_overrides={"reported_at": pl.Datetime("us"), "paid_at": pl.Datetime("us")},
        ),
    )
    h = fr.holdings
    w.write(
        "truth_holdings",
        pl.DataFrame(
            {
                "case_id": [x["case_id"] for x in h],
                "bank": [bank(x["account"]) for x in h],
                "account": [acct(x["account"]) for x in h],
                "held": output.money([x["held"] for x in h]),
            },
            schema={"case_id": pl.String, "bank": pl.String, "account": pl.String, "held": pl.Float64},
        ),
    )


def _write_calls(w, fr) -> None:
    calls = (
        pl.DataFrame(
            {
                "ts": [c[0] for c in fr.calls],
                "caller": [c[1] for c in fr.calls],
                "callee": [c[2] for c in fr.calls],
                "duration_s": [c[3] for c in fr.calls],
            },
            schema={"ts": pl.Int64, "caller": pl.String, "callee": pl.String, "duration_s": pl.Int64},
        )
        .unique(["ts", "caller", "callee"], keep="first", maintain_order=True)
        .sort("ts", "caller", "callee")
    )
    w.write("calls", calls.with_columns(output.times(calls["ts"]).alias("ts")))


def _write_truth_accounts(w, fr, pop, bank_s, acct_s) -> None:
    n = pop.n
    role = ["normal"] * n
    level: list[int | None] = [None] * n
    ring: list[str | None] = [None] * n
    typ: list[str | None] = [None] * n
    gang: list[str | None] = [None] * n
    typology_of = {g.gid: g.typology for g in fr.gangs}
    for a, r in fr.role.items():
        role[a] = r
    for a, lv in fr.mule_level.items():
        level[a] = lv
    for a, r in fr.ring.items():
        ring[a] = r
    for a, g in fr.gang_of.items():
        gang[a] = f"G{g:04d}"
        typ[a] = typology_of[g]
    w.write(
        "truth_accounts",
        pl.DataFrame(
            [
                bank_s,
                acct_s,
                pl.Series("role", role, pl.String),
                pl.Series("mule_level", level, pl.Int32),
                pl.Series("ring_id", ring, pl.String),
                pl.Series("typology", typ, pl.String),
                pl.Series("gang_id", gang, pl.String),
            ]
        ),
    )


def describe(out: Path) -> dict:
    """Headline counts of a generated world, read back from its truth files."""
    out = Path(out)
    fmt = "parquet" if (out / "truth_cases.parquet").exists() else "csv"

    def read(name: str) -> pl.DataFrame:
        if fmt == "parquet":
            return pl.read_parquet(out / f"{name}.parquet")
        return pl.read_csv(out / f"{name}.csv", infer_schema=False)

    cases = read("truth_cases").with_columns(pl.col("amount_lost").cast(pl.Float64))
    accts = read("truth_accounts")
    by_typ = cases.group_by("typology").agg(
        pl.len().alias("cases"),
        pl.col("reported_at").is_not_null().sum().alias("reported"),
        pl.col("amount_lost").sum().alias("amount_lost"),
        pl.col("gang_id").n_unique().alias("gangs"),
    )
    mules = accts.filter(pl.col("role") == "mule").group_by("typology").agg(pl.len().alias("mules"))
    rows = by_typ.join(mules, on="typology", how="left").sort("typology").to_dicts()
    return {
        "typologies": rows,
        "roles": dict(accts.group_by("role").agg(pl.len()).sort("role").iter_rows()),
        "rings": accts["ring_id"].drop_nulls().n_unique(),
        "kinds": KIND_NAMES,
    }
