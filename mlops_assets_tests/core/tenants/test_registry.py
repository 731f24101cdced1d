import pytest
import sqlalchemy as sa

from mlops_assets.core.tenants.ids import InvalidTenantId
from mlops_assets.core.tenants.registry import (
    RegistryError,
    Tenant,
    TenantNotFound,
    TenantRegistry,
    file_settings,
    shopify_settings,
)


def shop_tenant(tenant_id="acme", **overrides):
    values = dict(
        tenant_id=tenant_id,
        display_name="Acme",
        source_kind="shopify",
        source_settings=shopify_settings("https://acme.myshopify.com/", "ACME_TOKEN"),
        timezone="Europe/Berlin",
        currency="EUR",
        horizon_days=45,
    )
    return Tenant(**{**values, **overrides})


def test_round_trip_on_both_engines(warehouse_url):
    registry = TenantRegistry(warehouse_url)
    added = registry.add(shop_tenant())
    assert added.created_at is not None and added.created_at.tzinfo is not None
    assert registry.get("acme") == added
    assert added.source_settings == {
        "shop_url": "https://acme.myshopify.com",
        "token_env": "ACME_TOKEN",
        "api_version": "2025-01",
    }
    registry.add(shop_tenant("globex", source_kind="file", source_settings=file_settings("/data/globex.csv")))
    assert registry.list_ids() == ["acme", "globex"]
    assert registry.set_status("globex", "paused").status == "paused"
    assert registry.list_ids(status="active") == ["acme"]
    registry.remove("acme")
    with pytest.raises(TenantNotFound, match="acme"):
        registry.get("acme")


def test_duplicate_is_refused_and_upsert_updates(warehouse_url):
    registry = TenantRegistry(warehouse_url)
    first = registry.add(shop_tenant())
    with pytest.raises(RegistryError, match="already registered"):
        registry.add(shop_tenant())
    moved = registry.upsert(
        shop_tenant(source_settings=shopify_settings("http://127.0.0.1:9/shops/acme", "ACME_TOKEN"))
    )
    assert moved.source_settings["shop_url"] == "http://127.0.0.1:9/shops/acme"
    assert moved.created_at == first.created_at


def test_only_the_token_variable_name_is_stored(warehouse_url, monkeypatch):
    monkeypatch.setenv("ACME_TOKEN", "shpat_secret_value")
    registry = TenantRegistry(warehouse_url)
    registry.add(shop_tenant())
    with registry.engine.connect() as conn:
        dumped = " ".join(str(value) for row in conn.execute(sa.text("select * from tenants")) for value in row)
    assert "ACME_TOKEN" in dumped and "shpat_secret_value" not in dumped


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"currency": "euro"}, "currency"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"status": "deleted"}, "status"),
    ],
)
def test_bad_fields_name_tenant_field_and_fix(overrides, message, tmp_path):
    registry = TenantRegistry(f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(RegistryError, match=f"tenant acme: .*{message}"):
        registry.add(shop_tenant(**overrides))


@pytest.mark.parametrize("bad_id", ["a|b", "../x", "A", "x" * 64, "", "x'; drop table tenants; --"])
def test_tenant_ids_are_validated_before_any_sql(bad_id, tmp_path):
    registry = TenantRegistry(f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(InvalidTenantId):
        registry.add(shop_tenant(bad_id))
    with pytest.raises(InvalidTenantId):
        registry.get(bad_id)
    assert registry.list() == []


@pytest.mark.parametrize(
    "shop_url, token_env, message",
    [
        ("ftp://acme", "ACME_TOKEN", "http"),
        ("https://user:pw@acme.myshopify.com", "ACME_TOKEN", "credentials"),
        ("https://acme.myshopify.com", "shpat_123abc", "token-env"),
    ],
)
def test_shop_settings_refuse_secrets_in_the_wrong_place(shop_url, token_env, message):
    with pytest.raises(RegistryError, match=message):
        shopify_settings(shop_url, token_env)
