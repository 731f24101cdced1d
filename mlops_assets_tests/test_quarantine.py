"""The operator's quarantine commands on a file tenant, run as a user would: `mlops quarantine list`, the release of
a confirmed order (refused for what only the source can fix), its partition ingested again, and the order in the
lake and in the next run's features.

Ingestion's screening fills the quarantine: an order 5,000 times the median (above any tenant's outlier limit) is an
`extreme_outlier`, a refund row matching no order of its customer an `unmatched_refund`; a file from before reason
codes (no `reason` column) is planted beside them.
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from mlops_assets.core.lake import files as lake
from mlops_assets.core.sources.reasons import REASONS
from mlops_assets.core.warehouse.quarantine_ledger import QuarantineLedger
from mlops_assets.sim.shops import ShopSpec, SyntheticShop, transaction_export
from mlops_assets_tests.helpers import customer_orders, lake_customer_orders, mlops

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
DAY = YESTERDAY - timedelta(days=2)
TENANT = "umbrella"
BEFORE_REASONS = pa.schema([("record_id", pa.string()), ("error", pa.string()), ("record", pa.string())])


@pytest.fixture
def tenant(mlops_home):
    """A file tenant with its history and DAY ingested; DAY's first order made 5,000x the median, and a stray refund."""
    shop = SyntheticShop(ShopSpec(TENANT, customers=300, seed=3, end=YESTERDAY, history_days=60))
    export = transaction_export(shop)
    outlier = export.index[export["timestamp"].str.startswith(DAY.isoformat())][0]
    export.loc[outlier, "amount"] = round(float(export["amount"].median()) * 5000, 2)
    row = export.loc[outlier]
    stray = {"order_id": "refund-1", "customer_id": "ghost", "timestamp": f"{DAY}T12:00:00Z", "amount": -50.0,
             "quantity": 1}  # fmt: skip
    export = pd.concat([export, pd.DataFrame([stray])], ignore_index=True)
    path = mlops_home / f"{TENANT}.csv"
    export.to_csv(path, index=False)
    assert mlops("tenants", "add", TENANT, "--source", "file", "--path", str(path)).exit_code == 0
    ingested = mlops("ingest", "--history", "--from", DAY.isoformat(), "--to", DAY.isoformat())
    assert ingested.exit_code == 0, ingested.output
    root = lake.lake_root(str(mlops_home / "lake"))
    legacy = {"record_id": "old-1", "error": "amount: not a number", "record": json.dumps({"amount": "n/a"})}
    lake.write_frame(
        lake.quarantine_path(root, "raw_orders", TENANT, DAY - timedelta(days=1)),
        pd.DataFrame([legacy]),
        BEFORE_REASONS,
    )
    return {
        "root": root,
        "order_id": row["order_id"],
        "customer_id": row["customer_id"],
        "amount": float(row["amount"]),
    }


def _warehouse_url() -> str:
    from mlops_assets.settings import Settings

    return Settings.from_env().warehouse_url


def _ledger() -> QuarantineLedger:
    return QuarantineLedger(_warehouse_url())


def _features(mlops_home, customer_id: str) -> float:
    """The customer's largest order in the features of DAY, from a run of `customer_features` as the daemon's."""
    from mlops_assets.automation.batching import materialize_tenant_days
    from mlops_assets.cli.runs import asset_job

    with dg.DagsterInstance.get() as instance:
        (result,) = materialize_tenant_days(
            asset_job(), instance, [TENANT], DAY, DAY, [dg.AssetKey("customer_features")], stage="daily"
        )
    assert result.success
    features = lake.read_frame(lake.partition_path(lake.lake_root(str(mlops_home / "lake")), "customer_features",
                                                   TENANT, DAY))  # fmt: skip
    return float(features.set_index("customer_id").loc[customer_id, "monetary_max"])


def test_list_shows_records_newest_first_with_reasons_amounts_and_the_ledgers_counts(tenant):
    listed = mlops("quarantine", "list", TENANT)
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "raw_orders" in line]
    assert sorted(line.split("│")[3].strip() for line in lines[:2]) == sorted([tenant["order_id"], "refund-1"])
    assert lines[2].split("│")[3].strip() == "old-1"
    (outlier,) = [line for line in lines if tenant["order_id"] in line]
    assert "extreme_outlier" in outlier and f"{tenant['amount']:,.2f}" in outlier and DAY.isoformat() in outlier
    assert "invalid_record" in lines[2] and str(DAY - timedelta(days=1)) in lines[2], "a file without reasons"
    only = mlops("quarantine", "list", TENANT, "--reason", "unmatched_refund").output
    assert "refund-1" in only and tenant["order_id"] not in only and "1 quarantined records" in only
    assert "old-1" not in mlops("quarantine", "list", TENANT, "--from", DAY.isoformat()).output
    bad = mlops("quarantine", "list", TENANT, "--reason", "typo")
    assert bad.exit_code == 2 and "extreme_outlier" in bad.output

    read = sum(day["rows_read"] for day in _ledger().days(TENANT))
    counted = mlops("quarantine", "list", TENANT).output
    assert f"1 extreme_outlier, 1 unmatched_refund of {read} records read" in " ".join(counted.split())
    assert "if real, `mlops quarantine release`" in " ".join(counted.split()), "each reason's fix"


@pytest.mark.parametrize(
    ("order_id", "refusal"),
    [
        ("refund-1", f"quarantined as unmatched_refund: {REASONS['unmatched_refund']}"),
        ("old-1", f"quarantined as invalid_record: {REASONS['invalid_record']}"),
        ("no-such-order", "is not in its quarantine (fix: `mlops quarantine list umbrella`"),
    ],
)
def test_release_refuses_what_only_the_source_can_fix_and_what_is_not_quarantined(tenant, order_id, refusal):
    refused = mlops("quarantine", "release", TENANT, order_id)
    assert refused.exit_code == 2 and refusal in " ".join(refused.output.split()), refused.output
    assert _ledger().releases(TENANT) == []


def test_a_released_order_is_logged_ingested_again_and_in_the_next_runs_features(tenant, mlops_home):
    from mlops_assets.automation.jobs import STAGE_TAG
    from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from mlops_assets.core.lake.quarantine import find_quarantined

    order_id, root = tenant["order_id"], tenant["root"]
    assert _features(mlops_home, tenant["customer_id"]) < tenant["amount"], "quarantined: not in the features"
    warehouse = _warehouse_url()
    held = customer_orders(warehouse, TENANT)
    assert held == lake_customer_orders(root, TENANT), "the history sweep's and DAY's orders, in the warehouse"
    assert order_id not in held and "refund-1" not in held and held, "quarantined: not on the customer's page"
    released = mlops("quarantine", "release", TENANT, order_id, "--by", "ops@example.com", "--note", "confirmed")
    assert released.exit_code == 0, released.output
    assert f"released order {order_id} (extreme_outlier) by ops@example.com" in released.output
    assert f"order {order_id} is in the lake (raw_orders and raw_customers of {DAY})" in released.output
    (row,) = _ledger().releases(TENANT)
    assert (row["order_id"], row["reason"], row["released_by"], row["note"]) == (
        order_id, "extreme_outlier", "ops@example.com", "confirmed",
    )  # fmt: skip
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(dg.RunsFilter(tags={STAGE_TAG: "release"}))
    assert run.tags[ASSET_PARTITION_RANGE_START_TAG] == run.tags[ASSET_PARTITION_RANGE_END_TAG] == f"{DAY}|{TENANT}"
    assert run.asset_selection == {dg.AssetKey("raw_orders"), dg.AssetKey("raw_customers")}
    assert order_id in set(lake.read_frame(lake.partition_path(root, "raw_orders", TENANT, DAY))["order_id"])
    assert find_quarantined(root, TENANT, order_id, ("raw_orders",)) is None
    assert _features(mlops_home, tenant["customer_id"]) == tenant["amount"]
    held = customer_orders(warehouse, TENANT)
    assert held[order_id] == (tenant["customer_id"], tenant["amount"], 0.0) and held == lake_customer_orders(
        root, TENANT
    )
    listed = mlops("quarantine", "releases", TENANT).output
    assert order_id in listed and "ops@example.com" in listed and "confirmed" in listed
    again = mlops("quarantine", "release", TENANT, order_id)
    assert again.exit_code == 2 and "is not in its quarantine" in again.output
