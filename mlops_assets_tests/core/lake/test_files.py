"""The lake on local disk and on a real S3 endpoint (moto server on loopback)."""

from datetime import date

import pandas as pd
import pytest

from mlops_assets.core.lake import files as lake
from mlops_assets.core.sources.records import ORDERS_SCHEMA, to_frame
from mlops_assets.core.tenants.ids import InvalidTenantId


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


def test_purge_is_scoped_to_the_tenant(root):
    for tenant in ("acme", "globex"):
        lake.write_frame(lake.partition_path(root, "raw_orders", tenant, date(2026, 1, 2)), orders(), ORDERS_SCHEMA)
    lake.write_frame(lake.quarantine_path(root, "raw_orders", "acme", date(2026, 1, 2)), orders(1), ORDERS_SCHEMA)
    compacted = lake.tenant_dir(root / lake.COMPACTED, "raw_orders", "acme") / lake.PART_FILE
    lake.write_frame(compacted, orders(), ORDERS_SCHEMA)
    removed = lake.purge_tenant(root, "acme")
    assert len(removed) == 3 and not compacted.exists()
    assert not lake.partition_path(root, "raw_orders", "acme", date(2026, 1, 2)).exists()
    assert lake.partition_path(root, "raw_orders", "globex", date(2026, 1, 2)).exists()


@pytest.mark.parametrize("bad", ["../x", "a/b", "a|b", "A"])
def test_paths_refuse_bad_tenant_ids(root, bad):
    with pytest.raises(InvalidTenantId):
        lake.partition_path(root, "raw_orders", bad, date(2026, 1, 2))
    with pytest.raises(InvalidTenantId):
        lake.purge_tenant(root, bad)


def test_history_reads_through_a_compacted_copy_that_follows_the_files(root):
    from datetime import timedelta

    from mlops_assets.core.lake.history import COMPACT_AFTER, LAKE_DAY, history_files, read_orders

    first = date(2026, 1, 1)
    lake.write_frame(lake.history_path(root, "raw_orders_history", "acme", first), orders(2), ORDERS_SCHEMA)
    days = [first + timedelta(days=k) for k in range(1, COMPACT_AFTER + 4)]
    for k, day in enumerate(days):
        frame = orders(k % 3).assign(order_id=lambda f, k=k: f["order_id"] + f"-{k}")
        lake.write_frame(lake.partition_path(root, "raw_orders", "acme", day), frame, ORDERS_SCHEMA)

    def direct(through=None):
        files = history_files(root, "acme", through=through)
        return pd.concat([lake.read_frame(path) for path in files.files], ignore_index=True)

    compacted = lake.tenant_dir(root / lake.COMPACTED, "raw_orders", "acme") / lake.PART_FILE
    whole = read_orders(history_files(root, "acme"))
    assert compacted.exists()
    assert whole.drop(columns=LAKE_DAY).equals(direct()[whole.columns.drop(LAKE_DAY)])
    assert whole[LAKE_DAY].isna().sum() == 2
    earlier = read_orders(history_files(root, "acme", through=days[3]))
    assert history_files(root, "acme", through=days[3]).through == days[3]
    assert earlier.drop(columns=LAKE_DAY).equals(direct(days[3])[earlier.columns.drop(LAKE_DAY)])

    rewritten = orders(5).assign(order_id=lambda f: f["order_id"] + "-new")
    lake.write_frame(lake.partition_path(root, "raw_orders", "acme", days[1]), rewritten, ORDERS_SCHEMA)
    after = read_orders(history_files(root, "acme"))
    assert after.drop(columns=LAKE_DAY).equals(direct()[after.columns.drop(LAKE_DAY)])
    assert (after["order_id"].str.endswith("-new")).sum() == 5


def test_a_corrupt_file_is_named_by_every_read(root):
    from mlops_assets.core.lake.history import history_files, read_orders

    day = date(2026, 1, 2)
    path = lake.partition_path(root, "raw_orders", "acme", day)
    lake.write_frame(path, orders(), ORDERS_SCHEMA)
    lake.write_atomic(path, b"PAR1 truncated at rest")
    with pytest.raises(lake.UnreadableFile, match=f"{path} is not a readable Parquet file .*fix: write it again"):
        lake.read_frame(path)
    with pytest.raises(lake.UnreadableFile, match=f"{path} is not a readable Parquet file"):
        read_orders(history_files(root, "acme"))


def test_a_long_lived_process_sees_what_other_processes_wrote_since(s3_lake_url, s3_endpoint, tmp_path):
    """Run workers of the Celery executor and `mlops backfill` read the lake across many runs: a file another
    process replaced or added since this one listed the tenant's files is read as it is now."""
    import boto3

    from mlops_assets.core.lake.history import history_files, read_orders

    root = lake.lake_root(s3_lake_url, s3_endpoint)
    days = [date(2026, 1, 2), date(2026, 1, 3)]
    lake.write_frame(lake.partition_path(root, "raw_orders", "acme", days[0]), orders(2), ORDERS_SCHEMA)
    assert len(read_orders(history_files(root, "acme"))) == 2  # lists, and reads, the tenant's files

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)  # another process, with its own client
    bucket, _, prefix = s3_lake_url.removeprefix("s3://").partition("/")
    for day, rows in zip(days, (3, 4), strict=True):
        local = lake.lake_root(str(tmp_path / "elsewhere"))
        written = lake.write_frame(lake.partition_path(local, "raw_orders", "acme", day), orders(rows), ORDERS_SCHEMA)
        key = f"{prefix}/raw_orders/tenant=acme/date={day}/part-0.parquet"
        s3.put_object(Bucket=bucket, Key=key, Body=lake.partition_path(local, "raw_orders", "acme", day).read_bytes())
        assert written["rows"] == rows
    assert lake.partition_path(root, "raw_orders", "acme", days[1]).exists()
    assert len(read_orders(history_files(root, "acme"))) == 7
