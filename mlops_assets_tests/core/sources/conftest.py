"""A real day of a synthetic shop, as the Shopify client validates it, for the rule and gate tests."""

from zoneinfo import ZoneInfo

import pytest

from mlops_assets.core.sources.shopify import ShopifyClient
from mlops_assets_tests.core.sources.planted import DAY, ZONE


@pytest.fixture
def clean(emulator_factory, small_shop):
    emulator = emulator_factory({"acme": small_shop}, bucket=(40, 1000.0))
    with ShopifyClient(emulator.shop_url("acme"), "shpat_test_token", tenant_id="acme") as api:
        orders = api.fetch_day("orders", DAY, ZoneInfo(ZONE))[0].frame
        customers = api.fetch_day("customers", DAY, ZoneInfo(ZONE))[0].frame
    return {"orders": orders, "customers": customers}
