"""The operator's quarantine commands on a file tenant, run as a user would: `mlops quarantine list`, the release of
a confirmed order (refused for what only the source can fix), its partition ingested again, and the order in the
lake and in the next run's features.

Ingestion's screening writes the quarantine files with their reason codes; here the test writes them itself, as
that screening would, so the commands are tested on their own: an order 40 times the median moved from its day's
file into the quarantine as `extreme_outlier`, a negative amount as `negative_amount`, and a file from before
reason codes (no `reason` column).
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from mlops_assets.core.lake import files as lake
from mlops_assets.core.sources.reasons import REASONS
from mlops_assets.core.sources.records import ORDERS_SCHEMA
from mlops_assets.core.warehouse.quarantine_ledger import QuarantineLedger
from mlops_assets.sim.shops import ShopSpec, SyntheticShop, transaction_export
from mlops_assets_tests.helpers import mlops

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
DAY = YESTERDAY - timedelta(days=2)
TENANT = "umbrella"
BEFORE_REASONS = pa.schema([("record_id", pa.string()), ("error", pa.string()), ("record", pa.string())])
WITH_REASONS = BEFORE_REASONS.append(pa.field("reason", pa.string()))


def _quarantine(root, day, rows: list[dict], schema: pa.Schema = WITH_REASONS) -> None:
    lake.write_frame(lake.quarantine_path(root, "raw_orders", TENANT, day), pd.DataFrame(rows), schema)


@pytest.fixture
def tenant(mlops_home):
    """A file tenant with its history and DAY ingested; DAY's largest customer order is made 40x the median."""
    shop = SyntheticShop(ShopSpec(TENANT, customers=300, seed=3, end=YESTERDAY, history_days=60))
    export = transaction_export(shop)
    on_day = export.index[export["timestamp"].str.startswith(DAY.isoformat())]
    outlier = on_day[0]
    export.loc[outlier, "amount"] = round(float(export["amount"].median()) * 40, 2)
    path = mlops_home / f"{TENANT}.csv"
    export.to_csv(path, index=False)
    assert mlops("tenants", "add", TENANT, "--source", "file", "--path", str(path)).exit_code == 0
    ingested = mlops("ingest", "--history", "--from", DAY.isoformat(), "--to", DAY.isoformat())
    assert ingested.exit_code == 0, ingested.output
    root = lake.lake_root(str(mlops_home / "lake"))
    day_file = lake.partition_path(root, "raw_orders", TENANT, DAY)
    orders = lake.read_frame(day_file)
    row = export.loc[outlier]
    order_id = orders.loc[orders["total_price"] == row["amount"], "order_id"].iloc[0]
    # What ingestion's screening does with an extreme outlier: the day's file without it, the quarantine with it.
    lake.write_frame(day_file, orders[orders["order_id"] != order_id], ORDERS_SCHEMA)
    record = {"customer_id": row["customer_id"], "timestamp": row["timestamp"], "amount": str(row["amount"])}
    _quarantine(
        root,
        DAY,
        [
            {"record_id": order_id, "error": "total_price: 40x the median", "record": json.dumps(record),
             "reason": "extreme_outlier"},
            {"record_id": "refund-1", "error": "total_price: -50", "record": json.dumps({"amount": "-50"}),
             "reason": "negative_amount"},
        ],
    )  # fmt: skip
    legacy = {"record_id": "old-1", "error": "amount: not a number", "record": json.dumps({"amount": "n/a"})}
    _quarantine(root, DAY - timedelta(days=1), [legacy], BEFORE_REASONS)
    return {"root": root, "order_id": order_id, "customer_id": row["customer_id"], "amount": float(row["amount"])}


def _ledger() -> QuarantineLedger:
    from mlops_assets.settings import Settings

    return QuarantineLedger(Settings.from_env().warehouse_url)


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
    from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay

    listed = mlops("quarantine", "list", TENANT)
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "raw_orders" in line]
    assert [line.split("│")[3].strip() for line in lines] == [tenant["order_id"], "refund-1", "old-1"]
    assert "extreme_outlier" in lines[0] and f"{tenant['amount']:,.2f}" in lines[0] and DAY.isoformat() in lines[0]
    assert "invalid_record" in lines[2] and str(DAY - timedelta(days=1)) in lines[2], "a file without reasons"
    only = mlops("quarantine", "list", TENANT, "--reason", "negative_amount").output
    assert "refund-1" in only and tenant["order_id"] not in only and "1 quarantined records" in only
    assert "old-1" not in mlops("quarantine", "list", TENANT, "--from", DAY.isoformat()).output
    bad = mlops("quarantine", "list", TENANT, "--reason", "typo")
    assert bad.exit_code == 2 and "extreme_outlier" in bad.output

    _ledger().record(IngestionDay(TENANT, "raw_orders", DAY, 30, 28, {"extreme_outlier": 1, "negative_amount": 1}))
    counted = mlops("quarantine", "list", TENANT).output
    assert "1 extreme_outlier, 1 negative_amount of 30 records read" in " ".join(counted.split())
    assert "if real, `mlops quarantine release`" in " ".join(counted.split()), "each reason's fix"


@pytest.mark.parametrize(
    ("order_id", "refusal"),
    [
        ("refund-1", f"quarantined as negative_amount: {REASONS['negative_amount']}"),
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
    listed = mlops("quarantine", "releases", TENANT).output
    assert order_id in listed and "ops@example.com" in listed and "confirmed" in listed
    again = mlops("quarantine", "release", TENANT, order_id)
    assert again.exit_code == 2 and "is not in its quarantine" in again.output
