"""Every gate passes on clean data and fails on data planted with its fault."""

from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from mlops_assets.core.sources import quality
from mlops_assets.core.sources.shopify import ShopifyClient

DAY = date(2026, 10, 20)
ZONE = "America/New_York"


@pytest.fixture
def clean(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(40, 1000.0))
    with ShopifyClient(emulator.shop_url("acme"), "shpat_test_token", tenant_id="acme") as api:
        orders = api.fetch_day("orders", DAY, ZoneInfo(ZONE))[0].frame
        customers = api.fetch_day("customers", DAY, ZoneInfo(ZONE))[0].frame
    return {"orders": orders, "customers": customers}


def context(resource="orders", **overrides):
    values = dict(
        resource=resource,
        tenant_id="acme",
        day=DAY,
        timezone=ZONE,
        currency="USD",
        trailing_row_counts=(25,) * 14,
        trailing_median_order_value=55.0,
    )
    return quality.PartitionContext(**{**values, **overrides})


def evaluate(name, frame, ctx):
    gate = next(g for g in quality.GATES if g.name == name)
    return gate.evaluate(frame, ctx)


@pytest.mark.parametrize("gate", quality.GATES, ids=lambda g: g.name)
def test_every_gate_passes_on_clean_data(gate, clean):
    for resource in gate.resources:
        outcome = gate.evaluate(clean[resource], context(resource, trailing_row_counts=(len(clean[resource]),) * 14))
        assert outcome.passed, outcome.description


def planted(frame, **changes):
    frame = frame.copy()
    for column, (row, value) in changes.items():
        frame.loc[frame.index[row], column] = value
    return frame


PLANTS = {
    "schema_valid": lambda f: f.drop(columns=["currency"]),
    "unique_ids": lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True),
    "non_negative_amounts": lambda f: planted(f, total_price=(0, -5.0)),
    "currency_matches_tenant": lambda f: planted(f, currency=(1, "EUR")),
    "timestamps_in_day": lambda f: planted(f, updated_at=(0, pd.Timestamp("2026-10-22T12:00Z"))),
    "no_extreme_outliers": lambda f: planted(f, total_price=(2, 55.0 * 1000 + 1)),
    "row_count_in_range": lambda f: f.iloc[:0],
}


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_each_gate_fails_on_its_planted_fault_naming_tenant_day_and_fix(name, clean):
    ctx = context(trailing_row_counts=(len(clean["orders"]) * 10,) * 14) if name == "row_count_in_range" else context()
    outcome = evaluate(name, PLANTS[name](clean["orders"]), ctx)
    assert not outcome.passed
    assert "tenant acme 2026-10-20" in outcome.description and "fix" in outcome.description


def test_schema_gate_catches_wrong_types_and_empty_required_fields(clean):
    wrong_type = clean["orders"].astype({"total_price": "string"})
    wrong_type.loc[wrong_type.index[0], "total_price"] = "ten"
    assert not evaluate("schema_valid", wrong_type, context()).passed
    assert not evaluate("schema_valid", planted(clean["orders"], created_at=(0, pd.NaT)), context()).passed


def test_refund_above_total_is_caught(clean):
    frame = planted(clean["orders"], total_refunded=(0, clean["orders"]["total_price"].iloc[0] + 1))
    assert not evaluate("non_negative_amounts", frame, context()).passed


def test_quarantine_share_warns_above_five_percent(clean):
    rows = len(clean["orders"])
    assert evaluate("quarantine_share", clean["orders"], context(quarantined=rows // 30)).passed
    assert not evaluate("quarantine_share", clean["orders"], context(quarantined=rows // 5)).passed


def test_volume_and_outlier_gates_wait_for_history(clean):
    assert evaluate("row_count_in_range", clean["orders"].iloc[:0], context(trailing_row_counts=(25,) * 3)).passed
    assert evaluate("no_extreme_outliers", clean["orders"], context(trailing_median_order_value=None)).passed


def test_blocking_gates_are_those_that_protect_training():
    blocking = {gate.name for gate in quality.GATES if gate.blocking}
    assert blocking == {
        "schema_valid",
        "unique_ids",
        "non_negative_amounts",
        "currency_matches_tenant",
        "timestamps_in_day",
        "no_extreme_outliers",
    }
