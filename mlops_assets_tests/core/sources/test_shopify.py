"""The ingestion client against the emulator over real HTTP: completeness, faults, secrets."""

import logging
import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from mlops_assets.core.sources.shopify import ShopApiError, ShopifyClient
from mlops_assets.sim.shop_emulator import Faults

TOKEN = "shpat_test_token"
ZONE = ZoneInfo("America/New_York")
DAY = date(2026, 10, 20)


def client(emulator, **options):
    defaults = dict(tenant_id="acme", page_limit=10, initial_backoff_s=0.01, max_backoff_s=0.05, leak_per_s=1000.0)
    return ShopifyClient(emulator.shop_url("acme"), TOKEN, **{**defaults, **options})


def expected_ids(shop, day, resource="orders"):
    frame = shop.orders if resource == "orders" else shop.customers
    start = pd.Timestamp(datetime.combine(day, datetime.min.time(), ZONE))
    end = pd.Timestamp(datetime.combine(day + timedelta(days=1), datetime.min.time(), ZONE))
    ids = frame.loc[(frame["updated_at"] >= start) & (frame["updated_at"] < end), frame.columns[0]]
    return set(ids.astype(str))


@pytest.mark.parametrize("resource", ["orders", "customers"])
def test_a_day_in_the_tenant_timezone_is_complete(emulator_factory, small_shop, resource):
    emulator = emulator_factory({"acme": small_shop}, bucket=(40, 1000.0))
    with client(emulator) as api:
        validated, stats = api.fetch_day(resource, DAY, ZONE)
    id_column = "order_id" if resource == "orders" else "customer_id"
    assert set(validated.frame[id_column]) == expected_ids(small_shop, DAY, resource)
    assert stats.pages == stats.requests >= 2, "small pages force cursor pagination"
    assert validated.frame["updated_at"].dt.tz is not None


def test_amounts_and_timestamps_are_typed(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(40, 1000.0))
    with client(emulator) as api:
        frame = api.fetch_day("orders", DAY, ZONE)[0].frame
    truth = small_shop.orders.assign(order_id=small_shop.orders["order_id"].astype(str)).set_index("order_id")
    row = frame.iloc[0]
    assert row["total_price"] == pytest.approx(truth.loc[row["order_id"], "total_price"])
    assert row["created_at"] == truth.loc[row["order_id"], "created_at"]
    assert str(frame["created_at"].dt.tz) == "UTC"


def test_faults_do_not_change_the_rows(emulator_factory, small_shop):
    clean = emulator_factory({"acme": small_shop}, bucket=(40, 1000.0))
    faulty = emulator_factory(
        {"acme": small_shop},
        faults=Faults(server_error_rate=0.2, drop_rate=0.1, malformed_body_rate=0.1, latency_ms=2, seed=1),
        bucket=(40, 1000.0),
    )
    with client(clean) as a, client(faulty, max_failures=20) as b:
        expected, _ = a.fetch_day("orders", DAY, ZONE)
        got, stats = b.fetch_day("orders", DAY, ZONE)
    pd.testing.assert_frame_equal(expected.frame, got.frame)
    assert stats.retries > 0 and stats.server_errors + stats.connection_errors + stats.malformed_bodies == stats.retries


def test_concurrent_clients_survive_429_bursts(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(6, 30.0))
    results, errors = {}, []

    def fetch(day):
        try:
            with client(emulator, leak_per_s=30.0, page_limit=5) as api:
                results[day] = api.fetch_day("orders", day, ZONE)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    days = [DAY - timedelta(days=k) for k in range(4)]
    threads = [threading.Thread(target=fetch, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(stats.rate_limited for _, stats in results.values()) > 0, "the shared bucket overflowed at least once"
    for day in days:
        assert set(results[day][0].frame["order_id"]) == expected_ids(small_shop, day)


def test_alone_the_client_paces_itself_below_the_limit(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(5, 10.0))
    with client(emulator, leak_per_s=10.0, page_limit=2) as api:
        _, stats = api.fetch_day("orders", DAY, ZONE)
    assert stats.requests > 5 and stats.rate_limited == 0 and stats.paced_seconds > 0


def test_bad_token_fails_fast_and_never_shows_the_token(emulator_factory, small_shop, caplog):
    emulator = emulator_factory({"acme": small_shop})
    caplog.set_level(logging.DEBUG)
    with ShopifyClient(emulator.shop_url("acme"), "shpat_wrong_secret", tenant_id="acme") as api:
        with pytest.raises(ShopApiError, match="tenant acme.*401.*fix") as info:
            api.fetch_day("orders", DAY, ZONE)
        assert "shpat_wrong_secret" not in repr(api)
    assert "shpat_wrong_secret" not in str(info.value) and "shpat_wrong_secret" not in caplog.text


def test_token_never_reaches_logs_during_retries(emulator_factory, small_shop, caplog):
    emulator = emulator_factory({"acme": small_shop}, faults=Faults(server_error_rate=0.3, seed=2), bucket=(40, 1000.0))
    caplog.set_level(logging.DEBUG)
    with client(emulator, max_failures=30) as api:
        api.fetch_day("orders", DAY, ZONE)
    assert "retrying" in caplog.text and TOKEN not in caplog.text


def test_persistent_outage_names_the_tenant_and_the_way_out(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, faults=Faults(server_error_rate=1.0))
    with client(emulator, max_failures=3) as api, pytest.raises(ShopApiError, match="tenant acme.*re-run"):
        api.fetch_day("orders", DAY, ZONE)


def test_an_outage_costs_a_run_seconds_then_the_shop_is_left_alone(emulator_factory, small_shop):
    """In-run retries stop at the wait budget; later requests of the run fail without a request."""
    emulator = emulator_factory({"acme": small_shop}, faults=Faults(server_error_rate=1.0))
    slept: list[float] = []
    with ShopifyClient(emulator.shop_url("acme"), TOKEN, tenant_id="acme", sleep=slept.append) as api:
        with pytest.raises(ShopApiError, match="tenant acme.*still failing after 5 attempts.*HTTP 5"):
            api.fetch_day("orders", DAY, ZONE)
        assert sum(slept) <= api.max_retry_wait_s and len(slept) == 4
        with pytest.raises(ShopApiError, match="tenant acme.*customers.json not tried.*already failed"):
            api.fetch_day("customers", DAY, ZONE)
    assert len(slept) == 4


def test_malformed_records_are_quarantined_with_their_field(emulator_factory, small_shop):
    emulator = emulator_factory(
        {"acme": small_shop}, faults=Faults(malformed_record_rate=0.3, seed=3), bucket=(40, 1000.0)
    )
    with client(emulator) as api:
        validated, stats = api.fetch_day("orders", DAY, ZONE)
    assert validated.quarantined > 0
    assert len(validated.frame) + validated.quarantined == stats.records == len(expected_ids(small_shop, DAY))
    assert validated.quarantine["error"].str.contains("total_price|created_at|id").all()
