"""Per-target metrics, quality grades and calibration that must earn its place on the holdout."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.core.ml.evaluation import (
    amount_metrics,
    choose_calibration,
    grade,
    next_order_metrics,
    normalized_gini,
    probability_metrics,
    reliability_by_decile,
)


def _outcomes(n: int, seed: int, shown=lambda p: p) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities, and the scores a model shows for them."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.2, 4, n)
    return (rng.random(n) < truth).astype(int), shown(truth)


def test_normalized_gini_on_a_yes_no_label_is_two_auc_minus_one_ties_included():
    labels, scores = _outcomes(5000, 1)
    rounded = np.round(scores, 1)  # many ties
    for predicted in (scores, rounded):
        assert normalized_gini(labels, predicted) == pytest.approx(2 * roc_auc_score(labels, predicted) - 1)
    spend = np.random.default_rng(2).lognormal(3, 1, 1000)
    assert normalized_gini(spend, spend) == pytest.approx(1.0)
    assert normalized_gini(spend, np.ones_like(spend)) == pytest.approx(0.0)
    assert normalized_gini(spend, -spend) < -0.9
    assert np.isnan(normalized_gini(np.zeros(5), np.arange(5)))


def test_amount_metrics_rank_error_and_aggregate_bias():
    actual = np.array([0.0, 0, 10, 20, 70])
    metrics = amount_metrics(actual, actual * 1.5)
    assert metrics["normalized_gini"] == pytest.approx(1.0) and metrics["spearman"] == pytest.approx(1.0)
    assert metrics["mae"] == pytest.approx(0.5 * 100 / 5) and metrics["aggregate_bias"] == pytest.approx(1.5)
    flat = amount_metrics(actual, np.full(5, 20.0))
    assert np.isnan(flat["spearman"]) and flat["aggregate_bias"] == pytest.approx(1.0)


def test_probability_metrics_and_reliability_by_decile():
    labels, scores = _outcomes(20_000, 3)
    metrics = probability_metrics(labels, scores)
    assert 0.7 < metrics["auc"] < 0.8 and metrics["brier"] < 0.2
    assert metrics["mean_predicted"] == pytest.approx(metrics["base_rate"], abs=0.01)
    deciles = reliability_by_decile(labels, scores)
    assert list(deciles["decile"]) == list(range(1, 11)) and deciles["customers"].sum() == 20_000
    assert (deciles["observed"] - deciles["mean_predicted"]).abs().max() < 0.03, "calibrated scores sit on the diagonal"
    assert deciles["mean_predicted"].is_monotonic_increasing
    assert np.isnan(probability_metrics([1, 1, 1], [0.2, 0.5, 0.9])["auc"])


def test_the_next_order_date_is_judged_as_a_median():
    actual = np.array([5, 40, np.nan, 12, np.nan, 300])
    predicted = np.array([10, 20, 30, np.nan, 500, 30])
    metrics = next_order_metrics(actual, np.full(6, 120), predicted)
    # judged: dated within the 120 observed days (rows 0, 1, 2, 5); by their date: row 0 only
    assert metrics["ordered_by_date"] == pytest.approx(1 / 4)
    assert metrics["date_mae_days"] == pytest.approx((5 + 20 + 270) / 3)
    assert metrics["dated_share"] == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("kind", "metrics", "expected"),
    [
        ("probability", {"auc": 0.59}, "Poor"),
        ("probability", {"auc": 0.60}, "Fair"),
        ("probability", {"auc": 0.75}, "Good"),
        ("probability", {"auc": 0.80}, "Excellent"),
        ("amount", {"normalized_gini": 0.19}, "Poor"),
        ("amount", {"normalized_gini": 0.45}, "Good"),
        ("amount", {"normalized_gini": 0.65}, "Excellent"),
        ("probability", {"auc": float("nan")}, None),
        ("date", {"ordered_by_date": 0.5}, None),
    ],
)
def test_quality_grades(kind, metrics, expected):
    assert grade(kind, metrics) == expected


def test_calibration_is_kept_when_it_improves_the_holdout_brier():
    overconfident = lambda p: p**0.4  # noqa: E731 - scores far above the truth
    fit_labels, fit_scores = _outcomes(3000, 4, overconfident)
    hold_labels, hold_scores = _outcomes(3000, 5, overconfident)
    calibrator = choose_calibration(fit_labels, fit_scores, hold_labels, hold_scores)
    assert calibrator is not None and calibrator.holdout_brier_after < calibrator.holdout_brier_before - 0.02
    calibrated = calibrator.predict(hold_scores)
    assert calibrated.mean() == pytest.approx(hold_labels.mean(), abs=0.02)
    assert roc_auc_score(hold_labels, calibrated) == pytest.approx(roc_auc_score(hold_labels, hold_scores), abs=0.01)


def test_a_calibration_that_ranks_worse_is_never_kept():
    """Saturated scores (every truth above 1/3 shows as 1): isotonic's steps would win on Brier and tie
    customers apart; what is kept ranks exactly as the raw scores do."""
    saturated = lambda p: np.clip(p * 3, 0, 1)  # noqa: E731
    for seed in range(20, 26):
        fit_labels, fit_scores = _outcomes(200, seed, saturated)
        hold_labels, hold_scores = _outcomes(2000, seed + 100, saturated)
        calibrator = choose_calibration(fit_labels, fit_scores, hold_labels, hold_scores)
        assert calibrator is not None and calibrator.holdout_brier_after < calibrator.holdout_brier_before
        kept = roc_auc_score(hold_labels, calibrator.predict(hold_scores))
        assert kept >= roc_auc_score(hold_labels, hold_scores) - 1e-9, (seed, calibrator.method)


def test_calibration_is_dropped_when_it_does_not_help():
    """Scores already calibrated: a map fitted on 300 rows only adds noise, and the holdout shows it."""
    fit_labels, fit_scores = _outcomes(300, 6)
    hold_labels, hold_scores = _outcomes(20_000, 7)
    assert choose_calibration(fit_labels, fit_scores, hold_labels, hold_scores) is None
    assert choose_calibration(np.zeros(50), fit_scores[:50], hold_labels, hold_scores) is None, "one class: no fit"


def test_a_calibrator_maps_any_score_into_a_probability():
    labels, scores = _outcomes(2000, 8, lambda p: p**0.5)
    calibrator = choose_calibration(labels, scores, *_outcomes(2000, 9, lambda p: p**0.5))
    mapped = calibrator.predict(pd.Series([0.0, 0.5, 1.0, 1e-9]))
    assert np.isfinite(mapped).all() and ((mapped >= 0) & (mapped <= 1)).all()
