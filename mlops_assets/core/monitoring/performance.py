"""Realized performance of served scores once their labels mature, and the rules that act on it."""

from __future__ import annotations

import math

import numpy as np

from mlops_assets.core.monitoring.thresholds import MonitoringThresholds


def realized_metrics(probabilities: np.ndarray, outcomes: np.ndarray) -> dict[str, float]:
    """AUC, Brier and top-decile precision of scores against what customers did (NaN AUC with one class)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    probabilities, outcomes = np.asarray(probabilities, float), np.asarray(outcomes, bool)
    customers, positives = len(outcomes), int(outcomes.sum())
    both_classes = 0 < positives < customers
    top = np.argsort(-probabilities, kind="stable")[: max(1, customers // 10)] if customers else []
    return {
        "customers": customers,
        "positives": positives,
        "base_rate": positives / customers if customers else math.nan,
        "auc": float(roc_auc_score(outcomes, probabilities)) if both_classes else math.nan,
        "brier": float(brier_score_loss(outcomes, probabilities)) if customers else math.nan,
        "top_decile_precision": float(outcomes[top].mean()) if customers else math.nan,
    }


def performance_problem(realized_auc: float, holdout_auc: float, thresholds: MonitoringThresholds) -> str | None:
    return below_floor("AUC", realized_auc, thresholds.auc_floor, holdout_auc, thresholds.max_auc_drop)


def below_floor(metric: str, realized: float, floor: float, holdout: float, max_drop: float) -> str | None:
    """Why a realized ranking metric fails: below the floor, or more than `max_drop` below the holdout's."""
    if not math.isfinite(realized):
        return None
    if realized < floor:
        return f"realized {metric} {realized:.3f} is below the floor {floor}"
    if math.isfinite(holdout) and realized < holdout - max_drop:
        return (
            f"realized {metric} {realized:.3f} is more than {max_drop} below the model's holdout {metric} {holdout:.3f}"
        )
    return None


def regressed(serving_auc: float, predecessor_auc: float, thresholds: MonitoringThresholds) -> bool:
    """The newly promoted version did worse than the one it replaced, on the same customers and outcomes."""
    return (
        math.isfinite(serving_auc)
        and math.isfinite(predecessor_auc)
        and predecessor_auc - serving_auc >= thresholds.rollback_margin
    )


def retrain_refusal(alarm_day, last_trained, last_drift_retrain, cooldown_days: int, in_flight: bool) -> str | None:
    """Why an alarm on `alarm_day` must not start a retrain; None when it should.

    Any training at or after the alarm day already answers it; the cooldown counts from the last
    drift-triggered retrain only, so a weekly retrain just before a drift does not delay the response.
    """
    if in_flight:
        return "a retrain of this tenant is already queued or running"
    if last_trained is not None and last_trained >= alarm_day:
        return f"already trained at cutoff {last_trained}"
    if last_drift_retrain is not None and (alarm_day - last_drift_retrain).days < cooldown_days:
        return f"cooldown: last drift retrain at cutoff {last_drift_retrain}, {cooldown_days} days must pass"
    return None
