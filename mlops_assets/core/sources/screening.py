"""Record rules: a row that breaks one goes to the quarantine with its reason code, the rest go on.

A partition's rows are judged one by one (issue 20): one bad order (a negative amount, a fat-finger
total, a foreign currency) is quarantined with the tenant, field, value and fix, and the tenant keeps
running. Whether the partition as a whole is usable is the quality gates' question (`quality.py`).

Outliers are judged against the tenant's own order values in log space (order values are roughly
log-normal, so their spread is a ratio): median and MAD, so a few outliers cannot move the limit.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from mlops_assets.core.sources.reasons import REASONS
from mlops_assets.core.sources.records import QUARANTINE_SCHEMA, quarantine_frame, schema_problems

MONEY_COLUMNS = ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_refunded")
ID_COLUMNS = {"orders": "order_id", "customers": "customer_id"}
RECORD_NAMES = {"orders": "order", "customers": "customer"}

MAD_TO_SIGMA = 1.4826  # the MAD of a normal sample times this is its standard deviation
OUTLIER_SIGMAS = 6.0  # 6 robust sigmas above the median: about 1 in 10^9 for a log-normal shop's real orders
MIN_LOG_SPREAD = 0.5  # a shop of near-identical orders (MAD ~ 0) still tolerates exp(6 x 0.5) = 20x its median
MIN_FACTOR = 20.0  # a bulk order of twenty baskets is plausible anywhere; below that nothing is flagged
MIN_REFERENCE_ORDERS = 5  # fewer orders are no distribution to judge by
CENT = 0.005  # amounts are rounded to cents: a refund may exceed a total by rounding only


@dataclass(frozen=True)
class OutlierLimit:
    """The tenant's order values as the outlier rule sees them: an order above `limit` is quarantined."""

    median: float
    log_spread: float  # robust standard deviation of log(order value)
    factor: float
    reference_orders: int

    @property
    def limit(self) -> float:
        return self.median * self.factor

    def metadata(self) -> dict[str, float | int]:
        return {
            "median_order_value": round(self.median, 2),
            "outlier_limit": round(self.limit, 2),
            "outlier_factor": round(self.factor, 1),
            "reference_orders": self.reference_orders,
        }


def outlier_limit(values: Iterable[float] | np.ndarray, max_factor: float) -> OutlierLimit | None:
    """median x clamp(exp(6 s), 20, max_factor), s the robust spread of log values (at least 0.5); None when fewer
    than 5 positive values (no judgement without a reference)."""
    positive = np.asarray(values, dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    if len(positive) < MIN_REFERENCE_ORDERS:
        return None
    logs = np.log(positive)
    center = float(np.median(logs))
    spread = max(MAD_TO_SIGMA * float(np.median(np.abs(logs - center))), MIN_LOG_SPREAD)
    factor = min(max_factor, max(MIN_FACTOR, float(np.exp(OUTLIER_SIGMAS * spread))))
    return OutlierLimit(float(np.exp(center)), spread, factor, len(positive))


@dataclass(frozen=True)
class PartitionContext:
    """What the rules and gates may know besides the partition's rows."""

    resource: str
    tenant_id: str
    day: date
    timezone: str
    currency: str
    trailing_row_counts: tuple[int, ...] = ()
    outliers: OutlierLimit | None = None
    span: str | None = None  # what the rows cover when more than `day` (a history sweep)

    @property
    def subject(self) -> str:
        return f"tenant {self.tenant_id} {self.span or self.day}"


@dataclass
class Screened:
    """A partition after screening: the rows to write and every quarantined record, each with its reason."""

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    superseded: int = 0  # older versions of an id and identical copies, folded into the version that counts
    schema_problems: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.quarantine)

    @functools.cached_property
    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(self.quarantine["reason"].astype(str)).items()))


@dataclass(frozen=True)
class Rule:
    """`broken(rows, their days, ctx, released)` is a mask; `detail(row, its day, ctx)` names field and value."""

    reason: str
    resources: tuple[str, ...]
    broken: Callable[[pd.DataFrame, np.ndarray, PartitionContext, frozenset[str]], np.ndarray]
    detail: Callable[[dict, date, PartitionContext], str]


def _negative(frame: pd.DataFrame, days, ctx, released) -> np.ndarray:
    return np.any([frame[column].to_numpy(float, na_value=0.0) < 0 for column in MONEY_COLUMNS], axis=0)


def _negative_detail(row: dict, day, ctx) -> str:
    column = next(c for c in MONEY_COLUMNS if pd.notna(row[c]) and row[c] < 0)
    return f"{column}={row[column]:.2f}"


def _over_refunded(frame: pd.DataFrame, days, ctx, released) -> np.ndarray:
    return (frame["total_refunded"] > frame["total_price"] + CENT).fillna(False).to_numpy(bool)


def _foreign(frame: pd.DataFrame, days, ctx: PartitionContext, released) -> np.ndarray:
    return (frame["currency"] != ctx.currency).fillna(True).to_numpy(bool)


def _outside_day(frame: pd.DataFrame, days: np.ndarray, ctx: PartitionContext, released) -> np.ndarray:
    local = frame["updated_at"].dt.tz_convert(ctx.timezone).dt.date.to_numpy()
    return (local != days) | (frame["created_at"] > frame["updated_at"]).fillna(False).to_numpy(bool)


def _outside_detail(row: dict, day: date, ctx: PartitionContext) -> str:
    if row["created_at"] > row["updated_at"]:
        return f"created_at={row['created_at'].isoformat()} after updated_at={row['updated_at'].isoformat()}"
    return f"updated_at={row['updated_at'].isoformat()} is not on {day} in {ctx.timezone}"


def _extreme(frame: pd.DataFrame, days, ctx: PartitionContext, released: frozenset[str]) -> np.ndarray:
    if ctx.outliers is None:
        return np.zeros(len(frame), bool)
    above = (frame["total_price"] > ctx.outliers.limit).fillna(False).to_numpy(bool)
    return above & ~frame["order_id"].isin(released).to_numpy(bool) if above.any() else above


def _extreme_detail(row: dict, day, ctx: PartitionContext) -> str:
    limit = ctx.outliers
    return (
        f"total_price={row['total_price']:.2f} above {limit.limit:.2f} ({limit.factor:.0f}x the median order value "
        f"{limit.median:.2f} of {limit.reference_orders} orders)"
    )


def _refund_detail(row: dict, day, ctx) -> str:
    return f"total_refunded={row['total_refunded']:.2f} > total_price={row['total_price']:.2f}"


def _currency_detail(row: dict, day, ctx: PartitionContext) -> str:
    return f"currency={row['currency']}, the tenant's is {ctx.currency}"


# In this order: a row breaking several rules is quarantined for the first.
RULES: tuple[Rule, ...] = (
    Rule("negative_amount", ("orders",), _negative, _negative_detail),
    Rule("over_refunded", ("orders",), _over_refunded, _refund_detail),
    Rule("foreign_currency", ("orders",), _foreign, _currency_detail),
    Rule("outside_day", ("orders", "customers"), _outside_day, _outside_detail),
    Rule("extreme_outlier", ("orders",), _extreme, _extreme_detail),
)


def _conflict_detail(row: dict, day, ctx) -> str:
    return f"several copies updated at {row['updated_at'].isoformat()} with different content"


def quarantine_rows(rows: pd.DataFrame, days: np.ndarray, ctx: PartitionContext, reason: str, detail) -> list[dict]:
    """Typed rows as quarantine records: id, day, reason, an error naming tenant, field, value and fix, the row."""
    id_column, name = ID_COLUMNS[ctx.resource], RECORD_NAMES[ctx.resource]
    return [
        {
            "record_id": str(row[id_column]),
            "day": day,
            "reason": reason,
            "error": f"tenant {ctx.tenant_id} {day}: {name} {row[id_column]}: {detail(row, day, ctx)}: "
            + REASONS[reason],
            "record": json.dumps(row, sort_keys=True, default=str),
        }
        for row, day in zip(rows.to_dict("records"), days, strict=True)
    ]


def _versions(frame: pd.DataFrame, keys: list) -> tuple[np.ndarray, np.ndarray]:
    """(the latest version of each id and day, the copies of those whose latest version differs in content), as masks.

    Identical copies collapse to one; different `updated_at` are versions and the latest counts."""
    newest = (frame["updated_at"] == frame.groupby(keys)["updated_at"].transform("max")).to_numpy(bool)
    distinct = newest & ~frame.duplicated(keep="first").to_numpy(bool)
    ids = pd.Series(list(zip(*(frame[key] for key in keys), strict=True)), index=frame.index)
    copies = ids.where(distinct).duplicated(keep=False).to_numpy(bool) & distinct
    conflicting = newest & ids.isin(ids[copies]).to_numpy(bool)
    return distinct & ~conflicting, conflicting


def screen(
    frame: pd.DataFrame,
    ctx: PartitionContext,
    released: frozenset[str] = frozenset(),
    quarantined: pd.DataFrame | None = None,
    days: pd.Series | None = None,
) -> Screened:
    """Apply the record rules to a validated partition; `quarantined` (records that failed validation) comes along.

    `released`: order ids an operator confirmed as real, kept despite the outlier rule. `days`: each row's day when
    the frame covers several (a history sweep, screened at once: versions and timestamps count per day); by default
    every row is of `ctx.day`. Kept rows stay in their order. A frame without the lake's schema is left as it is
    for the blocking `schema_valid` gate to stop.
    """
    carried = quarantined if quarantined is not None else quarantine_frame([])
    problems = schema_problems(frame, ctx.resource)
    if problems or frame.empty:
        return Screened(frame, carried, schema_problems=problems)
    on = np.full(len(frame), ctx.day, dtype=object) if days is None else np.asarray(days, dtype=object)
    id_column = ID_COLUMNS[ctx.resource]
    if frame[id_column].is_unique:
        latest, conflicting = np.ones(len(frame), bool), np.zeros(len(frame), bool)
    else:
        latest, conflicting = _versions(frame.assign(_day=on), ["_day", id_column] if days is not None else [id_column])
    records = []
    if conflicting.any():
        records += quarantine_rows(frame[conflicting], on[conflicting], ctx, "conflicting_duplicate", _conflict_detail)
    kept = latest.copy()
    for rule in RULES:
        if ctx.resource in rule.resources and kept.any():
            broken = rule.broken(frame, on, ctx, released) & kept
            if broken.any():
                records += quarantine_rows(frame[broken], on[broken], ctx, rule.reason, rule.detail)
                kept &= ~broken
    superseded = len(frame) - int(latest.sum()) - int(conflicting.sum())
    if not records:
        return Screened(frame if kept.all() else frame[kept].reset_index(drop=True), carried, superseded)
    found = quarantine_frame(records)
    quarantine = pd.concat([carried, found], ignore_index=True) if len(carried) else found
    quarantine = quarantine.sort_values(["record_id", "reason", "error"], na_position="last", ignore_index=True)
    return Screened(frame[kept].reset_index(drop=True), quarantine[QUARANTINE_SCHEMA.names], superseded)
