"""Feature math on hand-made histories, leakage, and label windows in the tenant's timezone."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.ml.features import (
    FEATURES,
    cutoff_utc,
    feature_problems,
    feature_snapshot,
    labels,
    orders_as_of,
)

DAY = date(2026, 3, 31)


def order(order_id, customer, created, total, updated=None, cancelled=None, refunded=0.0, test=False, items=1):
    return {
        "order_id": order_id, "customer_id": customer, "created_at": pd.Timestamp(created, tz="UTC"),
        "updated_at": pd.Timestamp(updated or created, tz="UTC"),
        "cancelled_at": pd.Timestamp(cancelled, tz="UTC") if cancelled else pd.NaT,
        "total_price": total, "total_refunded": refunded, "is_test": test, "item_quantity": items,
    }  # fmt: skip


def history(*rows):
    frame = pd.DataFrame(list(rows)).astype({"customer_id": "string"})
    frame["cancelled_at"] = pd.to_datetime(frame["cancelled_at"], utc=True)
    return frame


HAND_MADE = history(
    order("1", "a", "2025-04-10T12:00", 100.0),
    order("2", "a", "2026-01-30T12:00", 50.0, refunded=10.0, updated="2026-02-05T12:00"),
    order("3", "a", "2026-03-30T12:00", 30.0, items=3),
    order("4", "b", "2026-03-01T00:00", 80.0, cancelled="2026-03-01T06:00", updated="2026-03-01T06:00"),
    order("5", "b", "2026-03-21T00:00", 20.0),
    order("6", None, "2026-03-20T00:00", 999.0),
    order("7", "c", "2026-03-25T00:00", 1.0, test=True),
)


def test_feature_math_on_a_hand_made_history():
    features = feature_snapshot(HAND_MADE, DAY, "UTC").set_index("customer_id")
    assert list(features.index) == ["a", "b"], "guests and test-only customers are not customers"
    a, b = features.loc["a"], features.loc["b"]
    assert a["frequency"] == 3 and a["recency_days"] == pytest.approx(1.5)
    assert a["tenure_days"] == pytest.approx(
        (pd.Timestamp("2026-04-01", tz="UTC") - pd.Timestamp("2025-04-10T12:00", tz="UTC")).days + 0.5
    )
    assert a["monetary_total"] == pytest.approx(170.0) and a["monetary_max"] == 100.0
    assert a["monetary_mean"] == pytest.approx(170 / 3)
    assert (a["first_order_value"], a["last_order_value"]) == (100.0, 30.0)
    assert (a["orders_7d"], a["orders_30d"], a["orders_90d"], a["orders_365d"]) == (1, 1, 2, 3)
    assert a["spend_90d"] == pytest.approx(70.0)
    gaps = [(pd.Timestamp("2026-01-30T12:00") - pd.Timestamp("2025-04-10T12:00")).days, 59]
    assert a["gap_mean_days"] == pytest.approx(np.mean(gaps)) and a["gap_std_days"] == pytest.approx(
        np.std(gaps, ddof=1)
    )
    assert a["recency_over_gap"] == pytest.approx(1.5 / np.mean(gaps))
    assert a["refund_share"] == pytest.approx(10 / 180) and a["cancel_share"] == 0
    assert a["items_per_order"] == pytest.approx(5 / 3)
    assert b["frequency"] == 1 and b["cancel_share"] == 0.5, "the cancelled order counts only in cancel_share"
    assert np.isnan(b["gap_mean_days"]) and feature_problems(features.reset_index()) == []


def test_later_orders_and_later_versions_do_not_change_a_snapshot():
    before = feature_snapshot(HAND_MADE, DAY, "UTC")
    later = history(
        *HAND_MADE.to_dict("records"),
        order("8", "a", "2026-04-01T00:00", 500.0),
        order("9", "d", "2026-04-02T00:00", 10.0),
        order("3", "a", "2026-03-30T12:00", 30.0, refunded=30.0, updated="2026-04-10T00:00"),
        order("5", "b", "2026-03-21T00:00", 20.0, cancelled="2026-04-03T00:00", updated="2026-04-03T00:00"),
    )
    pd.testing.assert_frame_equal(feature_snapshot(later, DAY, "UTC"), before)


def test_an_order_known_only_from_a_later_version_counts_with_its_later_state_masked():
    swept = history(
        order(
            "1", "a", "2026-03-30T00:00", 40.0, refunded=40.0, cancelled="2026-04-05T00:00", updated="2026-04-05T00:00"
        )
    )
    known = orders_as_of(swept, cutoff_utc(DAY, "UTC"))
    assert len(known) == 1 and known["total_refunded"].iloc[0] == 0 and pd.isna(known["cancelled_at"].iloc[0])
    assert feature_snapshot(swept, DAY, "UTC")["frequency"].tolist() == [1.0]


def test_day_boundaries_and_label_windows_follow_the_tenant_timezone():
    seoul = history(
        order("1", "a", "2026-01-31T14:30", 10.0),  # 23:30 on Jan 31 in Seoul
        order("2", "b", "2026-01-31T15:30", 10.0),  # 00:30 on Feb 1 in Seoul
        order("3", "b", "2026-03-02T14:59", 10.0),  # 23:59 on Mar 2 in Seoul: Jan 31 + 30 days, the last label day
        order("4", "c", "2026-01-01T00:00", 10.0),
        order("5", "c", "2026-03-02T15:01", 10.0),  # 00:01 on Mar 3 in Seoul: past the horizon
    )
    month_end = date(2026, 1, 31)
    features = feature_snapshot(seoul, month_end, "Asia/Seoul")
    assert set(features["customer_id"]) == {"a", "c"}
    assert set(labels(seoul, month_end, "Asia/Seoul", 30).index) == {"b"}
    assert set(labels(seoul, month_end, "UTC", 30).index) == {"b", "c"}, "in UTC the same orders fall differently"


def test_nan_checks_name_the_column():
    features = feature_snapshot(HAND_MADE, DAY, "UTC")
    features.loc[0, "monetary_total"] = np.nan
    assert feature_problems(features) == ["1 NaN in monetary_total"]
    assert set(FEATURES) <= set(features.columns)


def test_synthetic_snapshot_has_no_unexpected_nan(small_shop):

    features = feature_snapshot(small_shop.raw_orders(), date(2026, 9, 30), "America/New_York")
    assert len(features) > 500 and feature_problems(features) == []
    assert features["bgnbd_probability"].between(0, 1).all()
