"""Record rules move exactly the rows that break them to the quarantine, and the robust outlier limit."""

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.sources.screening import OutlierLimit, outlier_limit, screen
from mlops_assets_tests.core.sources.planted import context, planted

NEXT_DAY = pd.Timestamp("2026-10-21T16:00Z")
WITH_LIMIT = OutlierLimit(median=50.0, log_spread=0.5, factor=20.0, reference_orders=100)  # limit 1000


def test_a_clean_day_passes_every_rule(clean):
    for resource, frame in clean.items():
        screened = screen(frame, context(resource, outliers=WITH_LIMIT if resource == "orders" else None))
        assert screened.quarantine.empty and screened.frame.equals(frame), resource
        assert screened.rows_read == len(frame) and screened.superseded == 0


RULE_PLANTS = {
    "negative_amount": dict(total_price=(0, -50.0)),
    "over_refunded": dict(total_refunded=(0, 10_000.0)),
    "foreign_currency": dict(currency=(0, "EUR")),
    "outside_day": dict(updated_at=(0, NEXT_DAY)),
    "extreme_outlier": dict(total_price=(0, 99_999_999.0)),
}


@pytest.mark.parametrize("reason", sorted(RULE_PLANTS))
def test_each_rule_quarantines_only_its_row_naming_tenant_field_value_and_fix(reason, clean):
    frame = planted(clean["orders"], **RULE_PLANTS[reason])
    screened = screen(frame, context(outliers=WITH_LIMIT))
    bad_id = frame["order_id"].iloc[0]
    assert list(screened.quarantine["record_id"]) == [bad_id]
    assert screened.by_reason == {reason: 1}
    assert set(screened.frame["order_id"]) == set(frame["order_id"]) - {bad_id}
    error = screened.quarantine["error"].iloc[0]
    field = next(iter(RULE_PLANTS[reason]))
    assert error.startswith(f"tenant acme 2026-10-20: order {bad_id}: {field}=") and "(fix: " in error, error
    assert screened.quarantine["day"].iloc[0].isoformat() == "2026-10-20"


def test_an_order_created_after_its_update_is_outside_its_day(clean):
    frame = planted(clean["orders"], created_at=(1, clean["orders"]["updated_at"].iloc[1] + pd.Timedelta(hours=1)))
    assert screen(frame, context()).by_reason == {"outside_day": 1}


def test_a_row_breaking_several_rules_is_quarantined_once_for_the_first(clean):
    frame = planted(clean["orders"], total_price=(0, -5.0), currency=(0, "EUR"))
    assert screen(frame, context()).by_reason == {"negative_amount": 1}


def test_versions_identical_copies_and_conflicting_duplicates(clean):
    orders = clean["orders"]
    older = planted(orders.iloc[[0]], updated_at=(0, orders["updated_at"].iloc[0] - pd.Timedelta(minutes=5)))
    older = planted(older, total_price=(0, 1.0))
    conflicting = planted(orders.iloc[[1]], total_price=(0, orders["total_price"].iloc[1] + 1))
    frame = pd.concat([orders, older, orders.iloc[[2]], conflicting], ignore_index=True)
    screened = screen(frame, context())
    assert screened.by_reason == {"conflicting_duplicate": 2}, "both copies of the conflicting id"
    assert set(screened.quarantine["record_id"]) == {orders["order_id"].iloc[1]}
    assert screened.superseded == 2, "the older version and the identical copy are folded, not dropped"
    kept = screened.frame.set_index("order_id")
    assert kept.loc[orders["order_id"].iloc[0], "total_price"] == orders["total_price"].iloc[0], "latest wins"
    assert screened.frame["order_id"].is_unique
    assert screened.rows_read + screened.superseded == len(frame)


def test_customers_follow_their_rules(clean):
    frame = planted(clean["customers"], updated_at=(0, NEXT_DAY))
    assert screen(frame, context("customers")).by_reason == {"outside_day": 1}


def test_a_released_order_is_kept_despite_the_outlier_rule(clean):
    frame = planted(clean["orders"], total_price=(0, 99_999_999.0))
    released = frozenset({frame["order_id"].iloc[0]})
    assert screen(frame, context(outliers=WITH_LIMIT), released).quarantine.empty


def test_validation_quarantine_comes_along_and_a_broken_schema_is_left_to_the_gate(clean):
    invalid = screen(planted(clean["orders"], total_price=(0, -1.0)), context()).quarantine.assign(
        reason="invalid_record", record_id="x"
    )
    carried = screen(clean["orders"], context(), quarantined=invalid)
    assert carried.by_reason == {"invalid_record": 1} and len(carried.frame) == len(clean["orders"])
    broken = clean["orders"].drop(columns=["currency"])
    assert screen(broken, context()).frame is broken


def test_no_outlier_judgement_below_five_reference_orders():
    assert outlier_limit([25.0] * 4, 1000) is None
    assert outlier_limit([25.0] * 4 + [0.0, -3.0, np.nan], 1000) is None, "only positive values count"
    assert outlier_limit([25.0] * 5, 1000) is not None


def test_a_shop_of_identical_orders_still_tolerates_twenty_times_its_median():
    limit = outlier_limit([25.0] * 40, 1000)  # MAD = 0: the spread floor decides
    assert limit.median == pytest.approx(25.0) and limit.factor == pytest.approx(np.exp(3))
    assert 500 < limit.limit < 503


def test_the_limit_follows_the_shops_spread_up_to_its_outlier_factor():
    rng = np.random.default_rng(1)
    typical = outlier_limit(np.exp(rng.normal(np.log(25), 0.7, 4000)), 1000)
    assert 20 < typical.factor < 1000 and typical.factor == pytest.approx(np.exp(6 * 0.7), rel=0.1)
    wide = np.exp(rng.normal(np.log(25), 2.0, 4000))
    assert outlier_limit(wide, 1000).factor == 1000 and outlier_limit(wide, 200).factor == 200


def test_the_fat_finger_order_is_far_above_the_limit_and_cannot_move_it():
    rng = np.random.default_rng(2)
    values = np.round(np.exp(rng.normal(np.log(25), 0.6, 4000)), 2)
    clean, dirty = outlier_limit(values, 1000), outlier_limit(np.append(values, [99_999_999.0] * 3), 1000)
    assert dirty.limit < 99_999_999 and values.max() < dirty.limit
    assert dirty.limit == pytest.approx(clean.limit, rel=0.01)
