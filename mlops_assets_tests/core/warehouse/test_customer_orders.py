"""Customer orders in the warehouse (SQLite and PostgreSQL): a lake file's orders upserted by version, re-runs
leaving what a clean run leaves, tenants apart, and the reader's page and totals."""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from mlops_assets.core.sources.records import to_frame
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, file_settings
from mlops_assets.core.warehouse.customer_orders import forget_orders, write_orders
from mlops_assets.core.warehouse.engine import customer_orders_table, engine_for
from mlops_assets.core.warehouse.prediction_store import PredictionReader

DAY = date(2026, 10, 20)
NEXT = DAY + timedelta(days=1)
PLACED = datetime(2026, 10, 20, 3, 30, tzinfo=UTC)  # 23:30 the day before in New York


def order(order_id, customer_id="c1", total=100.0, refunded=0.0, updated=PLACED, placed=PLACED, **extra) -> dict:
    return {
        "order_id": order_id, "customer_id": customer_id, "created_at": placed, "updated_at": updated,
        "currency": "USD", "total_price": total, "total_refunded": refunded, "is_test": False, **extra,
    }  # fmt: skip


def lake_file(*orders: dict):
    return to_frame("orders", list(orders))


def stored(url: str, tenant_id: str = "acme") -> dict[str, dict]:
    table = customer_orders_table
    query = sa.select(table).where(table.c.tenant_id == tenant_id)
    with engine_for(url).connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {row["order_id"]: dict(row) for row in rows}


def comparable(rows: dict[str, dict]) -> dict:
    """Rows as UTC wall times (SQLite hands them back without an offset), to compare across engines."""

    def utc(value):
        return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) and value.tzinfo else value

    return {key: {name: utc(value) for name, value in row.items()} for key, row in sorted(rows.items())}


def test_a_revised_order_replaces_its_earlier_version_and_never_the_reverse(warehouse_url):
    first = lake_file(order("1", total=100.0), order("2", customer_id="c2", total=40.0))
    refund = lake_file(order("1", total=100.0, refunded=30.0, updated=PLACED + timedelta(days=1)))
    assert write_orders(warehouse_url, "acme", first, DAY) == 2
    write_orders(warehouse_url, "acme", refund, NEXT)
    rows = stored(warehouse_url)
    assert (rows["1"]["refunded"], rows["1"]["lake_day"]) == (30.0, NEXT) and rows["2"]["total"] == 40.0
    write_orders(warehouse_url, "acme", first, DAY)  # the older day again (a release, a backfill)
    assert stored(warehouse_url)["1"]["refunded"] == 30.0, "an older version never overwrites a newer one"


def test_a_rerun_writes_what_a_clean_run_writes(warehouse_url, tmp_path):
    """Re-running a day that now quarantines an order (or lost it to a later day) drops it; orders of other files
    and newer versions stay; the result equals a clean run of the same files."""
    history = lake_file(order("0", placed=PLACED - timedelta(days=400), updated=PLACED - timedelta(days=400)))
    day = lake_file(order("1"), order("2", customer_id="c2"))
    day_again = lake_file(order("1"))  # order 2 quarantined on the re-run
    later = lake_file(order("1", refunded=5.0, updated=PLACED + timedelta(days=1)))
    write_orders(warehouse_url, "acme", history, None)
    write_orders(warehouse_url, "acme", day, DAY)
    write_orders(warehouse_url, "acme", later, NEXT)
    write_orders(warehouse_url, "acme", day_again, DAY)
    write_orders(warehouse_url, "acme", day_again, DAY)
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    write_orders(clean, "acme", history, None)
    write_orders(clean, "acme", day_again, DAY)
    write_orders(clean, "acme", later, NEXT)
    rows = stored(warehouse_url)
    assert sorted(rows) == ["0", "1"] and rows["1"]["refunded"] == 5.0
    assert comparable(rows) == comparable(stored(clean))


def test_tests_anonymous_orders_and_other_tenants_stay_out(warehouse_url):
    frame = lake_file(order("1"), order("2", customer_id=None), order("3", is_test=True))
    assert write_orders(warehouse_url, "acme", frame, DAY) == 1
    write_orders(warehouse_url, "globex", lake_file(order("1", total=7.0), order("9")), DAY)
    write_orders(warehouse_url, "acme", lake_file(), DAY)  # acme's day again, now empty
    assert stored(warehouse_url) == {} and sorted(stored(warehouse_url, "globex")) == ["1", "9"]
    assert stored(warehouse_url, "globex")["1"]["total"] == 7.0
    assert forget_orders(warehouse_url, "globex") == 2 and stored(warehouse_url, "globex") == {}


def test_of_two_versions_in_one_file_the_newer_counts(warehouse_url):
    """The history sweep keeps one version of an order per day it was updated on."""
    refunded = order("1", refunded=10.0, updated=PLACED + timedelta(days=3))
    write_orders(warehouse_url, "acme", lake_file(refunded, order("1")), None)
    assert stored(warehouse_url)["1"]["refunded"] == 10.0


def test_the_reader_pages_newest_first_with_totals_in_the_tenants_timezone(warehouse_url):
    TenantRegistry(warehouse_url).add(
        Tenant("acme", "Acme", "file", file_settings("/data/acme.csv"), timezone="America/New_York")
    )
    placed = [PLACED - timedelta(days=k) for k in range(5)]
    frame = lake_file(
        *(order(str(k), total=10.0 * (k + 1), placed=at, updated=at) for k, at in enumerate(placed)),
        order("r", total=50.0, refunded=20.0, placed=PLACED - timedelta(days=9)),
        order("x", total=1000.0, cancelled_at=PLACED, placed=PLACED - timedelta(days=10)),
        order("other", customer_id="c2", total=999.0),
    )
    write_orders(warehouse_url, "acme", frame, DAY)
    reader = PredictionReader(warehouse_url, read_only=True)
    history = reader.orders("acme", "c1", limit=3)
    assert history["count"] == 7 and history["net_total"] == pytest.approx(150.0 + 30.0)
    assert [item["order_id"] for item in history["items"]] == ["0", "1", "2"]
    newest = history["items"][0]
    assert newest["ordered_at"] == PLACED and newest["order_date"] == DAY - timedelta(days=1), "New York's day"
    everything = reader.orders("acme", "c1", limit=50)["items"]
    assert everything[-1]["cancelled_at"] == PLACED and everything[-2]["refunded"] == 20.0
    assert reader.orders("globex", "c1") == {"count": 0, "net_total": 0.0, "items": []}
