"""Scoring with a real registered model: ranks, bands, reasons, the predictions gates."""

import json

import numpy as np
import pytest

from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.scoring import NoProductionModel, RiskBands, load_served_model, prediction_problems
from mlops_assets_tests.helpers import SERVED_TENANT as TENANT
from mlops_assets_tests.helpers import scored


def test_scores_rank_and_band_every_customer(served):
    frame = scored(served)
    snapshot = served["snapshot"]
    assert len(frame) == len(snapshot) and set(frame["customer_id"]) == set(snapshot["customer_id"].astype(str))
    assert sorted(frame["rank"]) == list(range(1, len(frame) + 1))
    by_rank = frame.sort_values("rank")
    assert (np.diff(by_rank["repurchase_probability"].to_numpy()) <= 0).all(), "rank 1 is the most likely"
    assert frame["percentile"].between(0, 100).all() and by_rank["percentile"].iloc[0] == 100
    p = frame["repurchase_probability"]
    assert (frame.loc[p < 0.10, "risk_band"] == "high").all() and (frame.loc[p >= 0.30, "risk_band"] == "low").all()
    assert set(frame["risk_band"]) == {"high", "medium", "low"}, "a real shop spreads over the bands"
    assert prediction_problems(frame, len(snapshot)) == {}
    assert (frame["model_version"] == served["model"].version).all()


def test_scores_match_the_registered_pyfunc(served):
    """The booster used for scoring and explanations is the registered model, not a copy."""
    pyfunc = served["registry"].load(TENANT, served["model"].version)
    expected = np.asarray(pyfunc.predict(served["snapshot"][FEATURES]), float)
    assert np.array_equal(scored(served)["repurchase_probability"].to_numpy(), expected)


def test_top_reasons_are_the_largest_contributions(served):
    frame = scored(served)
    contributions = served["model"].contributions(served["snapshot"])
    for i in (0, len(frame) // 2, len(frame) - 1):
        reasons = json.loads(frame["top_reasons"].iloc[i])
        assert 1 <= len(reasons) <= 3 and all(name in FEATURES for name, _, _ in reasons)
        strongest = np.sort(np.abs(contributions[i]))[::-1][: len(reasons)]
        assert np.allclose([abs(c) for _, c, _ in reasons], strongest, atol=1e-4)


def test_recent_frequent_buyers_score_above_lapsed_ones(served):
    frame = scored(served).merge(served["snapshot"].astype({"customer_id": str}), on="customer_id")
    recent = frame[(frame["recency_days"] < 15) & (frame["frequency"] >= 4)]
    lapsed = frame[(frame["recency_days"] > 300) & (frame["frequency"] == 1)]
    assert len(recent) and len(lapsed)
    assert recent["repurchase_probability"].median() > lapsed["repurchase_probability"].max()


def test_checks_catch_a_broken_model(served):
    frame = scored(served)
    broken = frame.copy()
    broken.loc[broken.index[:3], "repurchase_probability"] = [np.nan, 1.5, -0.1]
    problems = prediction_problems(broken.iloc[:-1], len(frame))
    assert set(problems) == {"row_count_matches_snapshot", "no_nan", "probabilities_in_range"}


def test_a_tenant_without_production_is_a_clear_error(served):
    with pytest.raises(NoProductionModel, match="tenant globex has no `production` model"):
        load_served_model(served["registry"], "globex")


def test_risk_bands_refuse_nonsense():
    with pytest.raises(ValueError, match="high_below"):
        RiskBands(0.5, 0.2)
