"""Customer feature snapshots and labels, as of the end of a day in the tenant's timezone.

No row may see its own future: an order counts if it was created before the cutoff, in the latest
version updated before the cutoff; an order known only from a later version (a history sweep keeps
only the last one) counts as placed, with its later cancellation or refund masked unless that is
dated before the cutoff. So adding later orders, or later versions of old ones, never changes a
snapshot (tested, and checked on every materialization).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from mlops_assets.core.ml.baselines import bgnbd_probability

DAY = pd.Timedelta(days=1)
WINDOWS = (7, 30, 90, 365)
FEATURES = [
    "recency_days", "frequency", "monetary_total", "monetary_mean", "monetary_max",
    *[f"orders_{w}d" for w in WINDOWS], *[f"spend_{w}d" for w in WINDOWS],
    "tenure_days", "gap_mean_days", "gap_std_days", "recency_over_gap", "refund_share", "cancel_share",
    "first_order_value", "last_order_value", "order_trend_90d", "spend_trend_90d", "items_per_order",
    "bgnbd_probability",
]  # fmt: skip
NULLABLE_FEATURES = frozenset(
    {"gap_mean_days", "gap_std_days", "recency_over_gap", "spend_trend_90d", "bgnbd_probability"}
)


def cutoff_utc(day: date, timezone: str) -> pd.Timestamp:
    """The end of `day` in the tenant's timezone (the start of the next local day), in UTC."""
    return pd.Timestamp(datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(timezone))).tz_convert(
        "UTC"
    )


def _customer_orders(history: pd.DataFrame) -> pd.DataFrame:
    """Orders of identified customers that are not test orders."""
    keep = history["customer_id"].notna() & ~history["is_test"].fillna(False).astype(bool)
    return history.loc[keep]


def orders_as_of(history: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One row per order created before `cutoff`, in the state known at the cutoff."""
    placed = _customer_orders(history)
    placed = placed.loc[placed["created_at"] < cutoff].sort_values(["order_id", "updated_at"], kind="stable")
    known = placed.loc[placed["updated_at"] < cutoff].drop_duplicates("order_id", keep="last")
    later = placed.loc[~placed["order_id"].isin(known["order_id"])].drop_duplicates("order_id", keep="first").copy()
    later["total_refunded"] = 0.0
    later.loc[~(later["cancelled_at"] < cutoff), "cancelled_at"] = pd.NaT
    return pd.concat([known, later], ignore_index=True)


def feature_snapshot(history: pd.DataFrame, day: date, timezone: str, horizon_days: int = 30) -> pd.DataFrame:
    """One row per customer with at least one (not cancelled) order by the end of `day`.

    `bgnbd_probability` stacks the statistical model into the features: BG/NBD fitted on this
    snapshot alone (no labels), P(an order within the horizon); NaN when the fit fails.
    """
    cutoff = cutoff_utc(day, timezone)
    orders = orders_as_of(history, cutoff)
    cancelled = orders["cancelled_at"].notna().to_numpy()
    everyone = orders.assign(cancelled=cancelled)
    valid = orders.loc[~cancelled].copy()
    if valid.empty:
        return pd.DataFrame(columns=["customer_id", *FEATURES]).astype({"customer_id": "string"})
    valid["customer_id"] = valid["customer_id"].astype(str)
    valid["net"] = (valid["total_price"] - valid["total_refunded"]).astype(float)
    valid["age_days"] = (cutoff - valid["created_at"]) / DAY
    valid = valid.sort_values(["customer_id", "created_at", "order_id"], kind="stable")
    grouped = valid.groupby("customer_id", sort=True)

    features = pd.DataFrame(index=grouped.size().index)
    features["frequency"] = grouped.size()
    features["recency_days"] = grouped["age_days"].min()
    features["tenure_days"] = grouped["age_days"].max()
    features["monetary_total"] = grouped["net"].sum()
    features["monetary_mean"] = grouped["net"].mean()
    features["monetary_max"] = grouped["net"].max()
    features["first_order_value"] = grouped["net"].first()
    features["last_order_value"] = grouped["net"].last()
    features["items_per_order"] = grouped["item_quantity"].mean().astype(float)
    for window in WINDOWS:
        inside = valid["age_days"] < window
        features[f"orders_{window}d"] = inside.groupby(valid["customer_id"]).sum()
        features[f"spend_{window}d"] = valid["net"].where(inside, 0.0).groupby(valid["customer_id"]).sum()
    previous = (valid["age_days"] >= 90) & (valid["age_days"] < 180)
    orders_prev = previous.groupby(valid["customer_id"]).sum()
    spend_prev = valid["net"].where(previous, 0.0).groupby(valid["customer_id"]).sum()
    features["order_trend_90d"] = features["orders_90d"] - orders_prev
    features["spend_trend_90d"] = features["spend_90d"] / spend_prev.where(spend_prev > 0)

    gaps = -valid.groupby("customer_id")["age_days"].diff()
    features["gap_mean_days"] = gaps.groupby(valid["customer_id"]).mean()
    features["gap_std_days"] = gaps.groupby(valid["customer_id"]).std()
    features["recency_over_gap"] = features["recency_days"] / features["gap_mean_days"].where(
        features["gap_mean_days"] > 0
    )

    everyone["customer_id"] = everyone["customer_id"].astype(str)
    per_customer = everyone.groupby("customer_id")
    gross = per_customer["total_price"].sum()
    features["cancel_share"] = (per_customer["cancelled"].mean()).reindex(features.index)
    refunded = valid.groupby("customer_id")["total_refunded"].sum()
    features["refund_share"] = (refunded / gross.reindex(features.index).where(lambda g: g > 0)).fillna(0.0)

    features["bgnbd_probability"] = np.nan
    probability = bgnbd_probability(features, horizon_days)
    if probability is not None:
        features["bgnbd_probability"] = probability
    features = features[FEATURES].astype(float)
    features.index.name = "customer_id"
    return features.reset_index().astype({"customer_id": "string"})


def future_orders(history: pd.DataFrame, day: date, timezone: str, until: date) -> pd.DataFrame:
    """The orders a label may count: placed after the end of `day` and by the end of `until`, in the
    state known at the end of `until` (so a matured label never changes when later versions arrive).
    Per order: `kept` (not cancelled), `net` (spend after refunds, 0 when cancelled) and `day_offset`
    (the local day of the order counted from `day`, 1 = the next day)."""
    start = cutoff_utc(day, timezone)
    orders = orders_as_of(history.loc[history["created_at"] >= start], cutoff_utc(until, timezone))
    kept = orders["cancelled_at"].isna().to_numpy()
    local_day = orders["created_at"].dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
    return pd.DataFrame(
        {
            "customer_id": orders["customer_id"].astype(str).to_numpy(),
            "kept": kept,
            "net": np.where(kept, orders["total_price"] - orders["total_refunded"], 0.0).astype(float),
            "day_offset": ((local_day - pd.Timestamp(day)) // DAY).to_numpy(int),
        }
    )


def labels(history: pd.DataFrame, day: date, timezone: str, horizon_days: int) -> pd.Series:
    """Per customer: did they place any (non-test) order in (end of `day`, + H days]?

    A placed order counts even if it is cancelled later: the intent the probability predicts, and
    what the synthetic shops' oracle counts. Order counts and spend (`future_orders`) count kept orders.
    """
    start = cutoff_utc(day, timezone)
    end = cutoff_utc(day + timedelta(days=horizon_days), timezone)
    placed = _customer_orders(history)
    first_seen = placed.drop_duplicates("order_id")
    inside = first_seen.loc[(first_seen["created_at"] >= start) & (first_seen["created_at"] < end)]
    return pd.Series(True, index=pd.Index(inside["customer_id"].astype(str).unique(), name="customer_id"))


def feature_problems(features: pd.DataFrame) -> list[str]:
    """NaN or infinite values where none may be, and impossible values."""
    problems = []
    for column in FEATURES:
        values = features[column].to_numpy(float)
        if column not in NULLABLE_FEATURES and np.isnan(values).any():
            problems.append(f"{int(np.isnan(values).sum())} NaN in {column}")
        if np.isinf(values).any():
            problems.append(f"{int(np.isinf(values).sum())} infinite values in {column}")
    if (features["recency_days"] < 0).any():
        problems.append("negative recency: an order after the cutoff leaked in")
    if (features["frequency"] < 1).any():
        problems.append("a customer without orders")
    return problems
