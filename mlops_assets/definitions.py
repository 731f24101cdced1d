"""The one place where the code location is assembled.

`defs` is built when Dagster loads the code location (`@dg.definitions`), not when this module is
imported: the settings, and with them the partition window, are read once, then.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets import features, ingestion, monitoring, predictions, training
from mlops_assets.automation import health, jobs, schedules, sensors
from mlops_assets.executors import run_executor
from mlops_assets.io_managers import LakeIOManager, WarehouseIOManager
from mlops_assets.isolation import run_verdict
from mlops_assets.partitions import TenantDayPartitions
from mlops_assets.resources import (
    LakeResource,
    ModelPolicyResource,
    ModelRegistryResource,
    MonitoringPolicyResource,
    ShopApiResource,
    TenantRegistryResource,
    WebhookResource,
)
from mlops_assets.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    def configured(field: str):
        """An `EnvVar` when the environment holds the value, so the UI shows its name, not a secret."""
        name = settings.env_var(field)
        return dg.EnvVar(name) if name else getattr(settings, field)

    lake_url, warehouse_url = configured("lake_url"), configured("warehouse_url")
    endpoint = configured("s3_endpoint_url")
    partitions = TenantDayPartitions.from_settings(settings)
    assets = [
        asset
        for stage in (ingestion, features, training, predictions, monitoring)
        for asset in stage.build_assets(partitions)
    ]
    return dg.Definitions(
        # The verdict is listed with the assets (a checks definition is one) so copies of `assets` keep it.
        assets=[*assets, run_verdict(key for asset in assets for key in asset.keys)],
        jobs=[
            jobs.daily_cycle_job,
            jobs.retrain_job,
            jobs.ingest_days_job,
            jobs.ingest_history_job,
            jobs.rollback_job,
        ],
        schedules=[schedules.daily_cycle_schedule, schedules.weekly_retrain_schedule],
        sensors=[
            sensors.tenant_registry_sensor,
            sensors.onboarding_sensor,
            sensors.drift_retrain_sensor,
            sensors.rollback_sensor,
            sensors.healing_sensor,
            health.fleet_health_sensor,
        ],
        resources={
            "lake": LakeResource(url=lake_url, s3_endpoint_url=endpoint),
            "lake_io_manager": LakeIOManager(url=lake_url, s3_endpoint_url=endpoint),
            "warehouse_io_manager": WarehouseIOManager(warehouse_url=warehouse_url),
            "tenants": TenantRegistryResource(warehouse_url=warehouse_url),
            "shop_api": ShopApiResource(),
            "models": ModelRegistryResource(
                tracking_uri=configured("mlflow_tracking_uri"),
                artifact_uri=configured("mlflow_artifact_uri"),
                s3_endpoint_url=endpoint,
            ),
            "policy": ModelPolicyResource(),
            "monitoring": MonitoringPolicyResource(),
            "webhook": WebhookResource(url=configured("webhook_url")),
        },
        executor=run_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(Settings.from_env())
