"""Training sets, determinism and model behaviour."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.ml.baselines import BaselineModel, RecencyFrequencyBaseline
from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.models import fit_lightgbm, holdout_metrics
from mlops_assets.core.ml.training_data import TrainingPlan, build_training_set
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import TEST_END


@pytest.fixture(scope="module")
def built():
    shop = SyntheticShop(ShopSpec("model", customers=3000, seed=4, end=TEST_END, history_days=600))
    return build_training_set(shop.raw_orders(), TrainingPlan(TEST_END), "UTC", TEST_END)


def test_plan_keeps_every_label_window_before_the_next_split():
    plan = TrainingPlan(date(2026, 6, 30), horizon_days=30, train_snapshots=3, step_days=14)
    assert plan.holdout_day == date(2026, 5, 31) and plan.valid_day == date(2026, 5, 1)
    assert plan.train_days() == [date(2026, 3, 4), date(2026, 3, 18), date(2026, 4, 1)]
    days = plan.snapshots()
    for (earlier, _), (later, _) in zip(days, days[1:], strict=False):
        assert earlier < later
    assert plan.train_days()[-1] + timedelta(days=30) <= plan.valid_day


def test_training_set_has_three_time_ordered_splits(built):
    summary = built.summary()
    assert built.cold_start_reasons == []
    assert summary["train_rows"] > summary["valid_rows"] > 0 and summary["holdout_positives"] > 20
    by_split = built.frame.groupby("split")["snapshot"].agg(["min", "max"])
    assert by_split.loc["train", "max"] < by_split.loc["valid", "min"] < by_split.loc["holdout", "min"]


def test_a_short_history_trains_on_a_customer_split_and_keeps_a_time_based_holdout():
    """Nine months at H = 91 (CDNOW's shape) leave no training snapshot before c - 2H: the snapshots from
    c - 2H back train, one customer in five early-stops, and every label ends by the holdout's snapshot."""
    shop = SyntheticShop(ShopSpec("short", customers=1500, seed=7, end=TEST_END, history_days=272))
    plan = TrainingPlan(TEST_END, horizon_days=91)
    short = build_training_set(shop.raw_orders(), plan, "UTC", TEST_END)
    assert short.validation == "customer split" and short.cold_start_reasons == []
    train, valid, holdout = (short.split(name) for name in ("train", "valid", "holdout"))
    assert not set(train["customer_id"]) & set(valid["customer_id"])
    assert 0.1 < len(valid) / (len(train) + len(valid)) < 0.3 and set(valid["snapshot"]) <= set(train["snapshot"])
    label_ends = pd.concat([train, valid])["snapshot"].max() + pd.Timedelta(days=plan.horizon_days)
    assert label_ends <= holdout["snapshot"].min() == pd.Timestamp(plan.holdout_day)
    again = build_training_set(shop.raw_orders(), plan, "UTC", TEST_END)
    pd.testing.assert_frame_equal(again.frame, short.frame)


def test_a_long_history_validates_on_its_own_snapshot(built):
    assert built.validation == "snapshot" and built.ordered_splits() == [("train", "valid"), ("valid", "holdout")]


def test_labels_must_have_matured(small_shop):
    with pytest.raises(ValueError, match="labels have not matured"):
        build_training_set(small_shop.raw_orders(), TrainingPlan(TEST_END), "UTC", TEST_END - timedelta(days=1))


def test_thin_history_is_a_flagged_cold_start():
    shop = SyntheticShop(ShopSpec("newbie", customers=150, seed=1, end=TEST_END, history_days=120))
    thin = build_training_set(shop.raw_orders(), TrainingPlan(TEST_END), "UTC", TEST_END)
    assert any("days of history" in reason for reason in thin.cold_start_reasons)
    model = BaselineModel.fit(thin.split("train"), thin.split("holdout"))
    assert np.isfinite(model.predict(thin.split("holdout"))).all()


def test_lightgbm_is_bit_identical_across_runs_and_thread_counts(built):
    train, valid, holdout = built.split("train"), built.split("valid"), built.split("holdout")
    first = fit_lightgbm(train, valid, {"num_threads": 1}).predict(holdout)
    again = fit_lightgbm(train, valid, {"num_threads": 1}).predict(holdout)
    threads = fit_lightgbm(train, valid, {"num_threads": 2}).predict(holdout)
    assert first.tobytes() == again.tobytes() == threads.tobytes()


def test_model_beats_chance_and_tracks_the_baseline(built):
    holdout = built.split("holdout")
    model = fit_lightgbm(built.split("train"), built.split("valid"))
    metrics = holdout_metrics(holdout["label"], model.predict(holdout))
    baseline = holdout_metrics(holdout["label"], RecencyFrequencyBaseline.fit(built.split("train")).predict(holdout))
    assert metrics["holdout_auc"] > 0.75 and metrics["holdout_lift_top_decile"] > 2
    assert metrics["holdout_auc"] > baseline["holdout_auc"] - 0.02


def test_recent_frequent_buyer_outscores_a_lapsed_one_time_buyer(built):
    model = fit_lightgbm(built.split("train"), built.split("valid"))
    holdout = built.split("holdout")
    loyal = holdout[(holdout["recency_days"] < 7) & (holdout["frequency"] >= 4)]
    lapsed = holdout[(holdout["recency_days"] > 300) & (holdout["frequency"] == 1)]
    assert len(loyal) and len(lapsed)
    assert model.predict(loyal).min() > model.predict(lapsed).max()


def test_scores_do_not_depend_on_customer_order(built):
    model = fit_lightgbm(built.split("train"), built.split("valid"))
    holdout = built.split("holdout")
    shuffled = holdout.sample(frac=1.0, random_state=3)
    straight = pd.Series(model.predict(holdout), index=holdout["customer_id"].to_numpy())
    mixed = pd.Series(model.predict(shuffled), index=shuffled["customer_id"].to_numpy())
    pd.testing.assert_series_equal(straight.sort_index(), mixed.sort_index())


def test_holdout_metrics_on_known_cases():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    perfect = holdout_metrics(y, y * 0.9 + 0.05)
    assert perfect["holdout_auc"] == 1.0 and perfect["holdout_precision_top_decile"] == 1.0
    assert perfect["holdout_lift_top_decile"] == pytest.approx(5.0)
    assert np.isnan(holdout_metrics(np.zeros(5), np.full(5, 0.1))["holdout_auc"])
    assert set(FEATURES) >= {"recency_days", "frequency", "bgnbd_probability"}


def test_bgnbd_fit_finds_lifetimes_optimum():
    """The hand-written gradient replaces autograd's, not the model: same optimum as lifetimes' own fit."""
    import contextlib
    import io
    import warnings
    from datetime import date

    from lifetimes import BetaGeoFitter

    from mlops_assets.core.ml.baselines import bgnbd_probability
    from mlops_assets.core.ml.features import feature_snapshot
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    shop = SyntheticShop(ShopSpec("bg", customers=600, seed=2, end=date(2026, 11, 21), history_days=420))
    snapshot = feature_snapshot(shop.raw_orders(), date(2026, 6, 1), "UTC", 30)
    frequency = snapshot["frequency"].to_numpy(float) - 1
    age = snapshot["tenure_days"].to_numpy(float)
    recency = (age - snapshot["recency_days"].to_numpy(float)).clip(min=0)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        reference = BetaGeoFitter(penalizer_coef=0.001).fit(frequency, recency, age)
    expected = reference.conditional_expected_number_of_purchases_up_to_time(30, frequency, recency, age)
    assert np.abs(bgnbd_probability(snapshot, 30) - (1 - np.exp(-np.asarray(expected, float)))).max() < 1e-9
