"""The emulator behaves like the Shopify Admin REST API where a client can get it wrong."""

import pandas as pd
import pytest
import requests

from mlops_assets.sim.shop_emulator import OUTLIER_MULTIPLIER, Faults, LeakyBucket

TOKEN = {"X-Shopify-Access-Token": "shpat_test_token"}


def orders_url(emulator, shop="acme"):
    return f"{emulator.shop_url(shop)}/admin/api/2025-01/orders.json"


def test_wrong_or_missing_token_is_401(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop})
    assert requests.get(orders_url(emulator), headers={"X-Shopify-Access-Token": "nope"}, timeout=5).status_code == 401
    assert requests.get(orders_url(emulator), timeout=5).status_code == 401
    assert requests.get(orders_url(emulator).replace("/acme/", "/other/"), headers=TOKEN, timeout=5).status_code == 404


def test_default_status_is_open_so_cancelled_orders_need_status_any(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop})
    window = {
        "updated_at_min": "2026-01-01T00:00:00-05:00",
        "updated_at_max": "2026-03-01T00:00:00-05:00",
        "limit": 250,
    }
    open_only = requests.get(orders_url(emulator), params=window, headers=TOKEN, timeout=5).json()["orders"]
    everything = requests.get(orders_url(emulator), params={**window, "status": "any"}, headers=TOKEN, timeout=5)
    assert all(order["cancelled_at"] is None for order in open_only)
    assert any(order["cancelled_at"] for order in everything.json()["orders"]) or "next" in everything.links


def test_limit_and_page_info_rules(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop})
    assert requests.get(orders_url(emulator), params={"limit": 251}, headers=TOKEN, timeout=5).status_code == 400
    first = requests.get(orders_url(emulator), params={"limit": 5, "status": "any"}, headers=TOKEN, timeout=5)
    assert first.status_code == 200 and len(first.json()["orders"]) == 5
    next_url = first.links["next"]["url"]
    assert requests.get(next_url, headers=TOKEN, timeout=5).status_code == 200
    mixed = requests.get(next_url + "&status=any", headers=TOKEN, timeout=5)
    assert mixed.status_code == 400 and "page_info" in mixed.text


def test_pages_are_disjoint_and_complete(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(40, 1000.0))
    params = {
        "limit": 250,
        "status": "any",
        "updated_at_min": "2026-06-01T00:00:00Z",
        "updated_at_max": "2026-08-01T00:00:00Z",
    }
    url, seen = orders_url(emulator), []
    while url:
        response = requests.get(url, params=params, headers=TOKEN, timeout=5)
        seen += [order["id"] for order in response.json()["orders"]]
        url, params = response.links.get("next", {}).get("url"), None
    orders = small_shop.orders
    expected = orders[
        (orders["updated_at"] >= "2026-06-01T00:00:00Z") & (orders["updated_at"] <= "2026-08-01T00:00:00Z")
    ]
    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == set(expected["order_id"])


def test_leaky_bucket_answers_429_with_retry_after_and_call_limit(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(5, 1.0))
    statuses, headers = [], []
    for _ in range(8):
        response = requests.get(orders_url(emulator), params={"limit": 1}, headers=TOKEN, timeout=5)
        statuses.append(response.status_code)
        headers.append(response.headers)
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    assert headers[0]["X-Shopify-Shop-Api-Call-Limit"] == "1/5"
    refused = headers[statuses.index(429)]
    assert float(refused["Retry-After"]) > 0 and refused["X-Shopify-Shop-Api-Call-Limit"] == "5/5"


def test_bucket_leaks_at_its_rate():
    bucket = LeakyBucket(capacity=2, leak_per_s=1000.0)
    assert all(bucket.take()[0] for _ in range(2))
    import time

    time.sleep(0.01)
    assert bucket.take()[0]


def test_replay_mode_answers_as_the_shop_did_on_the_day(emulator_factory, small_shop):
    """An order refunded days after it was placed: the day it was placed returns it as placed, the refund's
    day in its final state, and a sweep without `updated_at_max` only the final state."""
    orders = small_shop.orders
    refunded = orders[orders["refunded_at"].notna() & (orders["refunded_at"] < "2026-10-01")].iloc[0]
    emulator = emulator_factory({"acme": small_shop}, bucket=(400, 1000.0), as_of_request=True)

    def day_of(order_id: int, start, end) -> list[dict]:
        params = {"status": "any", "limit": 250, "ids": str(order_id)}
        if start is not None:
            params |= {"updated_at_min": start.isoformat(), "updated_at_max": end.isoformat()}
        return requests.get(orders_url(emulator), params=params, headers=TOKEN, timeout=5).json()["orders"]

    placed = refunded["created_at"].floor("D")
    as_placed = day_of(refunded["order_id"], placed, placed + pd.Timedelta(days=1) - pd.Timedelta(seconds=1))
    assert len(as_placed) == 1 and as_placed[0]["refunds"] == []
    assert as_placed[0]["financial_status"] == "paid" and as_placed[0]["updated_at"] == as_placed[0]["created_at"]
    changed = refunded["updated_at"].floor("D")
    final = day_of(refunded["order_id"], changed, changed + pd.Timedelta(days=1) - pd.Timedelta(seconds=1))
    assert len(final) == 1 and len(final[0]["refunds"]) == 1 and final[0]["financial_status"] != "paid"
    assert [o["financial_status"] for o in day_of(refunded["order_id"], None, None)] == [final[0]["financial_status"]]


def test_fat_finger_orders_are_the_same_orders_on_every_request(emulator_factory, small_shop):
    faults = Faults(outlier_order_rate=0.05, seed=3)
    emulator = emulator_factory({"acme": small_shop}, faults=faults, bucket=(400, 1000.0))
    params = {"status": "any", "limit": 250, "updated_at_min": "2026-06-01T00:00:00Z"}

    def served() -> dict[int, float]:
        url, query, found = orders_url(emulator), dict(params), {}
        while url:
            response = requests.get(url, params=query, headers=TOKEN, timeout=5)
            found |= {order["id"]: float(order["total_price"]) for order in response.json()["orders"]}
            url, query = response.links.get("next", {}).get("url"), None
        return found

    first, again = served(), served()
    assert first == again
    prices = small_shop.orders.set_index("order_id")["total_price"]
    fat = {order_id for order_id, price in first.items() if price != round(prices[order_id], 2)}
    assert 0.02 < len(fat) / len(first) < 0.08
    assert fat == {order_id for order_id in first if faults.picks("outlier", faults.outlier_order_rate, order_id)}
    assert all(first[i] == pytest.approx(prices[i] * OUTLIER_MULTIPLIER, rel=1e-6) for i in fat)
