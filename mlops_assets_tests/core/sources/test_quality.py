"""Gates over a screened partition: rule gates warn with ids and the fix, only unusable data blocks."""

import pandas as pd
import pytest

from mlops_assets.core.sources import quality
from mlops_assets.core.sources.screening import screen
from mlops_assets_tests.core.sources.planted import context, planted


def evaluate(name, screened, ctx):
    gate = next(g for g in quality.GATES if g.name == name)
    return gate.evaluate(screened, ctx)


@pytest.mark.parametrize("gate", quality.GATES, ids=lambda g: g.name)
def test_every_gate_passes_on_clean_data(gate, clean):
    for resource in gate.resources:
        ctx = context(resource, trailing_row_counts=(len(clean[resource]),) * 14)
        outcome = gate.evaluate(screen(clean[resource], ctx), ctx)
        assert outcome.passed, outcome.description


def test_blocking_gates_are_those_that_find_the_data_unusable_as_a_whole():
    assert {gate.name for gate in quality.GATES if gate.blocking} == {"schema_valid", "usable_partition"}


RULE_GATES = {
    "unique_ids": lambda f: pd.concat([f, planted(f.iloc[[0]], total_price=(0, 1.5))], ignore_index=True),
    "non_negative_amounts": lambda f: planted(f, total_price=(0, -5.0)),
    "currency_matches_tenant": lambda f: planted(f, currency=(1, "EUR")),
    "timestamps_in_day": lambda f: planted(f, updated_at=(0, pd.Timestamp("2026-10-22T12:00Z"))),
}


@pytest.mark.parametrize("name", sorted(RULE_GATES))
def test_a_rule_gate_warns_naming_count_ids_and_fix_and_the_rest_is_kept(name, clean):
    ctx = context()
    screened = screen(RULE_GATES[name](clean["orders"]), ctx)
    outcome = evaluate(name, screened, ctx)
    assert not outcome.passed and not next(g for g in quality.GATES if g.name == name).blocking
    assert outcome.description.startswith("tenant acme 2026-10-20: ") and "(fix: " in outcome.description
    assert outcome.metadata["sample_ids"] and outcome.metadata["sample_ids"][0] in outcome.description
    assert evaluate("usable_partition", screened, ctx).passed
    assert len(screened.frame) >= len(clean["orders"]) - 1


def test_the_outlier_gate_reports_the_limit_it_used(clean):
    frame = planted(clean["orders"], total_price=(2, 99_999_999.0))
    from mlops_assets.core.sources.screening import outlier_limit

    ctx = context(outliers=outlier_limit(frame["total_price"], 1000))
    outcome = evaluate("no_extreme_outliers", screen(frame, ctx), ctx)
    assert not outcome.passed and "extreme_outlier (1)" in outcome.description
    assert outcome.metadata["outlier_limit"] < 99_999_999 and outcome.metadata["quarantined"] == 1
    assert evaluate("no_extreme_outliers", screen(clean["orders"], context()), context()).metadata == {
        "median_order_value": None
    }


def test_most_rows_quarantined_blocks_naming_the_reason_first_ids_and_fix(clean):
    frame = clean["orders"].copy()
    bad = frame.index[: len(frame) // 2 + 1]
    frame.loc[bad, "total_price"] = -frame.loc[bad, "total_price"]
    assert len(bad) >= 10
    screened = screen(frame, context())
    outcome = evaluate("usable_partition", screened, context())
    assert not outcome.passed
    first = sorted(frame.loc[bad, "order_id"])[0]
    assert outcome.description.startswith(f"tenant acme 2026-10-20: {len(bad)} of {len(frame)} orders quarantined")
    assert "negative_amount" in outcome.description and first in outcome.description
    assert "(fix: check the order in the shop)" in outcome.description
    assert outcome.metadata["dominant_reason"] == "negative_amount"


def test_a_tiny_shops_bad_orders_are_record_faults(clean):
    frame = planted(clean["orders"].iloc[:3], total_price=(0, -1.0), currency=(1, "EUR"))
    frame = planted(frame, currency=(2, "EUR"))
    assert evaluate("usable_partition", screen(frame, context()), context()).passed


def test_a_volume_collapse_blocks_where_the_usual_volume_is_large_enough(clean):
    few = screen(clean["orders"].iloc[:4], context())
    collapsed = evaluate("usable_partition", few, context(trailing_row_counts=(100,) * 14))
    assert not collapsed.passed and "trailing median of 100" in collapsed.description and "fix" in collapsed.description
    assert evaluate("usable_partition", few, context(trailing_row_counts=(40,) * 14)).passed
    assert evaluate("usable_partition", screen(clean["customers"].iloc[:1], context("customers")), context(
        "customers", trailing_row_counts=(100,) * 14
    )).passed, "customers have no volume rule"  # fmt: skip


def test_schema_gate_catches_missing_columns_wrong_types_and_empty_required_fields(clean):
    wrong_type = clean["orders"].astype({"total_price": "string"})
    wrong_type.loc[wrong_type.index[0], "total_price"] = "ten"
    for frame in (
        clean["orders"].drop(columns=["currency"]),
        wrong_type,
        planted(clean["orders"], created_at=(0, pd.NaT)),
    ):
        outcome = evaluate("schema_valid", screen(frame, context()), context())
        assert not outcome.passed and outcome.description.startswith("tenant acme 2026-10-20")
        assert "(fix: " in outcome.description
    assert f"created_at (first order_ids: {clean['orders']['order_id'].iloc[0]})" in outcome.description


def test_quarantine_share_warns_above_five_percent(clean):
    frame = clean["orders"]
    one = screen(planted(frame, total_price=(0, -1.0)), context())
    assert evaluate("quarantine_share", one, context()).passed == (1 / len(frame) <= 0.05)
    several = planted(frame, total_price=(0, -1.0), currency=(1, "EUR"), total_refunded=(2, 10**6))
    outcome = evaluate("quarantine_share", screen(several, context()), context())
    assert not outcome.passed and outcome.metadata["by_reason"] == {
        "foreign_currency": 1, "negative_amount": 1, "over_refunded": 1
    }  # fmt: skip


def test_volume_waits_for_history(clean):
    empty = screen(clean["orders"].iloc[:0], context())
    assert evaluate("row_count_in_range", empty, context(trailing_row_counts=(25,) * 3)).passed
    assert not evaluate("row_count_in_range", empty, context(trailing_row_counts=(250,) * 14)).passed
