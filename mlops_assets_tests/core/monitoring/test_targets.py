"""Every target's prediction drift and realized performance, on hand-made frames and histories."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.targets import target_labels
from mlops_assets.core.monitoring.drift import DRIFT_TARGETS, PREDICTION, _drift_score, measure_drift
from mlops_assets.core.monitoring.targets import (
    HORIZON_TARGETS,
    YEAR_TARGETS,
    monitoring_fields,
    realized_targets,
    retraining,
    target_problems,
)
from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
from mlops_assets_tests.core.ml.test_features import history, order

THRESHOLDS = MonitoringThresholds()


def _scores(rows: int, seed: int) -> pd.DataFrame:
    """Features and every target of `rows` customers, drawn alike for any seed."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.gamma(2.0, 10.0, (rows, len(FEATURES))), columns=FEATURES)
    revenue = rng.lognormal(3, 1, rows)
    return frame.assign(
        customer_id=[f"c{i}" for i in range(rows)],
        repurchase_probability=rng.beta(2, 5, rows),
        churn_probability=rng.beta(5, 2, rows),
        expected_orders=revenue / 40,
        expected_revenue=revenue,
        clv_365d=revenue * 9,
    )


def test_only_the_target_that_moved_raises_prediction_drift_and_it_is_named():
    reference, current = _scores(3000, seed=1), _scores(3000, seed=2)
    reference.loc[0, "expected_revenue"] = 1e6  # one big spender: on the raw scale every other customer shares a bin
    current["expected_revenue"] *= 2
    result = measure_drift(reference, current, THRESHOLDS)
    assert set(result.target_psi) == set(DRIFT_TARGETS) and result.unmeasured_targets == []
    assert result.drifted_targets(THRESHOLDS) == ["expected_revenue"], result.target_psi
    assert result.target_psi["expected_revenue"] > 0.3, "a doubling of spend is caught despite the big spender"
    raw = _drift_score(reference["expected_revenue"], current["expected_revenue"], "psi", THRESHOLDS.prediction_psi)
    assert raw < 0.01, "on the raw scale the same doubling goes unseen: why amounts are compared as log(1 + x)"
    assert all(psi < 0.05 for name, psi in result.target_psi.items() if name != "expected_revenue")
    problem = result.problems(THRESHOLDS)["prediction_drift"]
    assert problem.startswith("expected_revenue PSI") and "repurchase_probability" not in problem
    rows = result.frame().set_index("column")
    assert rows.loc["expected_revenue", "stattest"] == "psi" and rows.loc["clv_365d", "score"] < 0.05
    assert result.prediction_psi == result.target_psi[PREDICTION]


def test_targets_a_version_never_scored_are_named_unmeasured_and_cannot_alarm():
    reference, current = _scores(1000, seed=1), _scores(1000, seed=2)
    reference = reference.drop(columns=["churn_probability", "expected_orders", "expected_revenue", "clv_365d"])
    current["clv_365d"] *= 10
    result = measure_drift(reference, current, THRESHOLDS)
    assert list(result.target_psi) == [PREDICTION]
    assert result.unmeasured_targets == ["churn_probability", "expected_orders", "expected_revenue", "clv_365d"]
    assert result.problems(THRESHOLDS) == {}
    current["repurchase_probability"] = np.clip(current["repurchase_probability"] + 0.4, 0, 1)
    moved = measure_drift(reference, current, THRESHOLDS).problems(THRESHOLDS)
    assert moved["prediction_drift"].startswith("repurchase_probability PSI")
    with pytest.raises(ValueError, match="repurchase_probability on both sides"):
        measure_drift(reference.drop(columns=[PREDICTION]), current, THRESHOLDS)


PREDICTED_ON = date(2026, 1, 1)
H = 30


@pytest.fixture(scope="module")
def realized():
    """Four customers with known futures after PREDICTED_ON: a orders twice (50 + 50) within H, b once (30)
    within H and once (20) after it, c places an order cancelled the same day, d never orders again."""
    orders = history(
        order("1", "a", "2025-06-01T10:00", 40.0),
        order("2", "b", "2025-07-01T10:00", 40.0),
        order("3", "c", "2025-08-01T10:00", 40.0),
        order("4", "d", "2025-09-01T10:00", 40.0),
        order("5", "a", "2026-01-05T10:00", 50.0),
        order("6", "a", "2026-01-20T10:00", 50.0),
        order("7", "b", "2026-01-10T10:00", 30.0),
        order("8", "b", "2026-02-15T10:00", 20.0),
        order("9", "c", "2026-01-12T10:00", 70.0, cancelled="2026-01-12T18:00", updated="2026-01-12T18:00"),
    )
    scored = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "expected_orders": [1.5, 1.0, 0.5, 0.2],
            "expected_revenue": [40.0, 60.0, 10.0, 10.0],
            "churn_probability": [0.1, 0.2, 0.3, 0.9],
            "clv_365d": [150.0, 40.0, 20.0, 0.0],
        }
    )
    horizon = target_labels(orders, scored["customer_id"], PREDICTED_ON, "UTC", H, PREDICTED_ON + timedelta(days=H))
    year = target_labels(orders, scored["customer_id"], PREDICTED_ON, "UTC", H, PREDICTED_ON + timedelta(days=365))
    return scored, horizon, year


def test_realized_metrics_of_the_horizon_targets_by_hand(realized):
    scored, horizon, _ = realized
    found = realized_targets(scored, horizon, [*HORIZON_TARGETS, *YEAR_TARGETS])
    assert set(found) == set(HORIZON_TARGETS), "churn and CLV wait for their 365-day labels"
    orders = found["expected_orders"]  # actual 2, 1, 0, 0: ranked right, ties of the actuals aside
    assert orders["normalized_gini"] == pytest.approx(1.0)
    assert orders["mae"] == pytest.approx((0.5 + 0 + 0.5 + 0.2) / 4)
    assert orders["aggregate_bias"] == pytest.approx(3.2 / 3)
    revenue = found["expected_revenue"]  # actual 100, 30, 0, 0 ranked b, a, {c, d}: Lorenz areas 71/104, best 85/104
    assert revenue["normalized_gini"] == pytest.approx(19 / 33)
    assert revenue["mae"] == pytest.approx((60 + 30 + 10 + 10) / 4)
    assert revenue["aggregate_bias"] == pytest.approx(120 / 130)
    assert revenue["customers"] == 4


def test_realized_metrics_of_the_year_targets_by_hand(realized):
    scored, _, year = realized
    found = realized_targets(scored, year, YEAR_TARGETS)
    churn = found["churn_probability"]  # only d placed no order in the year; c's cancelled order was placed
    assert churn["auc"] == 1.0 and churn["base_rate"] == 0.25
    assert churn["brier"] == pytest.approx((0.1**2 + 0.2**2 + 0.3**2 + 0.1**2) / 4)
    clv = found["clv_365d"]  # actual 100, 50, 0, 0
    assert clv["normalized_gini"] == pytest.approx(1.0)
    assert clv["mae"] == pytest.approx((50 + 10 + 20 + 0) / 4)
    assert clv["aggregate_bias"] == pytest.approx(210 / 150)
    fields = monitoring_fields(found)
    assert fields["realized_churn_probability_auc"] == 1.0 and fields["realized_clv_365d_bias"] == pytest.approx(1.4)
    assert fields["realized_expected_orders_gini"] is None, "every column, None where not measured"


def test_a_failing_target_is_named_and_only_horizon_targets_ask_for_a_retrain():
    realized = {
        "churn_probability": {"auc": 0.55, "brier": 0.2},
        "expected_orders": {"normalized_gini": 0.5},
        "expected_revenue": {"normalized_gini": 0.1},
        "clv_365d": {"normalized_gini": float("nan")},
    }
    holdouts = {"expected_orders": 0.75, "expected_revenue": None, "churn_probability": 0.7}
    failing = target_problems(realized, holdouts, THRESHOLDS)
    assert failing == {
        "churn_probability": "churn_probability: realized AUC 0.550 is below the floor 0.6",
        "expected_orders": "expected_orders: realized normalized Gini 0.500 is more than 0.2 below the model's "
        "holdout normalized Gini 0.750",
        "expected_revenue": "expected_revenue: realized normalized Gini 0.100 is below the floor 0.2",
    }
    assert retraining(failing) == ["expected_orders", "expected_revenue"]
    lenient = MonitoringThresholds(churn_auc_floor=0.5, max_auc_drop=0.2, gini_floor=0.05, max_gini_drop=0.3)
    assert target_problems(realized, holdouts, lenient) == {}
