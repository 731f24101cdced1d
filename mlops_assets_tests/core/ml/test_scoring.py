"""Scoring with a real registered model: ranks, bands, reasons, the predictions gates."""

import json

import numpy as np
import pytest

from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.scoring import NoProductionModel, RiskBands, load_served_model, prediction_problems
from mlops_assets.core.ml.targets import TARGETS
from mlops_assets_tests.helpers import SERVED_TENANT as TENANT
from mlops_assets_tests.helpers import TEST_END, scored


def test_scores_rank_and_band_every_customer(served):
    frame = scored(served)
    snapshot = served["snapshot"]
    assert len(frame) == len(snapshot) and set(frame["customer_id"]) == set(snapshot["customer_id"].astype(str))
    assert sorted(frame["rank"]) == list(range(1, len(frame) + 1))
    by_rank = frame.sort_values("rank")
    assert (np.diff(by_rank["repurchase_probability"].to_numpy()) <= 0).all(), "rank 1 is the most likely"
    assert frame["percentile"].between(0, 100).all() and by_rank["percentile"].iloc[0] == 100
    churn = frame["churn_probability"]
    assert (frame.loc[churn >= 0.7, "risk_band"] == "high").all()
    assert (frame.loc[churn < 0.4, "risk_band"] == "low").all()
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
    amounts = frame.copy()
    amounts.loc[amounts.index[:3], ["clv_365d", "expected_orders", "churn_probability"]] = [np.inf, -1.0, 1.2]
    problems = prediction_problems(amounts, len(frame))
    assert set(problems) == {"amounts_in_range", "probabilities_in_range"}
    assert "3 infinite or negative clv_365d" in problems["amounts_in_range"]


def test_a_tenant_without_production_is_a_clear_error(served):
    with pytest.raises(NoProductionModel, match="tenant globex has no `production` model"):
        load_served_model(served["registry"], "globex")


def test_risk_bands_refuse_nonsense():
    with pytest.raises(ValueError, match="medium_from .* < high_from"):
        RiskBands(high_from=0.3, medium_from=0.5)


def test_every_target_of_the_registered_version_reaches_the_scored_frame(served):
    """Trained, logged and registered in MLflow, loaded back, scored: every column of the contract filled."""
    frame = scored(served)
    model = served["model"]
    assert model.value is not None and model.horizon_days == 30
    for column in ("expected_orders", "expected_revenue", "clv_365d", "churn_probability", "spend_tier"):
        assert frame[column].notna().all(), column
    assert frame["expected_next_order_date"].notna().any() and frame["expected_next_order_date"].isna().any()
    assert (frame["clv_365d"] >= 0).all() and frame["churn_probability"].between(0, 1).all()
    assert set(frame["spend_tier"]) == {"high", "medium", "low"}
    quality = frame.attrs["model_card"]["target_quality"]
    assert set(quality) == {target.name for target in TARGETS} and quality == model.value.quality
    again = model.value.predict(served["snapshot"], TEST_END)
    assert np.array_equal(again["expected_revenue"].to_numpy(), frame["expected_revenue"].to_numpy())


def test_a_version_registered_before_the_targets_scores_with_a_flagged_baseline(served):
    from mlops_assets.core.ml.tracking import model_name

    registry, current = served["registry"], served["model"]
    mlflow = registry._activate()
    source = registry.client.get_model_version(model_name(TENANT), current.version).source
    with mlflow.start_run(experiment_id=registry.experiment_id(TENANT)) as run:
        mlflow.log_param("plan_horizon_days", 30)
    old = registry.client.create_model_version(
        model_name(TENANT), source, run.info.run_id, tags={"model_kind": "lightgbm"}
    )
    loaded = load_served_model(registry, TENANT, str(old.version))
    assert loaded.value is None
    frame = scored({**served, "model": loaded})
    assert frame.drop(columns="expected_next_order_date").notna().all().all()
    assert prediction_problems(frame, len(frame)) == {}
    flags = {entry["flag"] for entry in frame.attrs["model_card"]["target_quality"].values()}
    assert flags == {"baseline fitted at scoring: model version predates the targets"}


def test_serving_checks_refuse_a_value_model_that_predicts_non_finite_values(served):
    from dataclasses import replace

    from mlops_assets.core.ml.promotion import PromotionPolicy, serving_problems, serving_report

    value = served["model"].value
    broken = replace(value, baseline=replace(value.baseline, spend={"p": np.nan, "q": 2.0, "v": 1.0}), learned={})
    pyfunc = served["registry"].load(TENANT, served["model"].version)
    report = serving_report(pyfunc, served["snapshot"], single_row_calls=5, value_model=broken)
    problems = serving_problems(report, PromotionPolicy(max_single_row_p99_ms=1e6, max_batch_10k_ms=1e6))
    assert problems == [
        f"the value model predicts non-finite {name} on the sample" for name in ("expected_revenue", "clv_365d")
    ]
    assert not [p for p in serving_problems(serving_report(pyfunc, served["snapshot"], single_row_calls=5,
                value_model=value), PromotionPolicy(max_single_row_p99_ms=1e6, max_batch_10k_ms=1e6))]  # fmt: skip


def test_a_busy_hosts_stalls_do_not_fail_the_latency_gate_but_a_slow_model_does():
    import time

    import pandas as pd

    from mlops_assets.core.ml.promotion import PromotionPolicy, serving_problems, serving_report

    class Model:
        """Answers in `cost` seconds; every other call also stalls, as on a host shared with other jobs."""

        def __init__(self, cost: float, stall: float):
            self.cost, self.stall, self.calls = cost, stall, 0

        def predict(self, frame):
            self.calls += 1
            time.sleep(self.cost + (self.stall if self.calls % 2 else 0.0))
            return np.full(len(frame), 0.5)

    rows = pd.DataFrame([dict.fromkeys(FEATURES, 1.0)] * 3)
    policy = PromotionPolicy(max_single_row_p99_ms=50, max_batch_10k_ms=1e6)
    stalled = serving_report(Model(0.0, 0.2), rows, single_row_calls=4)
    assert stalled["single_row_p99_ms"] < 50 and not serving_problems(stalled, policy)
    slow = serving_report(Model(0.06, 0.0), rows, single_row_calls=4)
    assert serving_problems(slow, policy) == [f"single-row p99 {slow['single_row_p99_ms']:.1f} ms >= 50.0 ms"]
