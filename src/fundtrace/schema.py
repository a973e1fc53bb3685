"""The native input kinds: their columns, types, keys and allowed values, in one place.

Money is DECIMAL(18, 4) in the workspace (migrations/0001_core.sql).

Loading (``fundtrace.ingest``), the simulator and the README all read these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("transfer", "atm", "pos", "online", "crypto", "cross_border")
# Channels on which money leaves the banking system: tracing stops there.
CASH_OUT_CHANNELS = ("atm", "crypto", "cross_border")
LINK_KINDS = ("phone_card", "bank_card", "device", "id_card", "ip")
# The tracing allocation rules (fundtrace.trace), computed side by side.
TRACE_RULES = ("poison", "haircut", "fifo", "lifo", "libr")

# ISO 4217 active codes, plus the crypto-asset codes that cash-out flows carry.
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS
    VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL BTC ETH USDT USDC
    """.split()
)


@dataclass(frozen=True)
class Column:
    """One native column. ``type`` is text, timestamp, money, integer or choice."""

    name: str
    type: str = "text"
    required: bool = False
    description: str = ""
    positive: bool = False  # money: must be > 0 (transaction amounts, losses)


@dataclass(frozen=True)
class Kind:
    """A native input kind and the workspace table it lands in."""

    name: str
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # identifies a row across batches
    on_existing: str  # a key already in the workspace with other content: "reject" or "update"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "transactions",
            "transactions",
            (
                Column("txn_id", description="unique id; derived from the row when absent"),
                Column("ts", "timestamp", True, "when the transfer happened; ISO 8601, UTC unless offset"),
                Column("src_bank", description="payer's bank; `default` when absent"),
                Column("src_account", required=True, description="payer's account"),
                Column("dst_bank", description="payee's bank; `default` when absent"),
                Column("dst_account", required=True, description="payee's account"),
                Column("amount", "money", True, "positive, finite; up to 4 decimals", positive=True),
                Column("currency", "choice", description="ISO 4217 code; config `load.currency` default"),
                Column("channel", "choice", description=", ".join(CHANNELS) + "; default transfer"),
            ),
            key=("txn_id",),
            on_existing="reject",
        ),
        Kind(
            "accounts",
            "accounts",
            (
                Column("bank", description="`default` when absent"),
                Column("account", required=True),
                Column("holder_id", description="the person or company owning it"),
                Column("holder_name"),
                Column("phone", description="registered phone number"),
                Column("opened_at", "timestamp"),
                Column("kind", description="personal, business, merchant ..."),
                Column("balance", "money", description="balance at balance_at; opening balance if no time"),
                Column("balance_at", "timestamp"),
            ),
            key=("bank", "account"),
            on_existing="update",
        ),
        Kind(
            "links",
            "links",
            (
                Column("bank", description="`default` when absent"),
                Column("account", required=True),
                Column("kind", "choice", True, ", ".join(LINK_KINDS)),
                Column("value", required=True, description="the identifier: phone card, device id ..."),
                Column("first_seen", "timestamp"),
            ),
            key=("bank", "account", "kind", "value"),
            on_existing="reject",
        ),
        Kind(
            "reports",
            "reports",
            (
                Column("case_id", required=True),
                Column("victim_bank"),
                Column("victim_account"),
                Column("reported_at", "timestamp", True),
                Column("amount_lost", "money", True, positive=True),
                Column("txn_id", description="the fraud payment; or give first_account"),
                Column("first_bank"),
                Column("first_account", description="the first-level mule account"),
                Column("paid_at", "timestamp", description="when the victim paid first_account"),
            ),
            key=("case_id", "txn_id", "first_bank", "first_account"),
            on_existing="reject",
        ),
        Kind(
            "calls",
            "calls",
            (
                Column("ts", "timestamp", True),
                Column("caller", required=True, description="the calling phone card"),
                Column("callee", required=True, description="the called phone number"),
                Column("duration_s", "integer"),
            ),
            key=("ts", "caller", "callee"),
            on_existing="reject",
        ),
    )
}
