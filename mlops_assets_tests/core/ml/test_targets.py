"""Every target's labels and its BG/NBD + Gamma-Gamma baseline, on hand-made histories.

The shop of `regular_shop` is made by hand to have known answers: 300 customers with spread-out
rates and lifetimes (so BG/NBD has a population to fit), 30 who buy every 30 days for about 30
currency units, and one who bought monthly for a year and then fell silent for 300 days.
"""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad

from mlops_assets.core.ml.clv import CLV_DAYS, CustomerValueModel, fit_customer_value
from mlops_assets.core.ml.features import feature_snapshot, labels
from mlops_assets.core.ml.targets import LABELS, TARGETS, spend_tiers, target_labels
from mlops_assets_tests.core.ml.test_features import DAY, HAND_MADE, history, order

CUTOFF = pd.Timestamp("2026-04-01", tz="UTC")  # the end of DAY
LAST_REGULAR_ORDER_DAYS_AGO = 5


def _regular_shop() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []

    def buy(customer, days_ago, amount):
        when = (CUTOFF - pd.Timedelta(days=float(days_ago))).isoformat()
        rows.append(order(str(len(rows) + 1), customer, when, round(float(amount), 2)))

    for i in range(300):
        age, gap, life = rng.uniform(30, 730), rng.gamma(2, 40), rng.exponential(500)
        value, t = rng.lognormal(np.log(40), 0.4), 0.0
        while t < min(age, life):
            buy(f"c{i}", age - t, value * rng.lognormal(0, 0.2))
            t += rng.exponential(gap)
    for i in range(30):
        for k in range(24):
            buy(f"m{i}", LAST_REGULAR_ORDER_DAYS_AGO + 30 * k + 0.3 * i, 30 + rng.normal(0, 2))
    for k in range(12):
        buy("silent", 300 + 30 * k, 30)
    return history(*rows)


@pytest.fixture(scope="module")
def regular_shop():
    orders = _regular_shop()
    snapshot = feature_snapshot(orders, DAY, "UTC", 30)
    model = fit_customer_value(snapshot, 30)
    return snapshot, model, model.predict(snapshot, DAY, 30).set_index("customer_id")


def test_a_monthly_buyer_of_30_expects_about_12_orders_and_360_a_year(regular_shop):
    """Tolerance 15%: BG/NBD expects some chance of dropping out within the year, so slightly fewer."""
    snapshot, model, predicted = regular_shop
    assert model.fallbacks == {}
    year = model.predict(snapshot, DAY, CLV_DAYS).set_index("customer_id")
    monthly = [f"m{i}" for i in range(30)]
    assert year.loc[monthly, "expected_orders"].to_numpy() == pytest.approx(12.2, rel=0.15)
    assert predicted.loc[monthly, "clv_365d"].to_numpy() == pytest.approx(365 / 30 * 30, rel=0.15)
    assert predicted.loc[monthly, "expected_orders"].to_numpy() == pytest.approx(1.0, rel=0.15)
    assert predicted.loc[monthly, "expected_revenue"].to_numpy() == pytest.approx(30, rel=0.15)
    assert (predicted.loc[monthly, "churn_probability"] < 0.05).all()


def test_a_customer_silent_far_past_their_usual_gap_has_likely_churned(regular_shop):
    _, _, predicted = regular_shop
    silent = predicted.loc["silent"]
    assert silent["churn_probability"] > 0.9 and silent["p_alive"] < 0.1
    assert silent["repurchase_probability"] < 0.05 and pd.isna(silent["expected_next_order_date"])


def test_a_monthly_buyer_is_expected_back_about_a_month_after_the_last_order(regular_shop):
    """BG/NBD is memoryless: the median wait counts from the snapshot day, ln 2 times the expected gap
    (about 21 days for a 30-day buyer), so one last seen 5 days ago is expected ~26 days after it."""
    _, _, predicted = regular_shop
    last_order = pd.Timestamp(DAY) - pd.Timedelta(days=LAST_REGULAR_ORDER_DAYS_AGO - 1)
    waits = (predicted.loc[[f"m{i}" for i in range(10)], "expected_next_order_date"] - last_order).dt.days
    assert waits.between(21, 40).all(), waits
    assert predicted.loc["m0", "next_order_in_days"] == pytest.approx(np.log(2) * 30, rel=0.2)


def test_every_baseline_is_a_number_in_range(regular_shop):
    _, _, predicted = regular_shop
    numbers = predicted.drop(columns=["next_order_in_days", "expected_next_order_date"])
    assert np.isfinite(numbers.to_numpy(float)).all()
    for column in ("repurchase_probability", "churn_probability", "p_alive"):
        assert predicted[column].between(0, 1).all()
    assert (predicted["repurchase_probability"] <= 1 - predicted["churn_probability"] + 1e-9).all()
    assert (predicted["expected_revenue"] >= 0).all() and (predicted["clv_365d"] >= predicted["expected_revenue"]).all()
    assert (predicted["next_order_in_days"].dropna() <= CLV_DAYS).all()


def test_repurchase_probability_is_the_exact_bgnbd_probability():
    """P(X(t) > 0 | x, t_x, T) against direct integration over the posterior of rate and dropout."""
    r, alpha, a, b = 1.3, 25.0, 0.8, 2.5
    x, t_x, age, t = 3, 100.0, 150.0, 60
    model = CustomerValueModel({"r": r, "alpha": alpha, "a": a, "b": b}, None)
    customer = pd.DataFrame(
        {"customer_id": ["a"], "frequency": [x + 1], "tenure_days": [age], "recency_days": [age - t_x]}
    ).assign(monetary_total=40.0 * (x + 1), first_order_value=40.0)

    def integral(function, upper):
        return quad(function, 0, upper, epsabs=0, epsrel=1e-10)[0]  # the values are ~1e-9: no absolute tolerance

    def rate(extra_exposure, last):
        return integral(lambda lam: lam ** (r - 1 + x) * np.exp(-lam * (alpha + last + extra_exposure)), np.inf)

    def dropout(alive):
        return integral(lambda p: p ** (a - 1) * (1 - p) ** (b - 1 + x) * (1 if alive else p / (1 - p)), 1)

    evidence = dropout(True) * rate(0, age) + dropout(False) * rate(0, t_x)
    no_order = dropout(True) * rate(t, age) + dropout(False) * rate(0, t_x)
    predicted = model.predict(customer, DAY, t).iloc[0]
    assert predicted["repurchase_probability"] == pytest.approx(1 - no_order / evidence, rel=1e-6)
    assert predicted["p_alive"] == pytest.approx(dropout(True) * rate(0, age) / evidence, rel=1e-6)


def test_tiny_shops_and_shops_without_repeat_customers_get_a_flagged_fallback():
    tiny = history(*[order(str(i), f"c{i % 8}", f"2026-0{1 + i % 3}-1{i % 9}T10:00", 20.0 + i) for i in range(12)])
    one_timers = history(*[order(str(i), f"c{i}", f"2025-{1 + i % 12:02d}-1{i % 9}T10:00", 30.0) for i in range(40)])
    for orders, reason in ((tiny, "customers, BG/NBD needs 20"), (one_timers, "no repeat customer")):
        snapshot = feature_snapshot(orders, DAY, "UTC", 30)
        model = fit_customer_value(snapshot, 30)
        assert reason in model.fallbacks["transactions"] and "Gamma-Gamma needs" in model.fallbacks["spend"]
        predicted = model.predict(snapshot, DAY, 30)
        numbers = predicted.drop(columns=["customer_id", "next_order_in_days", "expected_next_order_date"])
        assert np.isfinite(numbers.to_numpy(float)).all() and (numbers.to_numpy(float) >= 0).all()
        assert predicted["clv_365d"].gt(0).all()


def test_spend_tiers_partition_the_tenant_by_clv():
    clv = pd.Series([500.0, 400, 300, 300, 200, 100, 50, 10, 0, 0], index=[f"c{i}" for i in range(10)])
    tiers = spend_tiers(clv)
    assert tiers.notna().all() and set(tiers.cat.categories) == {"high", "medium", "low"}
    assert list(tiers) == ["high", "high", "medium", "medium", "medium", "low", "low", "low", "low", "low"]
    assert (spend_tiers(pd.Series([7.0] * 5)) == "low").all(), "ties never straddle tiers; all equal: all low"
    big = spend_tiers(pd.Series(np.random.default_rng(1).lognormal(3, 1, 10_001)))
    assert big.value_counts(normalize=True).to_dict() == pytest.approx(
        {"high": 0.2, "medium": 0.3, "low": 0.5}, abs=1e-3
    )


LABELLED = history(
    *HAND_MADE.to_dict("records"),
    order("10", "a", "2026-04-01T00:00", 40.0),  # the first instant after the cutoff: day 1
    order("11", "a", "2026-04-20T12:00", 60.0, refunded=15.0, updated="2026-04-25T00:00"),
    order("12", "a", "2026-04-28T12:00", 30.0, refunded=30.0, updated="2026-05-20T00:00"),  # refunded after H
    order("13", "b", "2026-04-10T12:00", 80.0, cancelled="2026-04-11T00:00", updated="2026-04-11T00:00"),
    order("14", "b", "2026-09-01T12:00", 25.0),
    order("15", "c", "2026-04-05T12:00", 1.0, test=True),
    order("16", None, "2026-04-05T12:00", 99.0),
)


def test_labels_of_every_target_on_a_hand_made_history():
    found = target_labels(LABELLED, pd.Series(["a", "b"]), DAY, "UTC", 30, date(2027, 6, 30)).set_index("customer_id")
    assert list(found.columns) == [*LABELS, "observed_days"] and set(LABELS) == {t.label for t in TARGETS}
    a, b = found.loc["a"], found.loc["b"]
    assert (a["orders"], a["revenue"], a["repurchased"]) == (3, 40 + 45 + 30, 1), (
        "a refund after the window is not in it"
    )
    assert (a["revenue_365d"], a["churned"], a["days_to_next_order"]) == (40 + 45 + 0, 0, 1)
    assert (b["orders"], b["revenue"], b["repurchased"]) == (0, 0, 1), "a placed order shows intent, a kept one spend"
    assert (b["revenue_365d"], b["churned"], b["days_to_next_order"]) == (25, 0, 10)
    assert (found["observed_days"] == (date(2027, 6, 30) - DAY).days).all()
    assert set(found.index[found["repurchased"] == 1]) == set(labels(LABELLED, DAY, "UTC", 30).index)


def test_labels_whose_window_is_still_open_are_missing_not_partial():
    young = target_labels(LABELLED, pd.Series(["a", "b"]), DAY, "UTC", 30, DAY + timedelta(days=20))
    assert young[["orders", "revenue", "repurchased", "revenue_365d", "churned"]].isna().all().all()
    assert young.set_index("customer_id")["days_to_next_order"].to_dict() == {"a": 1, "b": 10}
    mid = target_labels(LABELLED, pd.Series(["a", "b"]), DAY, "UTC", 30, DAY + timedelta(days=100))
    assert mid["orders"].notna().all() and mid["revenue_365d"].isna().all()
    assert mid.set_index("customer_id")["revenue"]["a"] == 40 + 45 + 30, "a matured label never changes afterwards"
    with pytest.raises(ValueError, match="data ends on"):
        target_labels(LABELLED, pd.Series(["a"]), DAY, "UTC", 30, DAY - timedelta(days=1))


def test_no_leakage_between_features_and_labels(small_shop):
    """Features never change when orders after the cutoff change; labels never when orders before it do."""
    orders, day = small_shop.raw_orders(), date(2026, 6, 30)
    cutoff = pd.Timestamp("2026-07-01", tz="America/New_York").tz_convert("UTC")
    before, after = orders.loc[orders["created_at"] < cutoff], orders.loc[orders["created_at"] >= cutoff]
    snapshot = feature_snapshot(orders, day, "America/New_York", 30)
    customers = snapshot["customer_id"]
    found = target_labels(orders, customers, day, "America/New_York", 30, small_shop.spec.end)

    other_future = pd.concat([before, after.sample(frac=0.5, random_state=1).assign(total_price=1.0)])
    pd.testing.assert_frame_equal(feature_snapshot(other_future, day, "America/New_York", 30), snapshot)
    other_past = pd.concat([before.sample(frac=0.5, random_state=2).assign(total_price=1.0), after])
    pd.testing.assert_frame_equal(
        target_labels(other_past, customers, day, "America/New_York", 30, small_shop.spec.end), found
    )
    assert found["repurchased"].sum() > 50 and (found["revenue_365d"].isna()).all()
    assert (found["days_to_next_order"].dropna() >= 1).all()
