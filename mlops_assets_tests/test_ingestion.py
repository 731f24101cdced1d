"""The ingestion assets run by Dagster against the emulator, into a local or S3 lake."""

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.lake import files as lake
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, shopify_settings
from mlops_assets.definitions import defs
from mlops_assets.ingestion import raw_asset
from mlops_assets.io_managers import LakeIOManager
from mlops_assets.isolation import run_verdict
from mlops_assets.partitions import TENANTS, TenantDayPartitions
from mlops_assets.resources import LakeResource, ShopApiResource, TenantRegistryResource
from mlops_assets.sim.shop_emulator import Faults
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import customer_orders, lake_customer_orders, lake_digests

PARTITIONS = TenantDayPartitions.of(defs())
RAW_ASSETS = [raw_asset(resource, PARTITIONS) for resource in ("orders", "customers")]
VERDICT = run_verdict(asset.key for asset in RAW_ASSETS)
LAST = PARTITIONS.last_day
DAYS = [LAST - timedelta(days=k) for k in (2, 1, 0)]


@pytest.fixture(scope="module")
def shops():
    return {
        "acme": SyntheticShop(
            ShopSpec(
                "acme", customers=1200, seed=1, end=LAST, history_days=120, timezone="America/New_York", currency="USD"
            )
        ),
        "globex": SyntheticShop(
            ShopSpec(
                "globex", customers=600, seed=2, end=LAST, history_days=120, timezone="Europe/Berlin", currency="EUR"
            )
        ),
    }


@pytest.fixture(params=["local", "s3"])
def lake_config(request, tmp_path):
    if request.param == "local":
        return {"url": str(tmp_path / "lake"), "s3_endpoint_url": None}
    return {"url": request.getfixturevalue("s3_lake_url"), "s3_endpoint_url": request.getfixturevalue("s3_endpoint")}


def setup(warehouse_url, emulator, monkeypatch, currencies=None):
    monkeypatch.setenv("SHOP_TOKEN", "shpat_test_token")
    registry = TenantRegistry(warehouse_url)
    currencies = currencies or {"acme": "USD", "globex": "EUR"}
    zones = {"acme": "America/New_York", "globex": "Europe/Berlin"}
    for name in ("acme", "globex"):
        registry.upsert(
            Tenant(
                name,
                name.title(),
                "shopify",
                shopify_settings(emulator.shop_url(name), "SHOP_TOKEN"),
                zones[name],
                currencies[name],
            )
        )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["acme", "globex"])
    return instance


def resources(warehouse_url, lake_config, **shop_options):
    return {
        "lake": LakeResource(**lake_config),
        "lake_io_manager": LakeIOManager(**lake_config),
        "tenants": TenantRegistryResource(warehouse_url=warehouse_url),
        "shop_api": ShopApiResource(leak_per_s=1000.0, page_limit=50, **shop_options),
    }


def run_rectangle(instance, res, first, last, low="acme", high="globex", raise_on_error=True):
    return dg.materialize(
        [*RAW_ASSETS, VERDICT],
        instance=instance,
        resources=res,
        raise_on_error=raise_on_error,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{first.isoformat()}|{low}",
            ASSET_PARTITION_RANGE_END_TAG: f"{last.isoformat()}|{high}",
        },
    )


def test_one_run_covers_tenants_x_days_with_metadata_per_partition(
    tmp_path, lake_config, shops, emulator_factory, monkeypatch
):
    warehouse = f"sqlite:///{tmp_path / 'w.db'}"
    emulator = emulator_factory(shops, bucket=(40, 1000.0))
    instance = setup(warehouse, emulator, monkeypatch)
    result = run_rectangle(instance, resources(warehouse, lake_config), DAYS[0], DAYS[-1])
    assert result.success
    materializations = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    assert len(materializations) == 2 * 2 * 3
    by_key = {
        (m.asset_key.path[-1], m.partition): {k: v.value for k, v in m.metadata.items()} for m in materializations
    }
    meta = by_key[("raw_orders", f"{DAYS[1].isoformat()}|acme")]
    assert meta["path"].endswith(f"raw_orders/tenant=acme/date={DAYS[1].isoformat()}/part-0.parquet")
    assert meta["digest"].startswith("sha256:") and meta["api_requests"] >= 1 and meta["quarantined"] == 0
    root = lake.lake_root(lake_config["url"], lake_config["s3_endpoint_url"])
    stored = lake.read_frame(lake.partition_path(root, "raw_orders", "globex", DAYS[1]))
    assert len(stored) == meta_rows(by_key, "raw_orders", DAYS[1], "globex") and (stored["currency"] == "EUR").all()
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert "shpat_test_token" not in str(by_key)


def meta_rows(by_key, asset, day, tenant):
    return by_key[(asset, f"{day.isoformat()}|{tenant}")]["rows"]


def test_rerun_with_faults_writes_exactly_what_a_clean_run_wrote(tmp_path, shops, emulator_factory, monkeypatch):
    warehouse = f"sqlite:///{tmp_path / 'w.db'}"
    clean_lake = {"url": str(tmp_path / "clean"), "s3_endpoint_url": None}
    faulty_lake = {"url": str(tmp_path / "faulty"), "s3_endpoint_url": None}
    clean = emulator_factory(shops, bucket=(40, 1000.0))
    instance = setup(warehouse, clean, monkeypatch)
    assert run_rectangle(instance, resources(warehouse, clean_lake), DAYS[0], DAYS[-1]).success

    faulty = emulator_factory(
        shops,
        faults=Faults(server_error_rate=0.15, drop_rate=0.05, malformed_body_rate=0.05, seed=9),
        bucket=(40, 1000.0),
    )
    setup(warehouse, faulty, monkeypatch)
    faulty_resources = resources(warehouse, faulty_lake, max_failures=30)
    first = run_rectangle(instance, faulty_resources, DAYS[0], DAYS[-1])
    again = run_rectangle(instance, faulty_resources, DAYS[0], DAYS[-1])
    assert first.success and again.success
    assert lake_digests(clean_lake) == lake_digests(faulty_lake)


def test_malformed_records_are_quarantined_and_counted(tmp_path, shops, emulator_factory, monkeypatch):
    warehouse = f"sqlite:///{tmp_path / 'w.db'}"
    lake_config = {"url": str(tmp_path / "lake"), "s3_endpoint_url": None}
    emulator = emulator_factory(shops, faults=Faults(malformed_record_rate=0.1, seed=4), bucket=(40, 1000.0))
    instance = setup(warehouse, emulator, monkeypatch)
    result = run_rectangle(instance, resources(warehouse, lake_config), DAYS[-1], DAYS[-1], "acme", "acme")
    meta = {
        e.event_specific_data.materialization.asset_key.path[-1]: {
            k: v.value for k, v in e.event_specific_data.materialization.metadata.items()
        }
        for e in result.get_asset_materialization_events()
    }
    quarantined = meta["raw_orders"]["quarantined"]
    assert quarantined > 0
    stored = lake.read_frame(lake.quarantine_path(lake.lake_root(lake_config["url"]), "raw_orders", "acme", DAYS[-1]))
    assert len(stored) == quarantined and stored["error"].str.contains("tenant acme: orders record").all()
    assert (stored["reason"] == "invalid_record").all() and meta["raw_orders"]["quarantined_by_reason"] == {
        "invalid_record": quarantined
    }
    orders = shops["acme"].orders
    start, end = (
        pd.Timestamp(str(DAYS[-1]), tz="America/New_York"),
        pd.Timestamp(str(DAYS[-1] + timedelta(days=1)), tz="America/New_York"),
    )
    updated_that_day = ((orders["updated_at"] >= start) & (orders["updated_at"] < end)).sum()
    assert meta["raw_orders"]["rows"] + quarantined == updated_that_day, "nothing is silently dropped"
    assert meta["raw_orders"]["rows_read"] == updated_that_day
    in_warehouse = customer_orders(warehouse, "acme")
    assert in_warehouse == lake_customer_orders(lake.lake_root(lake_config["url"]), "acme") and in_warehouse
    assert meta["raw_orders"]["customer_orders"] == len(in_warehouse)
    assert not set(stored["record_id"]) & set(in_warehouse), "no quarantined order reaches the warehouse"


def test_a_wrong_tenant_currency_quarantines_every_order_and_blocks_only_that_tenant_day(
    postgres_url, tmp_path, shops, emulator_factory, monkeypatch
):
    emulator = emulator_factory(shops, bucket=(40, 1000.0))
    instance = setup(postgres_url, emulator, monkeypatch, currencies={"acme": "EUR", "globex": "EUR"})
    result = run_rectangle(
        instance,
        resources(postgres_url, {"url": str(tmp_path / "lake"), "s3_endpoint_url": None}),
        DAYS[-1],
        DAYS[-1],
        raise_on_error=False,
    )
    assert not result.success
    evaluations = {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.path[-1] == "raw_orders"
    }
    currency, usable = evaluations["currency_matches_tenant"], evaluations["usable_partition"]
    assert not currency.passed and not currency.blocking, "a record rule warns"
    assert not usable.passed and usable.blocking, "every order quarantined: the data as a whole is unusable"
    acme = f"{DAYS[-1].isoformat()}|acme"
    assert usable.metadata["failed_partitions"].value == [acme]
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    reason = failure.step_failure_data.user_failure_data.description
    assert f"raw_orders {acme}: tenant acme {acme}: blocking gate failed: usable_partition:" in reason, reason
    assert "foreign_currency" in reason and "(fix: the shop's currency or `mlops tenants` currency)" in reason
    first = sorted(str(i) for i in shops["acme"].orders["order_id"])
    assert any(order_id in reason for order_id in first), "the first offending order ids"
    assert "globex" not in reason


def test_missing_token_variable_names_tenant_variable_and_fix(tmp_path, shops, emulator_factory, monkeypatch):
    warehouse = f"sqlite:///{tmp_path / 'w.db'}"
    emulator = emulator_factory(shops, bucket=(40, 1000.0))
    instance = setup(warehouse, emulator, monkeypatch)
    monkeypatch.delenv("SHOP_TOKEN")
    with pytest.raises(Exception, match="tenant acme: environment variable SHOP_TOKEN.*fix"):
        run_rectangle(
            instance,
            resources(warehouse, {"url": str(tmp_path / "lake"), "s3_endpoint_url": None}),
            DAYS[-1],
            DAYS[-1],
            "acme",
            "acme",
        )
