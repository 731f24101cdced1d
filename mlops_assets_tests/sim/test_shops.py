from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.sim.oracle import oracle
from mlops_assets.sim.scenarios import LevelShift
from mlops_assets.sim.shops import ShopSpec, SyntheticShop, transaction_export
from mlops_assets_tests.helpers import TEST_END


def test_same_seed_same_shop_other_seed_other_shop():
    spec = ShopSpec("seeded", customers=300, seed=3, end=TEST_END)
    pd.testing.assert_frame_equal(SyntheticShop(spec).orders, SyntheticShop(spec).orders)
    other = SyntheticShop(ShopSpec("seeded", customers=300, seed=4, end=TEST_END)).orders
    assert not SyntheticShop(spec).orders["total_price"].equals(other["total_price"])


def test_sizes_span_100_to_100k():
    assert SyntheticShop(ShopSpec("tiny", customers=100, end=TEST_END)).customers.shape[0] == 100
    big = SyntheticShop(ShopSpec("big", customers=100_000, end=TEST_END, history_days=365))
    assert big.customers.shape[0] == 100_000 and len(big.orders) > 100_000
    with pytest.raises(ValueError, match="customers"):
        ShopSpec("none", customers=10)


def test_history_carries_realistic_dirt(small_shop):
    orders = small_shop.orders
    assert orders["customer_id"].isna().mean() == pytest.approx(0.03, abs=0.015)
    assert orders["test"].sum() >= 1
    assert (orders["financial_status"] == "voided").mean() == pytest.approx(0.02, abs=0.01)
    assert orders["financial_status"].isin(["refunded", "partially_refunded"]).mean() == pytest.approx(0.04, abs=0.015)
    late = (orders["updated_at"] - orders["created_at"]) > pd.Timedelta(days=2)
    assert late.mean() > 0.2, "orders are updated days after creation (fulfilment, refunds)"
    assert (orders["updated_at"] >= orders["created_at"]).all()
    assert orders["updated_at"].max() <= small_shop.end_utc


def test_weekly_and_yearly_seasonality_show_in_orders():
    shop = SyntheticShop(
        ShopSpec("seasonal", customers=20_000, end=date(2026, 12, 31), history_days=730, yearly_amplitude=0.4)
    )
    created = shop.orders["created_at"]
    by_month = created.dt.month.value_counts(normalize=True)
    assert by_month[12] > by_month[6] * 1.3


def test_drift_changes_behaviour_from_its_day():
    drift_day = TEST_END - timedelta(days=120)
    base = ShopSpec("drifty", customers=5000, seed=1, end=TEST_END)
    drifted = ShopSpec(
        "drifty",
        customers=5000,
        seed=1,
        end=TEST_END,
        scenario=LevelShift(drift_day, rate_factor=0.4, value_factor=1.5),
    )

    def after(shop):
        orders = SyntheticShop(shop).orders
        return orders[orders["created_at"].dt.date >= drift_day]

    assert len(after(drifted)) < 0.75 * len(after(base))
    assert after(drifted)["total_price"].median() > 1.3 * after(base)["total_price"].median()


def test_oracle_is_a_calibrated_probability_with_high_auc():
    shop = SyntheticShop(ShopSpec("oracle", customers=8000, seed=5, end=TEST_END))
    truth = oracle(shop, TEST_END - timedelta(days=60), horizon_days=30)
    assert truth["p_true"].between(0, 1).all()
    assert truth["horizon_complete"].all()
    assert roc_auc_score(truth["ordered"], truth["p_true"]) > 0.8
    assert truth["p_true"].mean() == pytest.approx(truth["ordered"].mean(), rel=0.15)
    dead = truth[~truth["alive"]]
    assert not dead["ordered"].any(), "a customer who dropped out never orders again"


def test_oracle_refuses_days_outside_history(small_shop):
    with pytest.raises(ValueError, match="outside"):
        oracle(small_shop, TEST_END + timedelta(days=1))


def test_transaction_export_has_the_file_tenant_shape(small_shop):
    export = transaction_export(small_shop)
    assert list(export.columns) == ["order_id", "customer_id", "timestamp", "amount", "quantity"]
    assert np.isfinite(export["amount"]).all() and export["customer_id"].notna().all()
