"""A snapshot of the asset graph: keys, deps, partitions, checks, resources, sensors.

A change here is a change to what operators see in the lineage UI: update the snapshot on purpose.
"""

import dagster as dg

from mlops_assets.definitions import defs
from mlops_assets_tests.helpers import EXPECTED_CHECKS

DEFS = defs()

TENANT_DAY, TENANT = "tenant x date", "tenant"
EXPECTED_ASSETS = {
    # name: (group, partitioning, parents)
    "raw_orders": ("ingestion", TENANT_DAY, set()),
    "raw_customers": ("ingestion", TENANT_DAY, set()),
    "raw_orders_history": ("ingestion", TENANT, set()),
    "raw_customers_history": ("ingestion", TENANT, set()),
    "customer_features": ("features", TENANT_DAY, {"raw_orders", "raw_orders_history"}),
    "training_set": ("training", TENANT_DAY, {"raw_orders", "raw_orders_history"}),
    "candidate_model": ("training", TENANT_DAY, {"training_set"}),
    "production_model": ("training", TENANT_DAY, {"candidate_model", "training_set"}),
    "predictions": ("predictions", TENANT_DAY, {"customer_features", "production_model"}),
    "drift_report": ("monitoring", TENANT_DAY, {"customer_features", "predictions"}),
    "realized_performance": ("monitoring", TENANT_DAY, {"raw_orders", "raw_orders_history", "predictions"}),
}


def partitioning(partitions_def) -> str:
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        assert partitions_def.name == "tenants"
        return TENANT
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    dims = {d.name: d.partitions_def for d in partitions_def.partitions_defs}
    assert isinstance(dims["tenant"], dg.DynamicPartitionsDefinition) and dims["tenant"].name == "tenants"
    assert isinstance(dims["date"], dg.DailyPartitionsDefinition)
    return TENANT_DAY


def test_asset_graph_snapshot():
    graph = DEFS.resolve_asset_graph()
    found = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        parents = {parent.to_user_string() for parent in node.parent_keys}
        found[key.to_user_string()] = (node.group_name, partitioning(node.partitions_def), parents)
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), "tenant-days batch into runs"
    assert found == EXPECTED_ASSETS


def test_checks_snapshot():
    graph = DEFS.resolve_asset_graph()
    found = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        found.setdefault(check_key.asset_key.to_user_string(), {})[check_key.name] = spec.blocking
    assert found == EXPECTED_CHECKS


def test_resources_and_sensors():
    assert set(DEFS.resources) >= {
        "lake",
        "lake_io_manager",
        "warehouse_io_manager",
        "tenants",
        "shop_api",
        "models",
        "policy",
        "monitoring",
        "webhook",
    }
    assert {sensor.name for sensor in DEFS.sensors} == {
        "tenant_registry_sensor", "onboarding_sensor", "drift_retrain_sensor", "rollback_sensor", "healing_sensor",
        "fleet_health_sensor",
    }  # fmt: skip
    assert {schedule.name: schedule.cron_schedule for schedule in DEFS.schedules} == {
        "daily_cycle_schedule": "0 11 * * *",
        "weekly_retrain_schedule": "0 13 * * 0",
    }
    repository = DEFS.get_repository_def()
    assert {job.name for job in repository.get_all_jobs()} >= {
        "daily_cycle", "retrain", "ingest_days", "ingest_history", "rollback",
    }  # fmt: skip
    dg.Definitions.validate_loadable(DEFS)


def test_code_location_load_stays_light():
    """Dagster imports the code location for every run and UI reload: MLflow, LightGBM, scikit-learn and
    Evidently load only inside the steps that use them, Celery and the Kubernetes client only when
    `MLOPS_EXECUTOR` chooses them (DESIGN.md, 'Runs are expensive')."""
    import subprocess
    import sys

    heavy = (
        "mlflow",
        "lightgbm",
        "sklearn",
        "evidently",
        "matplotlib",
        "celery",
        "dagster_celery",
        "kubernetes",
        "alembic",
    )
    probe = f"import sys, mlops_assets.definitions as d; d.defs(); print(sorted(set({heavy!r}) & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
