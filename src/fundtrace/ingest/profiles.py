"""Source profiles: how another tool's files map onto fundtrace's native columns.

A profile gives, per kind, an SQL expression for each native column it can fill (over the source
file's columns, quoted with :func:`ident`), the source columns it needs, and optional ground-truth
label expressions that go to the ``labels`` table (read by evaluation only, never by detectors).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fundtrace.errors import UsageError


def ident(name: str) -> str:
    """Quote an SQL identifier; the only way a column name enters generated SQL."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote an SQL string literal (for constants of ours, never for user data)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Mapping:
    """How one profile fills one kind."""

    columns: dict[str, str]  # native column -> SQL expression over source columns
    requires: tuple[str, ...]  # source columns that must be present
    labels: dict[str, str] = field(default_factory=dict)  # is_fraud, alert_id, typology -> SQL
    # the amount as received and its currency, when the source gives them beside the amount paid: each
    # payment received in another currency tells an exchange rate (fx_pairs, see migrations/0007_fx.sql)
    received: dict[str, str] = field(default_factory=dict)  # amount, currency -> SQL


AMLSIM_BANK = "amlsim"
# AMLSim counts time in daily steps from its configured start; its default start date.
AMLSIM_EPOCH = "2017-01-01"

AMLWORLD_CURRENCIES = {
    "US Dollar": "USD", "Euro": "EUR", "Yuan": "CNY", "Yen": "JPY", "UK Pound": "GBP", "Rupee": "INR",
    "Ruble": "RUB", "Australian Dollar": "AUD", "Canadian Dollar": "CAD", "Swiss Franc": "CHF",
    "Mexican Peso": "MXN", "Brazil Real": "BRL", "Saudi Riyal": "SAR", "Shekel": "ILS", "Bitcoin": "BTC",
}  # fmt: skip
AMLWORLD_FORMATS = {
    "Cash": "atm", "Bitcoin": "crypto", "Credit Card": "pos", "ACH": "transfer", "Wire": "transfer",
    "Cheque": "transfer", "Reinvestment": "transfer",
}  # fmt: skip


def _case(expr: str, mapping: dict[str, str]) -> str:
    """CASE expr WHEN 'k' THEN 'v' ... ELSE expr END: unmapped values pass through to validation."""
    whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in mapping.items())
    return f"CASE {expr} {whens} ELSE {expr} END"


# AMLworld names every entity by its legal form and a number ("Corporation #33520", "Sole
# Proprietorship #50438", "Partnership #91"), launderers included. The form says what the holder is,
# not that the account is a shop, an employer or a payer of income: it becomes the account's kind
# under its own name, never 'business' (which detection reads as ordinary commerce).
AMLWORLD_LEGAL_FORMS = {
    "Corporation": "corporation", "Sole Proprietorship": "sole_proprietorship", "Partnership": "partnership",
}  # fmt: skip


def _amlworld_kind(name: str) -> str:
    """The kind from an AMLworld entity name's legal form; any other name is 'personal'."""
    trimmed = f"trim(CAST({name} AS VARCHAR))"
    whens = " ".join(
        f"WHEN {trimmed} ILIKE {literal(form + '%')} THEN {literal(kind)}"
        for form, kind in AMLWORLD_LEGAL_FORMS.items()
    )
    return f"CASE {whens} ELSE 'personal' END"


# Bank transfers that change currency on the way: AMLworld's accounts each hold one currency at a
# bank of one country, so a wire, ACH payment or cheque paid in one currency and received in another
# leaves the country: it is the cross_border cash-out channel, not a domestic transfer. Card payments
# abroad stay pos; Bitcoin and Cash keep their own channels.
AMLWORLD_FX_FORMATS = ("Wire", "ACH", "Cheque")


def _amlworld_channel() -> str:
    fmt, paid, received = ident("Payment Format"), ident("Payment Currency"), ident("Receiving Currency")
    formats = ", ".join(literal(f) for f in AMLWORLD_FX_FORMATS)
    return (
        f"CASE WHEN {fmt} IN ({formats}) AND {paid} IS DISTINCT FROM {received} THEN 'cross_border' "
        f"ELSE {_case(fmt, AMLWORLD_FORMATS)} END"
    )


def _amlsim_channel(col: str) -> str:
    """AMLSim's transaction types as channels; others pass through to validation."""
    types = {
        "TRANSFER": "transfer", "WIRE": "transfer", "CASH": "atm", "CASH-OUT": "atm", "CASH_OUT": "atm",
        "CHECK": "transfer", "CREDIT": "transfer", "DEPOSIT": "transfer", "PAYMENT": "online",
    }  # fmt: skip
    return _case(f"upper(CAST({ident(col)} AS VARCHAR))", types)


def _amlsim_labels(flag: str, alert: str) -> dict[str, str]:
    """The laundering flag and the alert id (-1: none) of an AMLSim transaction."""
    return {
        "is_fraud": f"lower(CAST({ident(flag)} AS VARCHAR)) IN ('true', '1', 'yes')",
        "alert_id": f"NULLIF(CAST({ident(alert)} AS VARCHAR), '-1')",
    }


def _amlsim_kind(col: str) -> str:
    """AMLSim's account type: I(ndividual) personal, O(rganisation) business, any other lower-cased."""
    t = f"CAST({ident(col)} AS VARCHAR)"
    return f"CASE upper({t}) WHEN 'I' THEN 'personal' WHEN 'O' THEN 'business' ELSE lower({t}) END"


def amlworld_bank(col: str) -> str:
    """A bank id without its leading zeros when it is all digits ("010" -> "10", "000" -> "0").

    AMLworld pads the bank ids of its transactions ("010") but not those of its accounts file ("10"), so as
    written no payment meets its account; other ids pass as they are."""
    v = f"CAST({ident(col)} AS VARCHAR)"
    return f"CASE WHEN regexp_full_match({v}, '[0-9]+') THEN coalesce(nullif(ltrim({v}, '0'), ''), '0') ELSE {v} END"


def _amlsim_day(col: str) -> str:
    """AMLSim writes dates as step numbers or as dates; steps become days after its epoch."""
    c = ident(col)
    return (
        f"CASE WHEN TRY_CAST({c} AS INTEGER) IS NOT NULL THEN CAST(TIMESTAMP '{AMLSIM_EPOCH}' + "
        f"TO_DAYS(TRY_CAST({c} AS INTEGER)) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END"
    )


# AMLSim's other layouts, each told by a column only it has (mapping_for): its published sample sets (upper-case
# names, TIMESTAMP a step number, accounts without opening dates or names) and the simulator's raw log (tx_log.csv:
# PaySim's columns, step in days, no transaction id, so ids come from the rows' content).
AMLSIM_LAYOUTS: dict[str, list[tuple[str, Mapping]]] = {
    "transactions": [
        (
            "TX_ID",
            Mapping(
                columns={
                    "txn_id": ident("TX_ID"),
                    "ts": _amlsim_day("TIMESTAMP"),
                    "src_bank": literal(AMLSIM_BANK),
                    "src_account": ident("SENDER_ACCOUNT_ID"),
                    "dst_bank": literal(AMLSIM_BANK),
                    "dst_account": ident("RECEIVER_ACCOUNT_ID"),
                    "amount": ident("TX_AMOUNT"),
                    "currency": literal("USD"),
                    "channel": _amlsim_channel("TX_TYPE"),
                },
                requires=("TX_ID", "SENDER_ACCOUNT_ID", "RECEIVER_ACCOUNT_ID", "TX_AMOUNT", "TIMESTAMP"),
                labels=_amlsim_labels("IS_FRAUD", "ALERT_ID"),
            ),
        ),
        (
            "isSAR",
            Mapping(
                columns={
                    "ts": _amlsim_day("step"),
                    "src_bank": literal(AMLSIM_BANK),
                    "src_account": ident("nameOrig"),
                    "dst_bank": literal(AMLSIM_BANK),
                    "dst_account": ident("nameDest"),
                    "amount": ident("amount"),
                    "currency": literal("USD"),
                    "channel": _amlsim_channel("type"),
                },
                requires=("step", "nameOrig", "nameDest", "amount", "isSAR", "alertID"),
                labels=_amlsim_labels("isSAR", "alertID"),
            ),
        ),
    ],
    "accounts": [
        (
            "ACCOUNT_ID",
            Mapping(
                columns={
                    "bank": literal(AMLSIM_BANK),
                    "account": ident("ACCOUNT_ID"),
                    "holder_id": ident("CUSTOMER_ID"),
                    "kind": _amlsim_kind("ACCOUNT_TYPE"),
                    "balance": ident("INIT_BALANCE"),
                },
                requires=("ACCOUNT_ID", "INIT_BALANCE"),
            ),
        )
    ],
}

# AMLworld's header names "Account" twice, the payer's and then the payee's. Reading it, DuckDB calls the second
# "Account_1"; a copy written back by pandas calls it "Account.1", by Polars "Account_duplicated_0".
AMLWORLD_RECEIVER = "Account_1"
AMLWORLD_RECEIVER_ALIASES = ("Account.1", "Account_duplicated_0")

PROFILES: dict[str, dict[str, Mapping]] = {
    "amlsim": {
        "transactions": Mapping(
            columns={
                "txn_id": ident("tran_id"),
                "ts": ident("tran_timestamp"),
                "src_bank": literal(AMLSIM_BANK),
                "src_account": ident("orig_acct"),
                "dst_bank": literal(AMLSIM_BANK),
                "dst_account": ident("bene_acct"),
                "amount": ident("base_amt"),
                "currency": literal("USD"),  # AMLSim's acct_rptng_crncy
                "channel": _amlsim_channel("tx_type"),
            },
            requires=("tran_id", "orig_acct", "bene_acct", "base_amt", "tran_timestamp"),
            labels=_amlsim_labels("is_sar", "alert_id"),
        ),
        "accounts": Mapping(
            columns={
                "bank": literal(AMLSIM_BANK),
                "account": ident("acct_id"),
                "holder_name": ident("dsply_nm"),
                "opened_at": _amlsim_day("open_dt"),
                "kind": _amlsim_kind("type"),
                "balance": ident("initial_deposit"),
            },
            requires=("acct_id", "initial_deposit", "type", "open_dt", "dsply_nm"),
        ),
    },
    "amlworld": {
        "transactions": Mapping(
            columns={
                "ts": f"coalesce(CAST(try_strptime(CAST({ident('Timestamp')} AS VARCHAR), '%Y/%m/%d %H:%M') "
                f"AS VARCHAR), CAST({ident('Timestamp')} AS VARCHAR))",
                "src_bank": amlworld_bank("From Bank"),
                "src_account": ident("Account"),
                "dst_bank": amlworld_bank("To Bank"),
                "dst_account": ident(AMLWORLD_RECEIVER),
                "amount": ident("Amount Paid"),
                "currency": _case(ident("Payment Currency"), AMLWORLD_CURRENCIES),
                "channel": _amlworld_channel(),
            },
            requires=(
                "Timestamp",
                "From Bank",
                "Account",
                "To Bank",
                AMLWORLD_RECEIVER,
                "Amount Paid",
                "Amount Received",
                "Payment Currency",
                "Receiving Currency",
                "Payment Format",
            ),
            labels={"is_fraud": f"CAST({ident('Is Laundering')} AS VARCHAR) IN ('1', 'true', 'True')"},
            received={
                "amount": f"TRY_CAST({ident('Amount Received')} AS DOUBLE)",
                "currency": _case(ident("Receiving Currency"), AMLWORLD_CURRENCIES),
            },
        ),
        "accounts": Mapping(
            columns={
                "bank": amlworld_bank("Bank ID"),
                "account": ident("Account Number"),
                "holder_id": ident("Entity ID"),
                "holder_name": ident("Entity Name"),
                "kind": _amlworld_kind(ident("Entity Name")),
            },
            requires=("Bank ID", "Account Number", "Entity ID", "Entity Name"),
        ),
    },
}


def mapping_for(profile: str, kind: str, source_columns: list[str], native: list[str]) -> Mapping:
    """The mapping for ``profile`` and ``kind``; ``native`` maps columns by name, case-insensitively."""
    if profile == "native":
        by_name = {_normal(c): c for c in source_columns}
        return Mapping(columns={n: ident(by_name[n]) for n in native if n in by_name}, requires=())
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r} (known: native, {', '.join(PROFILES)})")
    if kind not in PROFILES[profile]:
        raise UsageError(f"profile {profile!r} has no {kind}; load those in the native columns")
    mapping = PROFILES[profile][kind]
    if profile == "amlsim":
        mapping = next((m for column, m in AMLSIM_LAYOUTS.get(kind, ()) if column in source_columns), mapping)
    if profile == "amlworld" and kind == "transactions" and AMLWORLD_RECEIVER not in source_columns:
        alias = next((a for a in AMLWORLD_RECEIVER_ALIASES if a in source_columns), None)
        if alias:
            mapping = replace(
                mapping,
                columns={**mapping.columns, "dst_account": ident(alias)},
                requires=tuple(alias if r == AMLWORLD_RECEIVER else r for r in mapping.requires),
            )
    return mapping


def _normal(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")
