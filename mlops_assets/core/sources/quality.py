"""Quality gates on raw partitions, as pure functions over a frame and its context.

Each gate returns an `Outcome`; the Dagster layer turns gates into asset checks, blocking where
the gate protects training (shape, identity, money, currency, time, outliers) and warning where
a human should look but the data may well be right (volume swings, quarantine share).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_assets.core.sources.records import REQUIRED, SCHEMAS

MONEY_COLUMNS = ("total_price", "subtotal_price", "total_tax", "total_discounts", "total_refunded")
ID_COLUMNS = {"orders": "order_id", "customers": "customer_id"}


@dataclass(frozen=True)
class PartitionContext:
    """What a gate may know besides the partition's rows."""

    resource: str
    tenant_id: str
    day: date
    timezone: str
    currency: str
    quarantined: int = 0
    trailing_row_counts: tuple[int, ...] = ()
    trailing_median_order_value: float | None = None
    outlier_factor: float = 1000.0


@dataclass(frozen=True)
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    name: str
    resources: tuple[str, ...]
    blocking: bool
    description: str
    evaluate: Callable[[pd.DataFrame, PartitionContext], Outcome]


def _sample(values) -> list[str]:
    return [str(v) for v in list(values)[:10]]


def schema_valid(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    schema = SCHEMAS[ctx.resource]
    problems = []
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        problems.append(f"missing columns {missing}")
    else:
        try:
            pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            problems.append(f"types do not match the schema: {exc}")
        for name in REQUIRED[ctx.resource]:
            nulls = int(frame[name].isna().sum())
            if nulls:
                problems.append(f"{nulls} empty values in required column {name}")
    if problems:
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: " + "; ".join(problems) + " (fix: the source "
            "or the normalizer; re-run the partition)",
            {"problems": problems},
        )
    return Outcome(True, "all required columns present, typed and filled", {"columns": len(schema.names)})


def unique_ids(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    column = ID_COLUMNS[ctx.resource]
    duplicated = frame[column][frame[column].duplicated()].unique()
    if len(duplicated):
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: {len(duplicated)} duplicated {column} values "
            "(fix: the source returns one record per id; re-run the partition)",
            {"duplicates": len(duplicated), "sample": _sample(duplicated)},
        )
    return Outcome(True, f"{column} values are unique", {"rows": len(frame)})


def non_negative_amounts(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    negative = {c: int((frame[c] < 0).sum()) for c in MONEY_COLUMNS if c in frame}
    over_refunded = int((frame["total_refunded"] > frame["total_price"] + 0.005).sum())
    bad = {k: v for k, v in negative.items() if v}
    if over_refunded:
        bad["total_refunded > total_price"] = over_refunded
    if bad:
        rows = frame[(frame[list(negative)] < 0).any(axis=1) | (frame["total_refunded"] > frame["total_price"] + 0.005)]
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: negative or over-refunded amounts {bad} "
            "(fix: check these orders in the shop; amounts must be >= 0)",
            {"violations": bad, "sample_order_ids": _sample(rows["order_id"])},
        )
    return Outcome(True, "all amounts are >= 0 and refunds <= totals", {"rows": len(frame)})


def currency_matches_tenant(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    other = frame[frame["currency"] != ctx.currency]
    if len(other):
        found = sorted(other["currency"].astype(str).unique())
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: {len(other)} orders in {found}, tenant currency is "
            f"{ctx.currency} (fix: `mlops tenants` currency, or the shop's settings)",
            {"currencies": found, "sample_order_ids": _sample(other["order_id"])},
        )
    return Outcome(True, f"all orders in {ctx.currency}", {"rows": len(frame)})


def timestamps_in_day(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    zone = ZoneInfo(ctx.timezone)
    start = pd.Timestamp(datetime.combine(ctx.day, datetime.min.time(), zone)).tz_convert("UTC")
    end = pd.Timestamp(datetime.combine(ctx.day + timedelta(days=1), datetime.min.time(), zone)).tz_convert("UTC")
    outside = frame[(frame["updated_at"] < start) | (frame["updated_at"] >= end)]
    backwards = frame[frame["created_at"] > frame["updated_at"]]
    if len(outside) or len(backwards):
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: {len(outside)} rows updated outside the day "
            f"[{start.isoformat()}, {end.isoformat()}) and {len(backwards)} created after their update "
            "(fix: check the tenant's timezone; re-run the partition)",
            {"outside_day": len(outside), "created_after_update": len(backwards)},
        )
    return Outcome(True, f"every row updated within {ctx.day} ({ctx.timezone})", {"rows": len(frame)})


def no_extreme_outliers(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    median = ctx.trailing_median_order_value
    if median is None or not np.isfinite(median) or median <= 0:
        return Outcome(True, "too little history for a median order value yet", {"median_order_value": None})
    limit = median * ctx.outlier_factor
    extreme = frame[frame["total_price"] > limit]
    meta = {
        "median_order_value": round(float(median), 2),
        "limit": round(float(limit), 2),
        "extreme_orders": len(extreme),
    }
    if len(extreme):
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: {len(extreme)} orders above {ctx.outlier_factor:g}x the "
            f"median order value {median:.2f} (fix: confirm with the shop; a real order of this size needs "
            "a higher outlier_factor)",
            {**meta, "sample_order_ids": _sample(extreme["order_id"])},
        )
    return Outcome(True, f"no order above {ctx.outlier_factor:g}x the median order value", meta)


def row_count_in_range(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    history = ctx.trailing_row_counts
    if len(history) < 7:
        return Outcome(True, f"only {len(history)} trailing days to compare with (needs 7)", {"rows": len(frame)})
    median = float(np.median(history))
    low, high = median / 5 - 10, median * 5 + 10
    meta = {"rows": len(frame), "trailing_median": median, "low": max(low, 0), "high": high}
    if not low <= len(frame) <= high:
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: {len(frame)} rows against a trailing median of "
            f"{median:g} (fix: look for an outage or a bulk import at the source)",
            meta,
        )
    return Outcome(True, "row count within 5x of the trailing median", meta)


def quarantine_share(frame: pd.DataFrame, ctx: PartitionContext) -> Outcome:
    total = len(frame) + ctx.quarantined
    share = ctx.quarantined / total if total else 0.0
    meta = {"quarantined": ctx.quarantined, "share": round(share, 4)}
    if share > 0.05:
        return Outcome(
            False,
            f"tenant {ctx.tenant_id} {ctx.day}: {ctx.quarantined} of {total} records quarantined "
            "(fix: read the errors under the lake's quarantine/ and fix the source or its column mapping)",
            meta,
        )
    return Outcome(True, f"{ctx.quarantined} records quarantined", meta)


GATES: tuple[Gate, ...] = (
    Gate("schema_valid", ("orders", "customers"), True, "Required fields present and typed", schema_valid),
    Gate("unique_ids", ("orders", "customers"), True, "One row per id", unique_ids),
    Gate("non_negative_amounts", ("orders",), True, "No negative amounts, refunds within totals", non_negative_amounts),
    Gate("currency_matches_tenant", ("orders",), True, "Orders are in the tenant's currency", currency_matches_tenant),
    Gate("timestamps_in_day", ("orders", "customers"), True, "Rows belong to the partition's day", timestamps_in_day),
    Gate("no_extreme_outliers", ("orders",), True, "No order 1000x the tenant's median", no_extreme_outliers),
    Gate("row_count_in_range", ("orders",), False, "Volume within 5x of the trailing 14 days", row_count_in_range),
    Gate("quarantine_share", ("orders", "customers"), False, "At most 5% of records quarantined", quarantine_share),
)


def gates_for(resource: str) -> list[Gate]:
    return [gate for gate in GATES if resource in gate.resources]
