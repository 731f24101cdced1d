"""The quarantine ledger on SQLite and PostgreSQL: balanced rows, re-runs replace, releases, tenant scoping."""

from datetime import timedelta

import pytest

from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay, QuarantineLedger
from mlops_assets_tests.helpers import TEST_END


def test_a_rerun_replaces_its_day_and_summaries_add_days_up(warehouse_url):
    ledger = QuarantineLedger(warehouse_url)
    ledger.record(IngestionDay("alpha", "raw_orders", TEST_END, 10, 8, {"extreme_outlier": 2}))
    ledger.record(IngestionDay("alpha", "raw_orders", TEST_END, 10, 9, {"extreme_outlier": 1}))
    ledger.record(
        IngestionDay("alpha", "raw_orders", TEST_END - timedelta(days=1), 5, 4, {"invalid_record": 1}),
        IngestionDay("beta", "raw_orders", TEST_END, 3, 3),
    )  # a run's partitions at once
    summary = ledger.summaries(TEST_END - timedelta(days=6))
    assert summary["alpha"].rows_read == 15 and summary["alpha"].quarantined == 2
    assert summary["alpha"].by_reason == {"extreme_outlier": 1, "invalid_record": 1}
    assert summary["beta"].share == 0.0
    assert ledger.summaries(TEST_END)["alpha"].quarantined == 1
    assert [row["rows_written"] for row in ledger.days("alpha")] == [4, 9]


def test_a_sweep_replaces_every_row_of_its_asset_and_no_other(warehouse_url):
    ledger, old = QuarantineLedger(warehouse_url), TEST_END - timedelta(days=400)
    ledger.record(IngestionDay("alpha", "raw_orders", TEST_END, 4, 4))
    ledger.replace("alpha", "raw_orders_history", [IngestionDay("alpha", "raw_orders_history", old, 2, 1, {"x": 1})])
    swept = [IngestionDay("alpha", "raw_orders_history", old + timedelta(days=k), 3, 3) for k in (1, 2)]
    ledger.replace("alpha", "raw_orders_history", swept)
    assert [(row["asset"], row["day"]) for row in ledger.days("alpha")] == [
        ("raw_orders_history", old + timedelta(days=1)), ("raw_orders_history", old + timedelta(days=2)),
        ("raw_orders", TEST_END),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="tenant alpha raw_orders_history: every day"):
        ledger.replace("alpha", "raw_orders_history", [IngestionDay("beta", "raw_orders_history", old, 1, 1)])


def test_an_unbalanced_day_is_refused_naming_the_tenant():
    with pytest.raises(ValueError, match="tenant alpha raw_orders .* 10 rows read but 8 written and 1 quarantined"):
        IngestionDay("alpha", "raw_orders", TEST_END, 10, 8, {"extreme_outlier": 1})


def test_releases_are_per_tenant_and_recorded_once(warehouse_url):
    ledger = QuarantineLedger(warehouse_url)
    assert ledger.release("alpha", "1001", "extreme_outlier", "ops@example.com", "confirmed with the shop")
    assert not ledger.release("alpha", "1001", "extreme_outlier", "ops@example.com")
    assert ledger.released("alpha") == {"1001"} and ledger.released("beta") == frozenset()
    assert ledger.releases("alpha")[0]["note"] == "confirmed with the shop"
    ledger.forget("alpha")
    assert ledger.released("alpha") == frozenset()


def test_since_reads_every_tenants_days_in_one_query(warehouse_url):
    ledger = QuarantineLedger(warehouse_url)
    rows = [
        IngestionDay("beta", "raw_orders", TEST_END, 3, 3),
        IngestionDay("alpha", "raw_customers", TEST_END, 4, 3, {"invalid_record": 1}),
        IngestionDay("alpha", "raw_orders", TEST_END - timedelta(days=9), 5, 5),
    ]
    for row in rows:
        ledger.record(row)
    assert ledger.since(TEST_END - timedelta(days=7)) == [rows[1], rows[0]]
