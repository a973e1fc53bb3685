"""The synthetic world: determinism, ledgers, truth consistent with the transactions, clean loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from fundtrace.simulate import FILES, TYPOLOGIES, simulate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

SMALL = {"accounts": 2000, "days": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    simulate(out, seed=11, **SMALL)
    return out


def read(out: Path, name: str) -> pl.DataFrame:
    """A CSV as text columns, money as integer cents, times parsed."""
    df = pl.read_csv(out / f"{name}.csv", infer_schema=False)
    conv = []
    for c in df.columns:
        if c in ("amount", "amount_lost", "held", "balance", "opening", "closing", "min_balance"):
            conv.append((pl.col(c).cast(pl.Float64) * 100).round(0).cast(pl.Int64))
        elif c in ("ts", "reported_at", "paid_at", "opened_at", "first_seen"):
            conv.append(pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%SZ"))
        elif c in ("hop", "mule_level", "duration_s"):
            conv.append(pl.col(c).cast(pl.Int64))
        elif c == "is_fraud":
            conv.append(pl.col(c) == "true")
    return df.with_columns(conv)


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_same_seed_same_files_other_seed_other_files(world, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    simulate(again, seed=11, **SMALL)
    simulate(other, seed=12, **SMALL)
    assert digest(again) == digest(world)
    assert set(digest(world)) == {f"{f}.csv" for f in FILES}
    differ = {k for k, v in digest(other).items() if digest(world)[k] != v}
    assert {"transactions.csv", "accounts.csv", "truth_holdings.csv"} <= differ


def test_formats_and_values(world):
    t = read(world, "transactions")
    assert t["txn_id"].is_unique().all()
    assert (t["amount"] > 0).all()
    raw = pl.read_csv(world / "transactions.csv", infer_schema=False)
    assert raw["amount"].str.contains(r"^\d+\.\d{2}$").all()
    assert raw["ts"].str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    assert t["ts"].is_sorted()
    assert (t["src_account"] != t["dst_account"]).all()
    assert set(t["channel"]) <= {"transfer", "atm", "pos", "online", "crypto", "cross_border"}
    # volume: about one transfer per account and day
    assert 0.6 * 2000 * 4 < len(t) < 1.6 * 2000 * 4


def test_every_ledger_balances_and_never_goes_negative(world):
    accts = read(world, "accounts").select("bank", "account", "balance")
    t = read(world, "transactions").with_row_index("pos")
    entries = pl.concat(
        [
            t.select("pos", bank="src_bank", account="src_account", delta=-pl.col("amount")),
            t.select("pos", bank="dst_bank", account="dst_account", delta=pl.col("amount")),
        ]
    ).sort("pos")
    running = entries.join(accts, on=["bank", "account"], how="left").with_columns(
        bal=pl.col("balance") + pl.col("delta").cum_sum().over(["bank", "account"])
    )
    assert running["balance"].null_count() == 0, "every transacting account is in accounts"
    assert running["bal"].min() >= 0
    closing = (
        accts.join(
            entries.group_by("bank", "account").agg(net=pl.col("delta").sum()), on=["bank", "account"], how="left"
        )
        .select("bank", "account", closing=pl.col("balance") + pl.col("net").fill_null(0))
        .sort("bank", "account")
    )
    truth = read(world, "truth_balances").select("bank", "account", "closing").sort("bank", "account")
    assert closing.equals(truth)
    # Mules start with small, realistic balances (not the shortfall of their fraud flows).
    roles = read(world, "truth_accounts")
    mules = accts.join(roles.filter(pl.col("role") == "mule"), on=["bank", "account"])
    assert mules["balance"].median() < 20_000 * 100


def _fraud(world) -> pl.DataFrame:
    t = read(world, "transactions")
    truth = read(world, "truth_transactions")
    assert truth["txn_id"].to_list() == t["txn_id"].to_list()
    return t.join(truth, on="txn_id").filter("is_fraud")


def test_each_fraud_hop_follows_money_of_the_same_case(world):
    f = _fraud(world)
    cases = read(world, "truth_cases")
    roles = read(world, "truth_accounts")
    assert set(cases["typology"]) == set(TYPOLOGIES)
    assert f["case_id"].null_count() == 0 and f["hop"].null_count() == 0
    # Hop 0 is the victim paying a first-level mule; the case's loss is the sum of those payments.
    hop0 = f.filter(pl.col("hop") == 0).join(
        cases.select("case_id", vb="victim_bank", va="victim_account", lost="amount_lost"), on="case_id"
    )
    assert (hop0["src_account"] == hop0["va"]).all() and (hop0["src_bank"] == hop0["vb"]).all()
    first = hop0.join(roles, left_on=["dst_bank", "dst_account"], right_on=["bank", "account"])
    assert (first["role"] == "mule").all() and (first["mule_level"] == 1).all()
    sums = hop0.group_by("case_id").agg(pl.col("amount").sum(), pl.col("lost").first())
    assert (sums["amount"] == sums["lost"]).all() and len(sums) == len(cases)
    # Every later hop leaves an account that received the same case's money one hop earlier.
    later = f.filter(pl.col("hop") > 0)
    prev = f.select("case_id", hop=pl.col("hop") + 1, src_bank="dst_bank", src_account="dst_account", t_in="ts")
    linked = later.join(prev, on=["case_id", "hop", "src_bank", "src_account"], how="left").filter(
        pl.col("t_in") < pl.col("ts")
    )
    assert linked["txn_id"].n_unique() == len(later)
    # Senders are mules of the case's gang.
    senders = later.join(roles, left_on=["src_bank", "src_account"], right_on=["bank", "account"]).join(
        cases.select("case_id", case_gang="gang_id"), on="case_id"
    )
    assert (senders["role"] == "mule").all() and (senders["gang_id"] == senders["case_gang"]).all()
    # Structuring moves money in parcels under the 50,000 threshold; levels stay within 2..6 and money ends
    # in a cash-out channel or a merchant.
    s = later.filter(pl.col("typology") == "structuring")
    assert len(s) and (s["amount"] < 5_000_000).all()
    assert roles["mule_level"].drop_nulls().is_between(1, 6).all()
    assert set(f.filter(pl.col("hop") == pl.col("hop").max().over("case_id"))["channel"]) <= {
        "atm", "crypto", "cross_border", "pos"
    }  # fmt: skip


def test_reports_point_at_the_victims_payments(world):
    f = _fraud(world)
    reports = read(world, "reports")
    cases = read(world, "truth_cases")
    j = reports.join(f, on="txn_id")
    assert len(j) == len(reports) > 0
    assert (j["hop"] == 0).all() and (j["case_id"] == j["case_id_right"]).all()
    assert (j["amount_lost"] == j["amount"]).all() and (j["first_account"] == j["dst_account"]).all()
    assert (j["paid_at"] == j["ts"]).all() and (j["reported_at"] > j["ts"]).all()
    reported = set(cases.filter(pl.col("reported_at").is_not_null())["case_id"])
    assert set(reports["case_id"]) == reported
    assert 0 < len(reported) < len(cases) or len(cases) < 10  # some victims never report


def recompute_holdings(world) -> pl.DataFrame:
    """The documented rule, from truth_transactions alone: in - out up to reported_at, minus the
    commission (all-time in - out) once the mule's last send for the case has happened."""
    f = _fraud(world)
    cases = read(world, "truth_cases").filter(pl.col("reported_at").is_not_null()).select("case_id", "reported_at")
    roles = read(world, "truth_accounts").filter(pl.col("role") == "mule").select("bank", "account")
    moves = pl.concat(
        [
            f.select("case_id", "ts", bank="dst_bank", account="dst_account", d=pl.col("amount"), out=pl.lit(False)),
            f.select("case_id", "ts", bank="src_bank", account="src_account", d=-pl.col("amount"), out=pl.lit(True)),
        ]
    ).join(roles, on=["bank", "account"], how="semi")
    per = moves.group_by("case_id", "bank", "account").agg(
        commission=pl.col("d").sum(), last_out=pl.col("ts").filter("out").max()
    )
    upto = (
        moves.join(cases, on="case_id")
        .filter(pl.col("ts") <= pl.col("reported_at"))
        .group_by("case_id", "bank", "account")
        .agg(net=pl.col("d").sum(), reported_at=pl.col("reported_at").first())
    )
    return (
        upto.join(per, on=["case_id", "bank", "account"])
        .select(
            "case_id",
            "bank",
            "account",
            held=pl.col("net")
            - pl.when(pl.col("last_out") <= pl.col("reported_at")).then(pl.col("commission")).otherwise(0),
        )
        .filter(pl.col("held") > 0)
        .sort("case_id", "bank", "account")
    )


def test_holdings_match_the_documented_accounting(world):
    expected = recompute_holdings(world)
    got = read(world, "truth_holdings").sort("case_id", "bank", "account")
    assert len(got) > 0
    assert got.equals(expected)
    per_case = got.group_by("case_id").agg(pl.col("held").sum()).join(read(world, "truth_cases"), on="case_id")
    assert (per_case["held"] <= per_case["amount_lost"]).all()


def test_commissions_are_small_and_pools_never_go_negative(world):
    f = _fraud(world)
    roles = read(world, "truth_accounts").filter(pl.col("role") == "mule").select("bank", "account")
    moves = pl.concat(
        [
            f.select("case_id", "txn_id", "ts", bank="dst_bank", account="dst_account", d=pl.col("amount")),
            f.select("case_id", "txn_id", "ts", bank="src_bank", account="src_account", d=-pl.col("amount")),
        ]
    ).join(roles, on=["bank", "account"], how="semi")
    pools = moves.sort("ts", "txn_id").with_columns(pool=pl.col("d").cum_sum().over("case_id", "bank", "account"))
    assert pools["pool"].min() >= 0
    kept = pools.group_by("case_id", "bank", "account").agg(
        kept=pl.col("d").sum(), got=pl.col("d").filter(pl.col("d") > 0).sum()
    )
    assert (kept["kept"] <= kept["got"] * 0.03 + 10_000).all()  # up to 3 % plus the ATM rounding


def test_card_farms_share_identifiers_and_open_together(world):
    roles = read(world, "truth_accounts").filter(pl.col("ring_id").is_not_null())
    assert roles["ring_id"].n_unique() >= 2
    accts = read(world, "accounts").join(roles, on=["bank", "account"])
    spread = accts.group_by("ring_id").agg(
        days=(pl.col("opened_at").max() - pl.col("opened_at").min()).dt.total_days(), banks=pl.col("bank").n_unique()
    )
    assert (spread["days"] <= 3).all() and (spread["banks"] >= 2).all()
    links = read(world, "links").join(roles, on=["bank", "account"])
    shared = links.group_by("ring_id", "kind", "value").agg(n=pl.len()).filter(pl.col("n") > 1)
    assert set(shared["kind"]) >= {"phone_card", "device", "id_card"}
    # Innocents share identifiers too.
    normal = read(world, "truth_accounts").filter(pl.col("role") == "normal")
    innocent = read(world, "links").join(normal, on=["bank", "account"])
    assert innocent.group_by("kind", "value").agg(n=pl.len()).filter(pl.col("n") > 1).height > 0


def test_victims_are_called_minutes_before_paying(world):
    calls = read(world, "calls")
    cases = read(world, "truth_cases")
    accts = read(world, "accounts").select("bank", "account", "phone")
    j = cases.join(accts, left_on=["victim_bank", "victim_account"], right_on=["bank", "account"]).join(
        calls, left_on="phone", right_on="callee"
    )
    gap = j.filter((pl.col("ts") < pl.col("paid_at")) & (pl.col("ts") > pl.col("paid_at") - pl.duration(hours=1)))
    assert gap["case_id"].n_unique() == len(cases)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_every_file_loads_without_rejects(cli, tmp_path, fmt):
    out = tmp_path / "w"
    r = cli(f"simulate --out {out} --accounts 1500 --days 3 --seed 5 --format {fmt}")
    assert r.code == 0, r.err
    for kind in ("accounts", "transactions", "links", "reports", "calls"):
        r = cli(f"load {kind} {out / f'{kind}.{fmt}'} --format json --max-reject-rate 0")
        assert r.code == 0, r.err
        assert " 0 rejected" in r.err, r.err
    r = cli("status --format json")
    assert r.code == 0
    import json

    tables = json.loads(r.out)[0]["tables"]
    counts = {}
    for k in ("transactions", "accounts", "links", "reports", "calls"):
        p = out / f"{k}.{fmt}"
        counts[k] = len(pl.read_parquet(p) if fmt == "parquet" else pl.read_csv(p, infer_schema=False))
    assert all(tables[k] == n for k, n in counts.items()), (tables, counts)
    assert tables["rejects"] == 0


def test_bad_options_are_one_line_errors(cli, tmp_path):
    r = cli(f"simulate --out {tmp_path} --accounts 10")
    assert r.code == 2 and "at least" in r.err


def test_committed_fixture_is_what_the_generator_writes(tmp_path):
    """fixtures/sim-small is regenerated by the command in its README, never edited by hand."""
    fixture = FIXTURES / "sim-small"
    command = (fixture / "README.md").read_text(encoding="utf-8")
    assert "fundtrace simulate --out fixtures/sim-small --accounts 2000 --days 4 --seed 7" in command
    simulate(tmp_path, accounts=2000, days=4, seed=7)
    ours = digest(tmp_path)
    theirs = {k: v for k, v in digest(fixture).items() if k.endswith(".csv")}
    assert ours == theirs
