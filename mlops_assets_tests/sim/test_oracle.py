"""The synthetic shops' truth of every target agrees with what their customers then did."""

from datetime import date, timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.core.ml.targets import target_labels
from mlops_assets.sim.oracle import ground_truth, oracle
from mlops_assets.sim.scenarios import LevelShift
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 9, 30)
DAY = END - timedelta(days=400)  # a year and a month of future: every label matures


@pytest.fixture(scope="module")
def truth_and_outcomes():
    shop = SyntheticShop(ShopSpec("truth", customers=20_000, seed=1, end=END, history_days=900))
    orders = shop.raw_orders()
    customers = feature_snapshot(orders, DAY, "UTC", 30)["customer_id"]
    outcomes = target_labels(orders, customers, DAY, "UTC", 30, END)
    truth = ground_truth(shop, DAY, 30).astype({"customer_id": str})
    return shop, truth, truth.merge(outcomes, on="customer_id", validate="one_to_one")


@pytest.mark.parametrize(
    ("expected", "realized"),
    [
        ("expected_orders_h", "orders"),
        ("expected_spend_h", "revenue"),
        ("expected_spend_365d", "revenue_365d"),
    ],
)
def test_true_expectations_match_what_customers_did_within_sampling_error(truth_and_outcomes, expected, realized):
    _, _, joined = truth_and_outcomes
    assert len(joined) > 5000
    standard_error = joined[realized].std() / np.sqrt(len(joined))
    assert abs(joined[expected].mean() - joined[realized].mean()) < 4 * standard_error


def test_true_p_alive_separates_the_living_from_the_gone(truth_and_outcomes):
    shop, truth, joined = truth_and_outcomes
    alive = shop.truth.set_index(shop.truth["customer_id"].astype(str)).loc[truth["customer_id"], "death_at_day"]
    alive = alive.to_numpy() >= shop.day_index(DAY) + 1
    assert truth["p_alive"].between(0, 1).all()
    assert truth["p_alive"].mean() == pytest.approx(alive.mean(), abs=0.02)
    assert roc_auc_score(alive, truth["p_alive"]) > 0.85
    assert roc_auc_score(joined["churned"], 1 - joined["p_alive"]) > 0.75


def test_truth_agrees_with_the_oracle_and_reaches_past_the_last_day():
    shop = SyntheticShop(
        ShopSpec("reach", customers=3000, seed=2, end=END, scenario=LevelShift(END - timedelta(days=90), 0.5, 2.0))
    )
    day = END - timedelta(days=30)
    truth = ground_truth(shop, day, 30)
    probabilities = oracle(shop, day, 30)
    assert (truth["customer_id"] == probabilities["customer_id"]).all()
    assert np.isfinite(truth.drop(columns="customer_id").to_numpy()).all()
    assert (truth["expected_orders_365d"] > truth["expected_orders_h"]).all(), "the year runs past the shop's end"
    placed = truth["expected_orders_h"] / (1 - shop.spec.dirt.cancel_rate)
    # P(an order) <= E[orders]; 1% of slack for p_true's horizon-average seasonality (exact day by day here)
    assert (probabilities["p_true"] <= 1.01 * placed).all()
    with pytest.raises(ValueError, match="outside"):
        ground_truth(shop, END + timedelta(days=1))
