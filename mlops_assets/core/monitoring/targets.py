"""Every target's realized performance once its label matures, and its floor (issue 16).

Each target is judged on the label training judges it on (`core.ml.targets.target_labels`) with the
metrics of its backtest (`core.ml.evaluation`): the amounts of the horizon (`expected_orders`,
`expected_revenue`) H days after they were made, from the same matured window as the repurchase
score; `churn_probability` (no order in the next 365 days) and `clv_365d` 365 days after, from the
warehouse's predictions of that day (one indexed read of four columns; nothing when the tenant did
not predict that day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlops_assets.core.ml.clv import CLV_DAYS
from mlops_assets.core.ml.evaluation import amount_metrics, probability_metrics
from mlops_assets.core.ml.targets import TARGETS, target_labels
from mlops_assets.core.monitoring.performance import below_floor
from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
from mlops_assets.core.warehouse.engine import MONITORED_TARGETS, realized_column
from mlops_assets.core.warehouse.prediction_store import read_partition

HORIZON_TARGETS = ("expected_orders", "expected_revenue")
YEAR_TARGETS = ("churn_probability", "clv_365d")
KINDS = {target.name: target for target in TARGETS}
# Evaluation's metric names -> the short names of the `monitoring_days` columns.
SHORT_NAMES = {"auc": "auc", "brier": "brier", "normalized_gini": "gini", "mae": "mae", "aggregate_bias": "bias"}


def realized_targets(scored: pd.DataFrame, outcomes: pd.DataFrame, names) -> dict[str, dict[str, float]]:
    """Per target of `names` that the scored rows hold and whose label has matured (`outcomes`:
    `targets.target_labels` of the same customers): its backtest metrics, on the customers with both."""
    labelled = outcomes.set_index("customer_id").reindex(scored["customer_id"].astype(str))
    found = {}
    for name in names:
        target = KINDS[name]
        if name not in scored or target.label not in labelled:
            continue
        predicted, actual = scored[name].to_numpy(float), labelled[target.label].to_numpy(float)
        both = np.isfinite(predicted) & np.isfinite(actual)
        if not both.any():
            continue
        measure = probability_metrics if target.kind == "probability" else amount_metrics
        found[name] = {**measure(actual[both], predicted[both]), "customers": int(both.sum())}
    return found


def target_problems(
    realized: dict[str, dict[str, float]], holdout: dict[str, float | None], thresholds: MonitoringThresholds
) -> dict[str, str]:
    """The targets whose realized ranking falls below their floor (`churn_auc_floor`, `gini_floor`) or too
    far below their holdout figure (`holdout`: the model card's, by target), each with why."""
    found = {}
    for name, metrics in realized.items():
        if KINDS[name].kind == "probability":
            rule = ("AUC", metrics["auc"], thresholds.churn_auc_floor, thresholds.max_auc_drop)
        else:
            rule = ("normalized Gini", metrics["normalized_gini"], thresholds.gini_floor, thresholds.max_gini_drop)
        what, value, floor, drop = rule
        before = holdout.get(name)
        problem = below_floor(what, value, floor, math.nan if before is None else before, drop)
        if problem:
            found[name] = f"{name}: {problem}"
    return found


def retraining(failing: dict[str, str]) -> list[str]:
    """The failing targets a retrain answers: those of the horizon. The 365-day targets' predictions were
    made by a version a year old, replaced many times since; a retrain now would not answer for it."""
    return [name for name in failing if name in HORIZON_TARGETS]


def monitoring_fields(realized: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """Every realized target column of `monitoring_days` (realized_<target>_<metric>), None where not measured,
    so a re-run of a day leaves no figure of an earlier run behind."""
    return {
        realized_column(name, short): realized.get(name, {}).get(metric)
        for name, shorts in MONITORED_TARGETS.items()
        for metric, short in SHORT_NAMES.items()
        if short in shorts
    }


def holdouts(batch: dict, names) -> dict[str, float | None]:
    """Each target's holdout figure from the model card stored with a day's predictions."""
    quality = (batch.get("targets") or {}).get("quality") or {}
    return {name: (quality.get(name) or {}).get("holdout") for name in names}


@dataclass
class YearTargets:
    """The 365-day targets' realized figures, from the predictions made 365 days before the day."""

    predicted_on: date | None = None
    version: str | None = None
    realized: dict[str, dict[str, float]] = field(default_factory=dict)
    holdouts: dict[str, float | None] = field(default_factory=dict)
    status: str = "not evaluated"


def year_targets(warehouse_url: str, reader, history: pd.DataFrame, tenant, day: date) -> YearTargets:
    """churn_probability and clv_365d of the predictions made 365 days before `day`, when the warehouse
    holds them (`history`: the tenant's orders through `day`; `reader`: a `PredictionReader`)."""
    predicted_on = day - timedelta(days=CLV_DAYS)
    columns = ["customer_id", "model_version", *YEAR_TARGETS]
    scored = read_partition(warehouse_url, tenant.tenant_id, predicted_on, columns)
    if scored.empty or scored[list(YEAR_TARGETS)].isna().all().all():
        reason = "no predictions" if scored.empty else "no churn or CLV predictions"
        return YearTargets(status=f"not evaluated: {reason} on {predicted_on}")
    outcomes = target_labels(history, scored["customer_id"], predicted_on, tenant.timezone, tenant.horizon_days, day)
    return YearTargets(
        predicted_on,
        str(scored["model_version"].iloc[0]),
        realized_targets(scored, outcomes, YEAR_TARGETS),
        holdouts(reader.batch(tenant.tenant_id, predicted_on) or {}, YEAR_TARGETS),
        predicted_on.isoformat(),
    )
