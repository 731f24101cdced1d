"""The customer value model: labels in the training set, learned targets against the baseline, calibration,
and the scored frame of a version that predates the targets. (The baseline's own math on hand-made
histories is test_targets.py's; here the same shop goes through scoring.)"""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.ml.candidates import fit_model
from mlops_assets.core.ml.clv import CLV_DAYS
from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.core.ml.scoring import ServedModel, prediction_problems, score_snapshot
from mlops_assets.core.ml.targets import LABELS, TARGETS
from mlops_assets.core.ml.training_data import CUTOFF, YEAR_HOLDOUT, TrainingPlan, TrainingSet, build_training_set
from mlops_assets.core.ml.value_model import (
    LOST_FLAG,
    PREDATES_FLAG,
    VALUE_COLUMNS,
    customer_half,
    fit_value_model,
    learning_rows,
)
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.core.ml.test_features import history, order
from mlops_assets_tests.core.ml.test_targets import DAY, _regular_shop
from mlops_assets_tests.helpers import TEST_END

BY_NAME = {target.name: target for target in TARGETS}


@pytest.fixture(scope="module")
def built():
    shop = SyntheticShop(ShopSpec("value", customers=3000, seed=4, end=TEST_END, history_days=600))
    return build_training_set(shop.raw_orders(), TrainingPlan(TEST_END), "UTC", TEST_END)


def _fit(built: TrainingSet):
    kind, _, probabilities = fit_model(built)
    return fit_value_model(built, kind, probabilities)


@pytest.fixture(scope="module")
def value(built):
    return _fit(built)


def test_a_label_counts_only_orders_after_the_snapshot_day():
    """Orders on the snapshot day (up to its last second) are features; the next day's are labels."""
    plan = TrainingPlan(date(2026, 6, 30), horizon_days=30, train_snapshots=1)
    day = plan.holdout_day  # 2026-05-31
    orders = history(
        order("1", "a", "2026-01-05T10:00", 20.0),
        order("2", "a", "2026-05-31T23:59", 30.0),  # the snapshot day itself
        order("3", "a", "2026-06-01T00:00", 40.0),  # the first instant after it
        order("4", "a", "2026-06-30T23:00", 50.0),  # the window's last day
        order("5", "a", "2026-07-01T00:00", 60.0),  # after the cutoff: no label sees it
    )
    frame = build_training_set(orders, plan, "UTC", date(2026, 7, 2)).frame.set_index("split")
    holdout = frame.loc["holdout"]
    assert day == date(2026, 5, 31) and holdout["frequency"] == 2
    assert (holdout["orders"], holdout["revenue"], holdout["label"], holdout["repurchased"]) == (2, 90, 1, 1)
    assert np.isnan(holdout["revenue_365d"]) and np.isnan(holdout["churned"]), "a 365-day window is still open"
    assert frame.loc[CUTOFF, LABELS].isna().all(), "the cutoff snapshot has no label: nothing has been observed"
    assert frame.loc[CUTOFF, "frequency"] == 4


def test_the_training_set_holds_every_label_and_the_value_snapshots(built):
    frame = built.frame
    assert set(frame["split"]) == {"train", "valid", "holdout", YEAR_HOLDOUT, CUTOFF}
    labelled = frame.loc[frame["split"].isin(["train", "valid", "holdout"])]
    assert (labelled["label"] == labelled["repurchased"]).all() and labelled[["orders", "revenue"]].notna().all().all()
    year = built.split(YEAR_HOLDOUT)
    assert (year["snapshot"] == pd.Timestamp(TEST_END - timedelta(days=CLV_DAYS))).all()
    assert year[["churned", "revenue_365d"]].notna().all().all() and 0 < year["churned"].mean() < 1


def test_learned_targets_never_learn_from_a_judged_snapshot(built):
    """No learning row is from the holdout, the year holdout or the cutoff, and none has a label window
    reaching past the day its target is judged on."""
    for name, judged_day in (("expected_orders", built.plan.holdout_day), ("clv_365d", built.plan.year_holdout_day)):
        target = BY_NAME[name]
        window = timedelta(days=target.window_days or built.plan.horizon_days)
        train, valid, why_not = learning_rows(built, target)
        rows = pd.concat([train, valid])
        assert set(rows["split"]) <= {"train", "valid"}
        assert (rows["snapshot"] + window <= pd.Timestamp(judged_day)).all()
        assert not set(train.index) & set(valid.index)
    assert "needs 758 days of history" in why_not, "two years of history cannot train a 365-day target"


def test_every_target_is_judged_against_the_baseline(value):
    quality = value.quality
    assert set(quality) == {target.name for target in TARGETS}
    for name in ("repurchase_probability", "expected_orders", "expected_revenue", "clv_365d", "churn_probability"):
        entry = quality[name]
        assert entry["holdout"] is not None and entry["baseline"] is not None and entry["grade"] is not None
        assert 1 < len(entry["deciles"]) <= 10 and len(entry["baseline_deciles"]) == 10  # ties share a decile
        if name == "repurchase_probability":  # the repurchase model's gates are promotion's, measured here
            assert entry["served"] == "lightgbm" and entry["holdout"] > 0.7
        elif entry["served"] == "lightgbm":
            assert entry["holdout"] >= entry["baseline"] and entry["flag"] == "" and name in value.learned
        else:
            assert entry["flag"] and name not in value.learned
    assert quality["expected_orders"]["metric"] == "normalized_gini" and quality["churn_probability"]["metric"] == "auc"
    for name in ("clv_365d", "churn_probability"):
        assert quality[name]["served"] == "baseline" and "days of history" in quality[name]["flag"]
    assert quality["expected_next_order_date"]["metric"] == "coverage"
    assert 0.2 < quality["expected_next_order_date"]["holdout"] < 0.8


def test_churn_calibration_is_kept_only_when_it_lowers_the_judged_brier(built, value):
    churn = value.quality["churn_probability"]
    if value.calibration is not None:
        assert (
            churn["extra"]["calibrated"] == 1 and churn["extra"]["brier"] < churn["extra"]["brier_before_calibration"]
        )
    year = built.split(YEAR_HOLDOUT)
    flipped = built.frame.copy()
    calibration_half = flipped.index.isin(year.index[customer_half(year)])
    flipped.loc[calibration_half, "churned"] = 1 - flipped.loc[calibration_half, "churned"]
    misled = _fit(TrainingSet(flipped, built.plan, built.cold_start_reasons))
    assert misled.calibration is None, "a map fitted on the wrong outcomes would raise the judged Brier: dropped"
    assert misled.quality["churn_probability"]["extra"]["calibrated"] == 0


def test_a_learned_target_that_loses_to_the_baseline_serves_the_flagged_baseline(built, value):
    shuffled = built.frame.copy()
    rng = np.random.default_rng(0)
    fitted = shuffled["split"].isin(["train", "valid"])
    for label in ("orders", "revenue"):
        shuffled.loc[fitted, label] = rng.permutation(shuffled.loc[fitted, label].to_numpy())
    lost = _fit(TrainingSet(shuffled, built.plan, built.cold_start_reasons))
    cutoff = built.split(CUTOFF)
    baseline = lost.baseline.predict(cutoff, TEST_END, built.plan.horizon_days)
    for name in ("expected_orders", "expected_revenue"):
        entry = lost.quality[name]
        assert entry["served"] == "baseline" and entry["flag"].startswith(LOST_FLAG) and name not in lost.learned
        assert entry["holdout"] == entry["baseline"]
        assert np.array_equal(lost.predict(cutoff, TEST_END)[name], baseline[name])


def test_the_value_model_predicts_every_target_from_the_cutoff_snapshot(built, value):
    cutoff = built.split(CUTOFF)
    predicted = value.predict(cutoff, TEST_END)
    assert list(predicted.columns) == VALUE_COLUMNS and len(predicted) == len(cutoff)
    numbers = predicted.drop(columns="expected_next_order_date").to_numpy(float)
    assert np.isfinite(numbers).all() and (numbers >= 0).all() and predicted["churn_probability"].le(1).all()
    dates = predicted["expected_next_order_date"].dropna()
    assert (dates > pd.Timestamp(TEST_END)).all() and (dates <= pd.Timestamp(TEST_END + timedelta(CLV_DAYS))).all()


def test_a_version_that_predates_the_targets_is_scored_with_the_days_baseline_flagged():
    """The issue's hand-made shop (test_targets.py): monthly buyers of 30 are worth about 360 a year and
    low churn risk; the one silent ten months after a year of monthly orders is high risk."""
    snapshot = feature_snapshot(_regular_shop(), DAY, "UTC", 30)
    old = ServedModel("acme", "repurchase-acme", "1", "lightgbm", {}, None, lambda f: f["bgnbd_probability"])
    frame = score_snapshot(old, snapshot, DAY, "sha256:f", "run", datetime(2026, 4, 2, tzinfo=UTC)).set_index(
        "customer_id"
    )
    monthly = frame.loc[[f"m{i}" for i in range(30)]]
    assert monthly["clv_365d"].to_numpy() == pytest.approx(365, rel=0.15) and (monthly["risk_band"] == "low").all()
    assert monthly["spend_tier"].isin(["high", "medium"]).all() and frame.loc["silent", "spend_tier"] == "low"
    assert frame.loc["silent", "risk_band"] == "high" and frame.loc["silent", "churn_probability"] > 0.9
    assert frame.drop(columns="expected_next_order_date").notna().all().all()
    assert prediction_problems(frame.reset_index(), len(snapshot)) == {}
    quality = frame.attrs["model_card"]["target_quality"]
    assert set(quality) == set(VALUE_COLUMNS) and {q["flag"] for q in quality.values()} == {PREDATES_FLAG}
