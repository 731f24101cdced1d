"""The registry sensor keeps the `tenants` partitions in step; runs batch neighbouring tenants."""

from datetime import date

import dagster as dg

from mlops_assets.automation.batching import tenant_runs
from mlops_assets.automation.decisions import (
    FRESH_MODEL_DAYS,
    cycle_requests,
    partition_changes,
    sync_tenant_partitions,
)
from mlops_assets.automation.sensors import tenant_registry_sensor
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, file_settings
from mlops_assets.partitions import TENANTS, tenant_and_day, tenant_day_key
from mlops_assets.resources import TenantRegistryResource


def register(registry, *ids):
    for tenant_id in ids:
        registry.add(Tenant(tenant_id, tenant_id, "file", file_settings(f"/data/{tenant_id}.csv")))


def evaluate_sensor(instance, warehouse_url):
    context = dg.build_sensor_context(
        instance=instance, resources={"tenants": TenantRegistryResource(warehouse_url=warehouse_url)}
    )
    result = tenant_registry_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def test_sensor_adds_and_removes_partitions(warehouse_url):
    registry = TenantRegistry(warehouse_url)
    instance = dg.DagsterInstance.ephemeral()
    register(registry, "acme", "globex")
    evaluate_sensor(instance, warehouse_url)
    assert sorted(instance.get_dynamic_partitions(TENANTS)) == ["acme", "globex"]
    assert isinstance(evaluate_sensor(instance, warehouse_url), dg.SkipReason)
    registry.remove("acme")
    register(registry, "initech")
    evaluate_sensor(instance, warehouse_url)
    assert sorted(instance.get_dynamic_partitions(TENANTS)) == ["globex", "initech"]


def test_paused_tenants_keep_their_partition(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    registry = TenantRegistry(url)
    register(registry, "acme")
    registry.set_status("acme", "paused")
    instance = dg.DagsterInstance.ephemeral()
    assert sync_tenant_partitions(instance, registry) == (["acme"], [])


def test_invalid_ids_never_become_partitions():
    assert partition_changes(["ok-1", "a|b", "../x", "UP"], ["stale"]) == (["ok-1"], ["stale"])


def test_runs_cover_contiguous_tenants_only():
    order = ["a1", "b2", "c3", "d4", "e5"]
    assert tenant_runs(order, order) == [("a1", "e5")]
    assert tenant_runs(order, ["a1", "b2", "d4"]) == [("a1", "b2"), ("d4", "d4")]
    assert tenant_runs(order, []) == []
    assert tenant_runs(order, order, max_tenants=2) == [("a1", "b2"), ("c3", "d4"), ("e5", "e5")]
    assert tenant_runs(order, ["a1", "b2", "c3", "e5"], max_tenants=2) == [("a1", "b2"), ("c3", "c3"), ("e5", "e5")]


def test_partition_keys_round_trip():
    key = tenant_day_key("acme", date(2026, 1, 10))
    assert str(key) == "2026-01-10|acme"
    assert tenant_and_day("2026-01-10|acme") == ("acme", date(2026, 1, 10))


def test_the_weekly_retrain_leaves_out_tenants_whose_model_is_days_old(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    registry = TenantRegistry(url)
    register(registry, "fresh", "new", "old", "signing-up")
    instance = dg.DagsterInstance.ephemeral()
    sync_tenant_partitions(instance, registry)
    sunday = date(2026, 11, 22)
    decided = {"fresh": date(2026, 11, 20), "new": date(2026, 11, 19), "old": date(2026, 11, 15)}
    for tenant_id, day in decided.items():
        instance.report_runless_asset_event(
            dg.AssetMaterialization("production_model", partition=str(tenant_day_key(tenant_id, day)))
        )

    def ranges(cycle):
        return [(request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG])
                for request in cycle_requests(cycle, instance, registry, sunday)]  # fmt: skip

    assert ranges("daily") == [("2026-11-22|fresh", "2026-11-22|old")]  # every onboarded tenant
    assert ranges("weekly") == [("2026-11-22|new", "2026-11-22|old")]  # fresh: decided on 2 days ago
    assert FRESH_MODEL_DAYS == 3
