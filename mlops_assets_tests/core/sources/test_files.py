"""File tenants: the real CDNOW log shipped by lifetimes, and planted bad rows."""

import importlib.resources
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from mlops_assets.core.sources.files import FileSourceError, load_normalized
from mlops_assets.core.sources.ingest import ingest_day
from mlops_assets.core.tenants.registry import Tenant, file_settings

CDNOW = str(importlib.resources.files("lifetimes") / "datasets" / "CDNOW_master.txt")
CDNOW_COLUMNS = {"timestamp": "date", "amount": "dollar_value", "quantity": "number_of_cds"}


def cdnow_tenant():
    settings = {**file_settings(CDNOW, "csv", CDNOW_COLUMNS), "delimiter": "whitespace"}
    return Tenant("cdnow", "CDNOW", "file", settings, "UTC", "USD")


def test_cdnow_days_add_up_to_the_whole_log():
    tenant = cdnow_tenant()
    normalized = load_normalized(tenant.source, "UTC", "USD", "cdnow")
    assert len(normalized) == 69659 and normalized["_error"].isna().all()
    january = [ingest_day(tenant, "orders", date(1997, 1, d)).frame for d in range(1, 32)]
    total = sum(len(frame) for frame in january)
    assert total == (normalized["_day"].map(lambda d: d.year == 1997 and d.month == 1)).sum()
    day = ingest_day(tenant, "orders", date(1997, 1, 12)).frame
    assert day["order_id"].is_unique and (day["currency"] == "USD").all()
    assert str(day["created_at"].dt.tz) == "UTC" and day["total_price"].dtype == "float64"


def test_file_customers_are_seen_on_the_days_they_order():
    customers = ingest_day(cdnow_tenant(), "customers", date(1997, 3, 30)).frame
    orders = ingest_day(cdnow_tenant(), "orders", date(1997, 3, 30)).frame
    assert set(customers["customer_id"]) == set(orders["customer_id"])
    assert (customers["created_at"] <= customers["updated_at"]).all()


def test_bad_rows_are_quarantined_with_field_and_fix(tmp_path):
    export = tmp_path / "shop.csv"
    pd.DataFrame(
        {
            "customer_id": ["c1", "", "c3", "c4", "c5"],
            "timestamp": ["2026-03-01 10:00", "2026-03-01 11:00", "2026-03-01 12:00", "yesterday", "2026-03-02"],
            "amount": ["10.5", "3", "abc", "4", "5"],
        }
    ).to_csv(export, index=False)
    tenant = Tenant("shop", "Shop", "file", file_settings(str(export)), "Europe/Berlin", "EUR")
    day = ingest_day(tenant, "orders", date(2026, 3, 1))
    assert list(day.frame["customer_id"]) == ["c1"]
    errors = sorted(day.quarantine["error"])
    assert errors[0].startswith("amount") and errors[1].startswith("customer_id") and "fix" in errors[1]
    assert len(day.undated) == 1 and day.undated["error"].iloc[0].startswith("timestamp")
    assert day.frame["created_at"].iloc[0] == pd.Timestamp("2026-03-01 09:00Z"), (
        "naive times are the tenant's local time"
    )
    assert len(ingest_day(tenant, "orders", date(2026, 3, 2)).frame) == 1


def test_missing_columns_and_files_get_a_clear_error(tmp_path):
    export = tmp_path / "shop.csv"
    pd.DataFrame({"cust": ["c1"], "when": ["2026-03-01"], "amount": [1]}).to_csv(export, index=False)
    tenant = Tenant("shop", "Shop", "file", file_settings(str(export)), "UTC", "EUR")
    with pytest.raises(FileSourceError, match=r"tenant shop: .*customer_id .*--column"):
        ingest_day(tenant, "orders", date(2026, 3, 1))
    mapped = Tenant(
        "shop",
        "Shop",
        "file",
        file_settings(str(export), columns={"customer_id": "cust", "timestamp": "when"}),
        "UTC",
        "EUR",
    )
    assert len(ingest_day(mapped, "orders", date(2026, 3, 1)).frame) == 1
    gone = Tenant("shop", "Shop", "file", file_settings(str(tmp_path / "gone.csv")), "UTC", "EUR")
    with pytest.raises(FileSourceError, match="tenant shop: export file .* does not exist"):
        ingest_day(gone, "orders", date(2026, 3, 1))


def test_parquet_exports_on_s3(s3_lake_url, s3_endpoint, small_shop, monkeypatch):
    from upath import UPath

    from mlops_assets.sim.shops import transaction_export

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    url = f"{s3_lake_url}/exports/acme.parquet"
    with UPath(url, endpoint_url=s3_endpoint).open("wb") as handle:
        transaction_export(small_shop).to_parquet(handle)
    tenant = Tenant("acme", "Acme", "file", file_settings(url), "America/New_York", "USD")
    frame = ingest_day(tenant, "orders", date(2026, 10, 20)).frame
    created_that_day = small_shop.orders[
        small_shop.orders["created_at"].dt.tz_convert(ZoneInfo("America/New_York")).dt.date.eq(date(2026, 10, 20))
        & small_shop.orders["customer_id"].notna()
        & ~small_shop.orders["test"]
    ]
    assert set(frame["order_id"]) == set(created_that_day["order_id"].astype(str))
