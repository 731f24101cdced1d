"""Every prediction a shop expects (issue 16): the targets, their labels and the spend tiers.

Each target is a prediction column (the name the warehouse, the API and the CSV use) judged against
one label column of `target_labels`, computed from the same history and cutoff as the features:
a label counts only orders placed after the end of the snapshot day (`features.future_orders`), so
no feature sees its label's period and no label sees the snapshot's. A label whose window has not
fully passed by `observed_through` is NaN, never a partial count; `observed_days` says how much
future each row had.

Probabilities and dates count placed orders, as today's `labels` (a placed order shows the intent
even if it is cancelled later); order counts and spend count kept orders, net of refunds known by
the window's end. `churned` is the observable stand-in for "has stopped buying": no order placed in
the next 365 days (the baseline's 1 - P(alive) is latent; a year of silence is the usual practical
reading). `expected_next_order_date` is judged on `days_to_next_order`, censored (NaN) when no order
came within the observed future. `spend_tier` derives from `clv_365d` and has no label of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from mlops_assets.core.ml.clv import CLV_DAYS
from mlops_assets.core.ml.features import future_orders, labels

# Spend tiers by clv_365d within the tenant (cumulative shares): top 20% high, next 30% medium, the rest low.
TIER_SHARES = (("high", 0.2), ("medium", 0.5))


@dataclass(frozen=True)
class Target:
    name: str  # the prediction column
    label: str  # its label column in `target_labels`
    kind: str  # "probability": AUC, Brier, calibration; "amount": Gini, Spearman, MAE, bias; "date"
    window_days: int | None  # days of future its label needs; None: the tenant's horizon


TARGETS = (
    Target("repurchase_probability", "repurchased", "probability", None),
    Target("churn_probability", "churned", "probability", CLV_DAYS),
    Target("expected_orders", "orders", "amount", None),
    Target("expected_revenue", "revenue", "amount", None),
    Target("clv_365d", "revenue_365d", "amount", CLV_DAYS),
    Target("expected_next_order_date", "days_to_next_order", "date", CLV_DAYS),
)
LABELS = [target.label for target in TARGETS]


def target_labels(
    history: pd.DataFrame,
    customers: pd.Series,
    day: date,
    timezone: str,
    horizon_days: int,
    observed_through: date,
) -> pd.DataFrame:
    """One row per customer of the snapshot at the end of `day` (`customers`): every target's label,
    NaN where its window ends after `observed_through` (the last day of data)."""
    observed_days = (observed_through - day).days
    if observed_days < 0:
        raise ValueError(
            f"labels for {day} need data after it, the data ends on {observed_through} "
            "(fix: label snapshots taken on or before the last day of data)"
        )
    index = pd.Index(pd.unique(customers.astype(str)), name="customer_id")
    frame = pd.DataFrame(index=index, columns=[*LABELS, "observed_days"], dtype=float)
    if horizon_days <= observed_days:
        kept = future_orders(history, day, timezone, day + timedelta(days=horizon_days)).query("kept")
        frame["orders"] = kept.groupby("customer_id").size().reindex(index, fill_value=0)
        frame["revenue"] = kept.groupby("customer_id")["net"].sum().reindex(index, fill_value=0.0)
        frame["repurchased"] = index.isin(labels(history, day, timezone, horizon_days).index)
    if observed_days >= CLV_DAYS:
        kept = future_orders(history, day, timezone, day + timedelta(days=CLV_DAYS)).query("kept")
        frame["revenue_365d"] = kept.groupby("customer_id")["net"].sum().reindex(index, fill_value=0.0)
        frame["churned"] = ~index.isin(labels(history, day, timezone, CLV_DAYS).index)
    placed = future_orders(history, day, timezone, observed_through)
    frame["days_to_next_order"] = placed.groupby("customer_id")["day_offset"].min().reindex(index)
    frame["observed_days"] = observed_days
    return frame.astype(float).reset_index()


def spend_tiers(clv_365d: pd.Series) -> pd.Series:
    """high / medium / low per customer by `clv_365d` within the tenant (`TIER_SHARES`).

    A customer's rank is the share of the tenant's customers worth at least as much, so ties fall
    together into the lower tier and no tier grows past its share (all equal: all "low"); a CLV of
    zero or less is always "low".
    """
    rank = clv_365d.rank(method="max", ascending=False) / max(len(clv_365d), 1)
    tier = pd.Series("low", index=clv_365d.index, dtype=object)
    for name, share in reversed(TIER_SHARES):
        tier[rank <= share] = name
    tier[~(clv_365d > 0)] = "low"
    return tier.astype(pd.CategoricalDtype(["high", "medium", "low"]))
