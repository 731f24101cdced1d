"""A tenant's quarantined records read from the lake (local and S3): every asset, newest first, reason codes
read tolerantly from files written before they existed."""

import json
from datetime import date

import pandas as pd
import pyarrow as pa
import pytest

from mlops_assets.core.lake import files as lake
from mlops_assets.core.lake.quarantine import amount_fields, find_quarantined, read_quarantine
from mlops_assets.core.tenants.registry import Tenant, file_settings, shopify_settings

BEFORE_REASONS = pa.schema([("record_id", pa.string()), ("error", pa.string()), ("record", pa.string())])
WITH_REASONS = BEFORE_REASONS.append(pa.field("reason", pa.string()))


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return lake.lake_root(str(tmp_path / "lake"))
    return lake.lake_root(request.getfixturevalue("s3_lake_url"), request.getfixturevalue("s3_endpoint"))


def write(path, *rows, schema=WITH_REASONS):
    frame = pd.DataFrame([dict(zip(schema.names, row, strict=True)) for row in rows])
    lake.write_frame(path, frame, schema)


def test_records_of_every_asset_newest_first_undated_last(root):
    base = root / lake.QUARANTINE
    write(lake.quarantine_path(root, "raw_orders", "acme", "2026-11-02"),
          ("9", "too big", json.dumps({"total_price": "99999.5"}), "extreme_outlier"),
          ("10", "negative", json.dumps({"total_price": "-5"}), "negative_amount"))  # fmt: skip
    write(lake.quarantine_path(root, "raw_orders", "acme", "2026-11-03"),
          ("11", "amount: not a number", json.dumps({"total_price": "n/a"})), schema=BEFORE_REASONS)  # fmt: skip
    write(lake.tenant_dir(base, "raw_orders_history", "acme") / "undated" / lake.PART_FILE,
          (None, "timestamp: unreadable", "{}", "unreadable_timestamp"))  # fmt: skip
    write(lake.quarantine_path(root, "raw_orders", "globex", "2026-11-04"), ("12", "x", "{}", "extreme_outlier"))
    (lake.quarantine_path(root, "raw_customers", "acme", "2026-11-05").parent).mkdir(parents=True, exist_ok=True)

    records = read_quarantine(root, "acme")
    assert [(r.asset, r.day, r.record_id, r.reason) for r in records] == [
        ("raw_orders", date(2026, 11, 3), "11", "invalid_record"),
        ("raw_orders", date(2026, 11, 2), "10", "negative_amount"),
        ("raw_orders", date(2026, 11, 2), "9", "extreme_outlier"),
        ("raw_orders_history", None, None, "unreadable_timestamp"),
    ]
    assert records[2].amount(("total_price",)) == 99999.5 and records[0].amount(("total_price",)) is None
    assert [r.record_id for r in read_quarantine(root, "acme", first=date(2026, 11, 3))] == ["11"]
    assert find_quarantined(root, "acme", "9", ("raw_orders",)).reason == "extreme_outlier"
    assert find_quarantined(root, "acme", "12", ("raw_orders",)) is None, "another tenant's record"
    assert find_quarantined(root, "acme", "9", ("raw_orders_history",)) is None
    assert read_quarantine(root, "initech") == []


def test_the_amount_is_where_the_source_keeps_it():
    shop = Tenant("acme", "Acme", "shopify", shopify_settings("https://acme.myshopify.com", "ACME_TOKEN"))
    export = Tenant("umbrella", "Umbrella", "file", file_settings("x.csv", "csv", {"amount": "Sales"}))
    assert (amount_fields(shop), amount_fields(export)) == (("total_price",), ("Sales", "total_price"))
