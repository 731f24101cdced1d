"""The lake on local disk and on a real S3 endpoint (moto server on loopback)."""

from datetime import date

import pandas as pd
import pytest

from mlops_assets.core import lake
from mlops_assets.core.shop_records import ORDERS_SCHEMA, to_frame
from mlops_assets.core.tenant_ids import InvalidTenantId


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return lake.lake_root(str(tmp_path / "lake"))
    return lake.lake_root(request.getfixturevalue("s3_lake_url"), request.getfixturevalue("s3_endpoint"))


def orders(n=3):
    return to_frame(
        "orders",
        pd.DataFrame(
            {
                "order_id": [str(i) for i in range(n)],
                "order_name": None,
                "customer_id": ["c1"] * n,
                "created_at": pd.Timestamp("2026-01-02T10:00Z"),
                "updated_at": pd.Timestamp("2026-01-02T11:00Z"),
                "processed_at": pd.NaT,
                "cancelled_at": pd.NaT,
                "currency": "USD",
                "total_price": [10.0 + i for i in range(n)],
                "subtotal_price": None,
                "total_tax": None,
                "total_discounts": None,
                "total_refunded": 0.0,
                "financial_status": "paid",
                "fulfillment_status": None,
                "is_test": False,
                "line_item_count": 1,
                "item_quantity": 1,
                "source_name": "web",
            }
        ),
    )


def test_hive_layout_round_trip_and_digest(root):
    path = lake.partition_path(root, "raw_orders", "acme", date(2026, 1, 2))
    assert str(path).endswith("raw_orders/tenant=acme/date=2026-01-02/part-0.parquet")
    written = lake.write_frame(path, orders(), ORDERS_SCHEMA)
    assert written["rows"] == 3 and written["digest"] == lake.file_digest(path)
    pd.testing.assert_frame_equal(lake.read_frame(path), orders())
    again = lake.write_frame(path, orders(), ORDERS_SCHEMA)
    assert again["digest"] == written["digest"], "same rows, same bytes: the digest is a data version"
    assert lake.write_frame(path, orders(4), ORDERS_SCHEMA)["digest"] != written["digest"]


def test_writes_leave_no_temporary_files(root):
    for day in (1, 2, 3):
        lake.write_frame(lake.partition_path(root, "raw_orders", "acme", date(2026, 1, day)), orders(), ORDERS_SCHEMA)
    names = [p.name for p in (root / "raw_orders" / "tenant=acme").rglob("*") if p.is_file()]
    assert names == ["part-0.parquet"] * 3


def test_row_counts_and_purge_are_scoped_to_the_tenant(root):
    for tenant in ("acme", "globex"):
        lake.write_frame(lake.partition_path(root, "raw_orders", tenant, date(2026, 1, 2)), orders(), ORDERS_SCHEMA)
    lake.write_frame(lake.quarantine_path(root, "raw_orders", "acme", date(2026, 1, 2)), orders(1), ORDERS_SCHEMA)
    assert lake.row_counts(root, "raw_orders", "acme", [date(2026, 1, 1), date(2026, 1, 2)]) == {date(2026, 1, 2): 3}
    removed = lake.purge_tenant(root, "acme")
    assert len(removed) == 2
    assert not lake.partition_path(root, "raw_orders", "acme", date(2026, 1, 2)).exists()
    assert lake.partition_path(root, "raw_orders", "globex", date(2026, 1, 2)).exists()


@pytest.mark.parametrize("bad", ["../x", "a/b", "a|b", "A"])
def test_paths_refuse_bad_tenant_ids(root, bad):
    with pytest.raises(InvalidTenantId):
        lake.partition_path(root, "raw_orders", bad, date(2026, 1, 2))
    with pytest.raises(InvalidTenantId):
        lake.purge_tenant(root, bad)
