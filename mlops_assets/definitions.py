"""The one place where the code location is assembled.

`defs` is built when Dagster loads the code location (`@dg.definitions`), not when this module is
imported: the settings, and with them the partition window, are read once, then.
"""

from __future__ import annotations

import os

import dagster as dg

from mlops_assets import automation, features, ingestion, monitoring, predictions, training
from mlops_assets.executors import run_executor
from mlops_assets.io_managers import LakeIOManager, WarehouseIOManager
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


def _from_env(name: str, value: str | None):
    """An `EnvVar` when the value came from the environment, so the UI shows its name, not a secret."""
    return dg.EnvVar(name) if os.environ.get(name) else value


def build_defs(settings: Settings) -> dg.Definitions:
    lake_url = _from_env("MLOPS_LAKE_URL", settings.lake_url)
    warehouse_url = _from_env("MLOPS_WAREHOUSE_URL", settings.warehouse_url)
    endpoint = _from_env("MLOPS_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    partitions = TenantDayPartitions.from_settings(settings)
    return dg.Definitions(
        assets=[
            asset
            for stage in (ingestion, features, training, predictions, monitoring)
            for asset in stage.build_assets(partitions)
        ],
        jobs=[
            automation.daily_cycle_job,
            automation.retrain_job,
            automation.ingest_days_job,
            automation.ingest_history_job,
            automation.rollback_job,
        ],
        schedules=[automation.daily_cycle_schedule, automation.weekly_retrain_schedule],
        sensors=[
            automation.tenant_registry_sensor,
            automation.onboarding_sensor,
            automation.drift_retrain_sensor,
            automation.rollback_sensor,
        ],
        resources={
            "lake": LakeResource(url=lake_url, s3_endpoint_url=endpoint),
            "lake_io_manager": LakeIOManager(url=lake_url, s3_endpoint_url=endpoint),
            "warehouse_io_manager": WarehouseIOManager(warehouse_url=warehouse_url),
            "tenants": TenantRegistryResource(warehouse_url=warehouse_url),
            "shop_api": ShopApiResource(),
            "models": ModelRegistryResource(
                tracking_uri=_from_env("MLOPS_MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri),
                artifact_uri=_from_env("MLOPS_MLFLOW_ARTIFACTS_URL", settings.mlflow_artifact_uri),
                s3_endpoint_url=endpoint,
            ),
            "policy": ModelPolicyResource(),
            "monitoring": MonitoringPolicyResource(),
            "webhook": WebhookResource(url=_from_env("MLOPS_WEBHOOK_URL", None)),
        },
        executor=run_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(Settings.from_env())
