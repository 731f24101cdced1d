"""Each drift scenario against the shop's ground truth: the truth moves as the scenario says, realized orders
follow it, nothing before the start day changes, and broken data leaves the truth alone."""

from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.sim.oracle import ground_truth, oracle
from mlops_assets.sim.scenarios import (
    SCENARIOS,
    AcquisitionShift,
    ChannelBehaviour,
    LevelShift,
    Scenario,
    parse_scenario,
)
from mlops_assets.sim.shops import CHANNELS, ShopSpec, SyntheticShop

END = date(2026, 6, 30)
START = END - timedelta(days=120)
AFTER = START + timedelta(days=30)  # an as-of day a month into the scenario, its 30-day horizon complete


@cache
def shop(name: str | None = None, customers: int = 3000) -> SyntheticShop:
    scenario = SCENARIOS[name](START) if name else None
    return SyntheticShop(
        ShopSpec("drifting", customers=customers, seed=5, end=END, history_days=500, scenario=scenario)
    )


def fingerprint(frame: pd.DataFrame) -> int:
    return int(pd.util.hash_pandas_object(frame, index=True).sum() % 2**61)


def pre_start_customers(truth: pd.DataFrame) -> pd.DataFrame:
    """The ground truth of customers acquired before the start, with their channel."""
    base = shop().truth
    start_t = shop().day_index(START)
    known = base.loc[base["acquired_at_day"] < start_t, ["customer_id", "channel"]]
    return truth.merge(known, on="customer_id")


def orders_since_start(subject: SyntheticShop) -> np.ndarray:
    since = subject.order_time >= subject.day_index(START)
    return np.bincount(subject.order_owner[since], minlength=len(subject.truth))


def test_shops_without_a_scenario_are_what_they_were_before_scenarios_existed():
    # fingerprints taken on main before `sim.scenarios` (commit 44d5f6c), and LevelShift as DriftScenario was
    calm = SyntheticShop(
        ShopSpec("calm", customers=400, seed=7, end=date(2026, 6, 30), history_days=300, timezone="Europe/Berlin")
    )
    assert fingerprint(calm.orders.drop(columns="currency")) == 137001600212899142
    assert fingerprint(calm.customers) == 2302663237012900052
    assert fingerprint(calm.raw_orders()) == 423843316300628015
    assert (calm.orders["currency"] == "USD").all()
    level = LevelShift(date(2026, 5, 1), rate_factor=0.4, value_factor=10.0)
    shifted = SyntheticShop(
        ShopSpec("lvl", customers=500, seed=3, end=date(2026, 6, 30), history_days=300, scenario=level)
    )
    assert fingerprint(shifted.orders.drop(columns="currency")) == 2257212228620207365


@pytest.mark.parametrize(
    "name", ["channel_flip", "comeback", "quarterly_rhythm", "acquisition_surge", "currency_switch", "tracking_outage"]
)
def test_a_scenario_leaves_every_order_before_its_start_alone(name):
    before = pd.Timestamp(START, tz="UTC")
    drifted, calm = shop(name).orders, shop().orders
    pd.testing.assert_frame_equal(
        drifted[drifted["created_at"] < before].reset_index(drop=True),
        calm[calm["created_at"] < before].reset_index(drop=True),
    )
    assert drifted["order_id"].is_unique and drifted["created_at"].is_monotonic_increasing


def test_channel_flip_makes_one_channel_loyal_and_the_other_churn_in_truth_and_orders():
    flipped = pre_start_customers(ground_truth(shop("channel_flip"), AFTER, 30))
    calm = pre_start_customers(ground_truth(shop(), AFTER, 30))
    for column, factor in (("p_alive", 1.03), ("expected_orders_h", 2.0), ("expected_spend_365d", 2.0)):
        change = flipped.groupby("channel")[column].mean() / calm.groupby("channel")[column].mean()
        assert change["social"] > factor and change["email"] < 1 / factor, (column, change)
        assert change[["organic", "paid_search", "referral"]].to_numpy() == pytest.approx(1.0, rel=1e-9)
    after, before = (truth.groupby("channel")["expected_orders_365d"].mean() for truth in (flipped, calm))
    assert before["email"] > before["social"] and after["social"] > after["email"], "the two channels swap ranks"

    channel = shop().truth["channel"].to_numpy()
    realized = {key: orders_since_start(shop(key)) for key in ("channel_flip", None)}
    social, email = channel == "social", channel == "email"
    assert realized["channel_flip"][social].sum() > 1.3 * realized[None][social].sum()
    assert realized["channel_flip"][email].sum() < 0.7 * realized[None][email].sum()
    features = feature_snapshot(shop("channel_flip").raw_orders(), AFTER, "UTC", 30).columns
    assert not [name for name in features if "channel" in name or "tag" in name], "seen only through behaviour"


def test_comeback_brings_lapsed_customers_back_alive_and_ordering():
    drifted, calm = shop("comeback"), shop()
    start_t = calm.day_index(START)
    lapsed = (calm.truth["death_at_day"] < start_t).to_numpy() & drifted.truth["revived"].to_numpy()
    assert lapsed.sum() > 150
    ordered = orders_since_start(drifted)[lapsed] > 0
    assert orders_since_start(calm)[lapsed].sum() == 0 and ordered.mean() > 0.3
    ids = drifted.truth.loc[lapsed, "customer_id"]
    back = ground_truth(drifted, AFTER, 30).set_index("customer_id").loc[ids]
    gone = ground_truth(calm, AFTER, 30).set_index("customer_id").loc[ids]
    assert gone["p_alive"].mean() < 0.5 < back["p_alive"].mean()
    assert back["expected_orders_h"].mean() > 3 * gone["expected_orders_h"].mean()


def test_quarterly_rhythm_slows_the_monthly_segment_only():
    drifted = shop("quarterly_rhythm")
    days_between = 1 / shop().truth["purchase_rate"].to_numpy()
    monthly = (days_between >= 15) & (days_between <= 45)
    assert monthly.sum() > 200
    assert drifted.truth.loc[monthly, "purchase_rate_after"].to_numpy() == pytest.approx(1 / 90)
    truth = ground_truth(drifted, AFTER, 30).set_index("customer_id")
    calm = ground_truth(shop(), AFTER, 30).set_index("customer_id")
    ids = shop().truth["customer_id"]
    segment, others = ids[monthly & (ids.isin(calm.index))], ids[~monthly & ids.isin(calm.index)]
    ratio = truth.loc[segment, "expected_orders_h"].sum() / calm.loc[segment, "expected_orders_h"].sum()
    assert 0.25 < ratio < 0.55
    assert truth.loc[others, "expected_orders_h"].to_numpy() == pytest.approx(
        calm.loc[others, "expected_orders_h"].to_numpy(), rel=1e-9
    )
    assert orders_since_start(drifted)[monthly].sum() < 0.6 * orders_since_start(shop())[monthly].sum()


def test_acquisition_shift_moves_the_mix_of_new_customers_not_behaviour_given_the_channel():
    drifted, calm = shop("acquisition_surge"), shop()
    new = (calm.truth["acquired_at_day"] >= calm.day_index(START)).to_numpy()
    assert new.sum() > 200
    mix = drifted.truth.loc[new, "channel"].value_counts(normalize=True)
    assert mix["social"] == pytest.approx(0.6, abs=0.1) and "email" not in mix
    assert calm.truth.loc[new, "channel"].value_counts(normalize=True)["social"] < 0.3

    def propensity(subject: SyntheticShop) -> pd.DataFrame:
        """Each customer's latent rates over their channel's: what behaviour given the channel is drawn from."""
        truth = subject.truth
        channel = truth["channel"].map({name: (spec.rate, spec.dropout) for name, spec in CHANNELS.items()})
        return pd.DataFrame(
            {
                "rate": truth["purchase_rate"] / channel.str[0],
                "dropout": truth["dropout_rate"] / channel.str[1],
            }
        )

    pd.testing.assert_frame_equal(propensity(drifted), propensity(calm))
    pd.testing.assert_frame_equal(
        pre_start_customers(ground_truth(drifted, AFTER, 30)), pre_start_customers(ground_truth(calm, AFTER, 30))
    )


def test_slow_trend_moves_the_level_along_a_line_and_level_shift_at_once():
    days = pd.date_range(START - timedelta(days=10), periods=140, freq="D")
    calm = shop().intensity_on(days)
    trend = shop("slow_trend").intensity_on(days) / calm
    assert trend[:10] == pytest.approx(1.0) and trend[10 + 60] == pytest.approx(0.75)
    assert trend[10 + 120 :] == pytest.approx(0.5) and (np.diff(trend) <= 1e-12).all()
    step = shop("level_shift").intensity_on(days) / calm
    assert step[:10] == pytest.approx(1.0) and step[10:] == pytest.approx(0.5)
    assert shop("level_shift").value_factor_on(days)[10:] == pytest.approx(4.0)


def test_tracking_outage_drops_about_half_the_orders_of_exactly_three_days_and_not_the_truth():
    drifted, calm = shop("tracking_outage", customers=6000), shop(customers=6000)

    def per_day(subject: SyntheticShop) -> pd.Series:
        return subject.orders["created_at"].dt.date.value_counts().sort_index()

    lost = 1 - per_day(drifted).reindex(per_day(calm).index, fill_value=0) / per_day(calm)
    outage = [START + timedelta(days=k) for k in range(3)]
    assert lost.loc[outage].mean() == pytest.approx(0.5, abs=0.12)
    assert (lost.drop(outage) == 0).all(), "every other day keeps all its orders"
    pd.testing.assert_frame_equal(ground_truth(drifted, AFTER, 30), ground_truth(calm, AFTER, 30))


def test_currency_switch_changes_the_currency_and_amounts_from_its_day_and_not_the_truth():
    drifted, calm = shop("currency_switch"), shop()
    switched = (drifted.orders["created_at"] >= pd.Timestamp(START, tz="UTC")).to_numpy()
    assert (drifted.orders.loc[switched, "currency"] == "JPY").all()
    assert (drifted.orders.loc[~switched, "currency"] == "USD").all()
    assert drifted.orders.loc[switched, "total_price"].to_numpy() == pytest.approx(
        150 * calm.orders.loc[switched, "total_price"].to_numpy(), abs=0.01
    )
    assert set(drifted.raw_orders()["currency"]) == {"USD", "JPY"}
    pd.testing.assert_frame_equal(ground_truth(drifted, AFTER, 30), ground_truth(calm, AFTER, 30))


@pytest.mark.parametrize("name", ["channel_flip", "comeback", "quarterly_rhythm"])
def test_the_truth_across_the_start_day_matches_what_customers_then_did(name):
    subject = shop(name, customers=6000)
    day = START - timedelta(days=10)  # the 30-day window straddles the change
    truth = ground_truth(subject, day, 30)
    t0 = subject.day_index(day) + 1
    window = (subject.order_time >= t0) & (subject.order_time < t0 + 30)
    known = subject.truth["acquired_at_day"].to_numpy() < t0
    placed = np.bincount(subject.order_owner[window], minlength=len(subject.truth))[known]
    expected = truth["expected_orders_h"] / (1 - subject.spec.dirt.cancel_rate)
    assert abs(expected.mean() - placed.mean()) < 4 * placed.std() / np.sqrt(len(placed))
    chances = oracle(subject, day, 30)
    assert abs(chances["p_true"].mean() - chances["ordered"].mean()) < 4 * chances["ordered"].std() / np.sqrt(
        len(chances)
    )


def test_scenario_options_parse_and_bad_ones_name_the_fix():
    assert parse_scenario("channel_flip@2026-05-01", END) == ChannelBehaviour(
        date(2026, 5, 1), loyal="social", churning="email"
    )
    assert parse_scenario("acquisition_surge", END).start == END
    assert all(isinstance(make(START), Scenario) for make in SCENARIOS.values())
    with pytest.raises(ValueError, match="unknown.*fix: one of channel_flip"):
        parse_scenario("flip", END)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_scenario("comeback@yesterday", END)
    with pytest.raises(ValueError, match="unknown channel.*fix"):
        AcquisitionShift(START, mix={"tiktok": 1.0})
    with pytest.raises(ValueError, match="outside the history"):
        ShopSpec("early", end=END, history_days=100, scenario=ChannelBehaviour(END - timedelta(days=200)))
