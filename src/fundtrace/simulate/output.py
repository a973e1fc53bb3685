"""Ledger checks and file writing (CSV or Parquet, in chunks for the large files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from fundtrace.simulate.population import (
    ALL_BANKS,
    ATM,
    BANK_BIN,
    BANKS,
    H_BANK,
    H_COMPANY,
    HOLDER_PREFIX,
    KIND_NAMES,
    OFFSHORE,
    START_EPOCH,
    Population,
)

CHUNK_ROWS = 1_000_000
CHANNEL_NAMES = ("transfer", "atm", "pos", "online", "crypto", "cross_border")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰鹏建文辉力宇浩鑫晨欣怡佳琳雪梅海波"
_CITIES = ("北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆", "天津", "苏州")
_TRADES = ("商贸", "科技", "餐饮", "物流", "建材", "电子", "服饰", "文化", "医药", "食品", "咨询", "网络")


def ledger(
    src: np.ndarray, dst: np.ndarray, cents: np.ndarray, own_mask: np.ndarray, base: np.ndarray, cushion: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Opening balances that keep every ledger non-negative, then closing and minimum balances.

    Transfers are in file order (time, then txn id). ``own_mask`` marks the ledger entries (src
    side, dst side) that move the holder's own money; an account whose drawn ``base`` balance would
    not cover its spending opens with the shortfall plus ``cushion``; for a mule, fraud transfers are not its own
    money, so its opening balance only has to cover its ordinary life. Returns (opening, closing,
    minimum running balance) in cents per account.
    """
    m = len(src)
    acct = np.empty(2 * m, np.int32)
    acct[0::2], acct[1::2] = src, dst
    order = np.argsort(acct, kind="stable")
    acct_sorted = acct[order]
    del acct
    starts = np.flatnonzero(np.r_[True, acct_sorted[1:] != acct_sorted[:-1]]) if m else np.zeros(0, np.int64)
    ids = acct_sorted[starts]
    del acct_sorted
    ends = np.r_[starts[1:], 2 * m] - 1

    def group_min_total(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cs = np.cumsum(delta[order])
        before = np.r_[0, cs[starts[1:] - 1]] if m else np.zeros(0, np.int64)
        mins = np.minimum.reduceat(cs, starts) - before if m else before
        return np.minimum(mins, 0), cs[ends] - before

    delta = np.empty(2 * m, np.int64)
    delta[0::2], delta[1::2] = -cents, cents
    own_min, _ = group_min_total(np.where(own_mask, delta, 0))
    opening = base.astype(np.int64).copy()
    short = -own_min > opening[ids]
    opening[ids[short]] = -own_min[short] + cushion[ids[short]]
    all_min, total = group_min_total(delta)
    closing = opening.copy()
    closing[ids] += total
    minimum = opening.copy()
    minimum[ids] += all_min
    return opening, closing, minimum


class Writer:
    """Writes one data frame or a stream of chunks as ``NAME.csv`` or ``NAME.parquet``."""

    def __init__(self, out: Path, fmt: str):
        self.out, self.fmt = out, fmt
        self.counts: dict[str, int] = {}

    def write(self, name: str, chunks: pl.DataFrame | Iterator[pl.DataFrame]) -> None:
        if isinstance(chunks, pl.DataFrame):
            chunks = iter([chunks])
        path = self.out / f"{name}.{self.fmt}"
        rows = 0
        if self.fmt == "csv":
            with path.open("wb") as fh:
                for i, df in enumerate(chunks):
                    df.write_csv(fh, include_header=i == 0, float_precision=2, datetime_format="%Y-%m-%dT%H:%M:%SZ")
                    rows += len(df)
        else:
            writer = None
            for df in chunks:
                table = _for_parquet(df).to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
                rows += len(df)
            if writer is not None:
                writer.close()
        self.counts[name] = rows


def _for_parquet(df: pl.DataFrame) -> pl.DataFrame:
    """Money as DECIMAL(18,2) (CSV writes it as floats with two decimals), times as UTC."""
    exprs = []
    for name, dtype in df.schema.items():
        if dtype == pl.Float64:
            exprs.append((pl.col(name) * 100).round(0).cast(pl.Int64).cast(pl.Decimal(18, 2)).truediv(100)
                         .cast(pl.Decimal(18, 2)).alias(name))  # fmt: skip
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.replace_time_zone("UTC"))
        else:
            exprs.append(pl.col(name))
    return df.select(exprs)


def times(seconds: np.ndarray | pl.Series) -> pl.Series:
    """Seconds from the window start -> datetime (UTC, naive in memory; written with a Z)."""
    return pl.from_epoch(pl.Series(seconds, dtype=pl.Int64) + START_EPOCH, time_unit="s")


def money(cents: np.ndarray | pl.Series) -> pl.Series:
    return pl.Series(cents, dtype=pl.Int64) / 100


def account_text(pop: Population) -> tuple[pl.Series, pl.Series]:
    """(bank code, account number) text per account index."""
    bank_names = np.array(ALL_BANKS, dtype=object)[pop.bank]
    nums = []
    for i, (b, k) in enumerate(zip(pop.bank.tolist(), pop.kind.tolist(), strict=True)):
        if k == ATM:
            nums.append(f"ATM{BANKS[b]}{i:07d}")
        elif k == OFFSHORE or b >= len(BANKS):
            nums.append(f"XB{(i * 7_777_777 + 13) % 10**12:012d}")
        else:
            nums.append(f"{BANK_BIN[b]}{(i * 2_654_435_761 + 97) % 10**10:010d}")
    return pl.Series("bank", bank_names.tolist(), pl.String), pl.Series("account", nums, pl.String)


def holders(pop: Population) -> tuple[pl.Series, pl.Series]:
    """(holder id, holder name) per account index."""
    ids, names = [], []
    ns, ng = len(_SURNAMES), len(_GIVEN)
    for t, h, k in zip(pop.holder_type.tolist(), pop.holder_num.tolist(), pop.kind.tolist(), strict=True):
        ids.append(f"{HOLDER_PREFIX[t]}{h:08d}")
        if t == H_BANK:
            names.append(f"{BANKS[h]} ATM")
        elif t == H_COMPANY:
            what = "支付" if k not in (0, 1, 2, 3) else _TRADES[(h // 12) % 12]
            names.append(f"{_CITIES[h % 12]}{what}{h % 997}有限公司")
        else:
            g = h // ns
            names.append(_SURNAMES[h % ns] + _GIVEN[g % ng] + ("" if (g // ng) % 3 == 0 else _GIVEN[(g // ng) % ng]))
    return pl.Series("holder_id", ids, pl.String), pl.Series("holder_name", names, pl.String)


def kind_names(pop: Population) -> pl.Series:
    return pl.Series("kind", np.array(KIND_NAMES, dtype=object)[pop.kind].tolist(), pl.String)
