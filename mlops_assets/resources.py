"""Configurable resources: the lake, the tenant registry (warehouse DB) and the shop API client.

Connection strings are passed as `EnvVar`s by definitions.py when they come from the
environment, so the Dagster UI shows the variable's name, never a password in a URL.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import dagster as dg
from upath import UPath

from mlops_assets.core.lake.files import lake_root
from mlops_assets.core.ml.promotion import PromotionPolicy
from mlops_assets.core.ml.scoring import RiskBands
from mlops_assets.core.ml.training_data import ColdStartThresholds, TrainingPlan
from mlops_assets.core.monitoring.events import OperatorEvent, deliver
from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
from mlops_assets.core.sources.ingest import shopify_client
from mlops_assets.core.sources.shopify import ShopifyClient
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry
from mlops_assets.settings import shop_token


class LakeResource(dg.ConfigurableResource):
    """Where raw data, features and reports live: a local directory or s3://bucket/prefix."""

    url: str
    s3_endpoint_url: str | None = None

    def root(self) -> UPath:
        return lake_root(self.url, self.s3_endpoint_url)


class TenantRegistryResource(dg.ConfigurableResource):
    """The registry, and how far back a new tenant's history sweep reaches before the partition window."""

    warehouse_url: str
    history_days: int | None = 730

    def registry(self) -> TenantRegistry:
        return TenantRegistry(self.warehouse_url)

    def history_start(self, window_start: date) -> date | None:
        return None if self.history_days is None else window_start - timedelta(days=self.history_days)


class ShopApiResource(dg.ConfigurableResource):
    """Client settings for Shopify-shaped shop APIs; tokens come from each tenant's token_env."""

    page_limit: int = ShopifyClient.page_limit
    bucket_capacity: int = ShopifyClient.bucket_capacity
    leak_per_s: float = ShopifyClient.leak_per_s
    max_failures: int = ShopifyClient.max_failures
    max_retry_wait_s: float = ShopifyClient.max_retry_wait_s
    connect_timeout_s: float = ShopifyClient.timeout[0]
    read_timeout_s: float = ShopifyClient.timeout[1]

    def client(self, tenant: Tenant) -> ShopifyClient:
        return shopify_client(
            tenant,
            shop_token(tenant.tenant_id, tenant.source.token_env),
            page_limit=self.page_limit,
            bucket_capacity=self.bucket_capacity,
            leak_per_s=self.leak_per_s,
            max_failures=self.max_failures,
            max_retry_wait_s=self.max_retry_wait_s,
            timeout=(self.connect_timeout_s, self.read_timeout_s),
        )


class ModelRegistryResource(dg.ConfigurableResource):
    """MLflow tracking server and model registry (one registered model per tenant)."""

    tracking_uri: str
    artifact_uri: str
    s3_endpoint_url: str | None = None

    def registry(self):
        return _model_registry(self.tracking_uri, self.artifact_uri, self.s3_endpoint_url)


@functools.cache
def _model_registry(tracking_uri: str, artifact_uri: str, s3_endpoint_url: str | None):
    """One client per process and store: opening MLflow's store cost 0.44 s, paid by every step that scores."""
    from mlops_assets.core.ml.tracking import ModelRegistry

    return ModelRegistry(tracking_uri, artifact_uri, s3_endpoint_url)


class ModelPolicyResource(dg.ConfigurableResource, PromotionPolicy):
    """Training plan, cold-start thresholds, promotion gates and risk bands; the same for every tenant.

    The promotion gates are `PromotionPolicy`'s fields; the other defaults are those of the core types they build.
    """

    train_snapshots: int = TrainingPlan.train_snapshots
    step_days: int = TrainingPlan.step_days
    min_history_days: int = ColdStartThresholds.min_history_days
    min_holdout_customers: int = ColdStartThresholds.min_holdout_customers
    min_train_positives: int = ColdStartThresholds.min_train_positives
    min_holdout_positives: int = ColdStartThresholds.min_holdout_positives
    high_churn_from: float = RiskBands.high_from
    medium_churn_from: float = RiskBands.medium_from

    def plan(self, cutoff, horizon_days: int) -> TrainingPlan:
        return TrainingPlan(cutoff, horizon_days, self.train_snapshots, self.step_days)

    def thresholds(self) -> ColdStartThresholds:
        return ColdStartThresholds(
            self.min_history_days, self.min_holdout_customers, self.min_train_positives, self.min_holdout_positives
        )

    def promotion(self, after_drift: bool = False) -> PromotionPolicy:
        policy = PromotionPolicy(**{name: getattr(self, name) for name in PromotionPolicy.model_fields})
        return policy.after_drift() if after_drift else policy

    def bands(self) -> RiskBands:
        return RiskBands(self.high_churn_from, self.medium_churn_from)


class MonitoringPolicyResource(dg.ConfigurableResource, MonitoringThresholds):
    """Drift, performance, rollback and retrain thresholds for every tenant (`MonitoringThresholds`' fields and
    defaults); the registry may override them per tenant."""

    def thresholds(self, tenant: Tenant) -> MonitoringThresholds:
        return self.overridden(tenant.tenant_id, tenant.monitoring)


class WebhookResource(dg.ConfigurableResource):
    """Where operator events go besides Dagster's logs: a URL taking JSON POSTs (Slack, Teams, PagerDuty...)."""

    url: str | None = None

    def announce(self, log, event: OperatorEvent) -> str:
        """Log the event and post it; returns the delivery status for metadata."""
        alarming = ("drift_detected", "performance_below_floor", "rolled_back", "stale", "quarantine_spike")
        notice = log.warning if event.kind in alarming else log.info
        notice(f"[{event.kind}] {event.tenant_id} {event.day}: {event.message}")
        status = deliver(event, self.url)
        if status.startswith("webhook delivery failed"):
            log.warning(f"{event.kind} for {event.tenant_id}: {status}")
        return status
