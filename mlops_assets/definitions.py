"""The one place where the code location is assembled."""

from __future__ import annotations

import os

import dagster as dg

from mlops_assets import automation, ingestion
from mlops_assets.io_managers import LakeIOManager
from mlops_assets.resources import LakeResource, ShopApiResource, TenantRegistryResource
from mlops_assets.settings import Settings


def _from_env(name: str, value: str | None):
    """An `EnvVar` when the value came from the environment, so the UI shows its name, not a secret."""
    return dg.EnvVar(name) if os.environ.get(name) else value


def build_defs(settings: Settings) -> dg.Definitions:
    lake_url = _from_env("MLOPS_LAKE_URL", settings.lake_url)
    endpoint = _from_env("MLOPS_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    return dg.Definitions(
        assets=[ingestion.raw_orders, ingestion.raw_customers],
        sensors=[automation.tenant_registry_sensor],
        resources={
            "lake": LakeResource(url=lake_url, s3_endpoint_url=endpoint),
            "lake_io_manager": LakeIOManager(url=lake_url, s3_endpoint_url=endpoint),
            "tenants": TenantRegistryResource(warehouse_url=_from_env("MLOPS_WAREHOUSE_URL", settings.warehouse_url)),
            "shop_api": ShopApiResource(),
        },
    )


defs = build_defs(Settings.from_env())
