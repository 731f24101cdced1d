"""A snapshot of the asset graph: keys, deps, partitions, checks, resources, sensors.

A change here is a change to what operators see in the lineage UI: update the snapshot on purpose.
"""

import dagster as dg

from mlops_assets.definitions import defs

EXPECTED_CHECKS = {
    "raw_orders": {
        "schema_valid": True,
        "unique_ids": True,
        "non_negative_amounts": True,
        "currency_matches_tenant": True,
        "timestamps_in_day": True,
        "no_extreme_outliers": True,
        "row_count_in_range": False,
        "quarantine_share": False,
    },
    "raw_customers": {"schema_valid": True, "unique_ids": True, "timestamps_in_day": True, "quarantine_share": False},
}


def test_asset_graph_snapshot():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"raw_orders", "raw_customers"}
    for name in keys:
        node = graph.get(dg.AssetKey(name))
        assert node.parent_keys == set()
        assert node.group_name == "ingestion"
        partitions = node.partitions_def
        assert isinstance(partitions, dg.MultiPartitionsDefinition)
        dims = {d.name: d.partitions_def for d in partitions.partitions_defs}
        assert set(dims) == {"date", "tenant"}
        assert isinstance(dims["tenant"], dg.DynamicPartitionsDefinition) and dims["tenant"].name == "tenants"
        assert isinstance(dims["date"], dg.DailyPartitionsDefinition)
        assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_checks_snapshot():
    graph = defs.resolve_asset_graph()
    found = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        found.setdefault(check_key.asset_key.to_user_string(), {})[check_key.name] = spec.blocking
    assert found == EXPECTED_CHECKS


def test_resources_and_sensors():
    assert set(defs.resources) >= {"lake", "lake_io_manager", "tenants", "shop_api"}
    assert [sensor.name for sensor in defs.sensors] == ["tenant_registry_sensor"]
    defs.validate_loadable(defs)
