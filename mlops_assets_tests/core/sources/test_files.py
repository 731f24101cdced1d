"""File tenants: the real CDNOW log shipped by lifetimes, and planted bad rows."""

import importlib.resources
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from mlops_assets.core.sources.files import FileSourceError, load_normalized
from mlops_assets.core.sources.ingest import ingest_day, ingest_history
from mlops_assets.core.sources.screening import PartitionContext, screen
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


def test_bad_rows_are_quarantined_with_reason_field_and_fix(tmp_path):
    export = tmp_path / "shop.csv"
    export.write_text(
        "customer_id,timestamp,amount\n"
        "c1,2026-03-01 10:00,10.5\n,2026-03-01 11:00,3\nc3,2026-03-01 12:00,abc\nc4,yesterday,4\n"
        "c5,2026-03-02,5\nc6,2031-03-01,7\nc7,2025-01-01,8\nc8\n"
    )
    tenant = Tenant("shop", "Shop", "file", file_settings(str(export)), "Europe/Berlin", "EUR")
    day = ingest_day(tenant, "orders", date(2026, 3, 1))
    assert list(day.frame["customer_id"]) == ["c1"]
    assert list(day.quarantine["reason"]) == ["invalid_record", "invalid_record"]
    errors = sorted(day.quarantine["error"])
    assert errors[0].startswith("tenant shop: amount: 'amount' value 'abc' is not a number") and "(fix: " in errors[0]
    assert errors[1].startswith("tenant shop: customer_id: empty")
    assert day.frame["created_at"].iloc[0] == pd.Timestamp("2026-03-01 09:00Z"), (
        "naive times are the tenant's local time"
    )
    assert len(ingest_day(tenant, "orders", date(2026, 3, 2)).frame) == 1

    history = ingest_history(tenant, "orders", date(2026, 3, 1), date(2026, 3, 10), since=date(2026, 1, 1))
    outside = history.out_of_window.set_index(history.out_of_window["record_id"].str[:2])
    assert outside["reason"].to_dict() == {
        "c4": "unreadable_timestamp", "c6": "future_timestamp", "c7": "before_history_start",
        "c8": "unreadable_timestamp",
    }  # fmt: skip
    assert "after today (2026-03-10)" in outside.loc["c6", "error"] and outside.loc["c6", "day"] == date(2031, 3, 1)
    assert "before 2026-01-01" in outside.loc["c7", "error"] and pd.isna(outside.loc["c4", "day"])
    assert "'yesterday' cannot be read" in outside.loc["c4", "error"]


def _refund_tenant(tmp_path, rows: str, columns="customer_id,timestamp,amount"):
    export = tmp_path / "refunds.csv"
    export.write_text(f"{columns}\n{rows}")
    return Tenant("shop", "Shop", "file", file_settings(str(export)), "UTC", "EUR")


def test_a_negative_row_repeating_an_order_id_is_a_refund_of_that_order(tmp_path):
    tenant = _refund_tenant(
        tmp_path,
        "O1,c1,2026-03-01 10:00,100\nO1,c1,2026-03-05 09:00,-30\nO1,c1,2026-03-06 09:00,-70\n",
        "order_id,customer_id,timestamp,amount",
    )
    partial = ingest_day(tenant, "orders", date(2026, 3, 5)).frame.iloc[0]
    assert (partial["order_id"], partial["total_price"], partial["total_refunded"]) == ("O1", 100.0, 30.0)
    assert partial["financial_status"] == "partially_refunded"
    assert partial["created_at"] == pd.Timestamp("2026-03-01 10:00Z")
    assert partial["updated_at"] == pd.Timestamp("2026-03-05 09:00Z")
    full = ingest_day(tenant, "orders", date(2026, 3, 6)).frame.iloc[0]
    assert (full["total_refunded"], full["financial_status"]) == (100.0, "refunded")
    placed = ingest_day(tenant, "orders", date(2026, 3, 1)).frame.iloc[0]
    assert (placed["total_refunded"], placed["financial_status"]) == (0.0, "paid"), "the order as placed stays"


def test_a_refund_without_an_id_refunds_the_customers_latest_order_with_enough_left_or_is_quarantined(tmp_path):
    tenant = _refund_tenant(
        tmp_path,
        "c2,2026-03-01 10:00,40\nc2,2026-03-02 10:00,10\nc2,2026-03-03 10:00,-20\n"
        "c3,2026-03-03 11:00,-5\nc2,2026-03-03 12:00,-1000\nc4,2026-03-03 08:00,12\nc4,2026-03-03 09:00,-12\n",
    )
    day = screen(ingest_day(tenant, "orders", date(2026, 3, 3)).frame, PartitionContext(
        "orders", "shop", date(2026, 3, 3), "UTC", "EUR"
    ), quarantined=ingest_day(tenant, "orders", date(2026, 3, 3)).quarantine)  # fmt: skip
    refunded = day.frame.set_index("customer_id")
    assert refunded.loc["c2", "created_at"] == pd.Timestamp("2026-03-01 10:00Z"), "the 10.00 order had too little"
    assert (refunded.loc["c2", "total_refunded"], refunded.loc["c2", "updated_at"]) == (
        20.0, pd.Timestamp("2026-03-03 10:00Z")
    )  # fmt: skip
    assert refunded.loc["c4", "financial_status"] == "refunded", "an order refunded the day it was placed"
    assert day.superseded == 1, "its placed version is folded into the refunded one"
    assert day.by_reason == {"unmatched_refund": 2}
    assert all("matches no earlier order" in error and "(fix: " in error for error in day.quarantine["error"])
    assert day.rows_read + day.superseded == 7 - 2, "two rows of the export are on other days"


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
