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
from mlops_assets.core.monitoring.events import OperatorEvent, deliver
from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
from mlops_assets.core.sources.ingest import shopify_client
from mlops_assets.core.sources.shopify import ShopifyClient
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry


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

    page_limit: int = 250
    bucket_capacity: int = 40
    leak_per_s: float = 2.0
    max_failures: int = 8
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    def client(self, tenant: Tenant) -> ShopifyClient:
        return shopify_client(
            tenant,
            page_limit=self.page_limit,
            bucket_capacity=self.bucket_capacity,
            leak_per_s=self.leak_per_s,
            max_failures=self.max_failures,
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


class ModelPolicyResource(dg.ConfigurableResource):
    """Training plan defaults, cold-start thresholds, promotion gates and risk bands; the same for every tenant."""

    train_snapshots: int = 20
    step_days: int = 14
    min_history_days: int = 180
    min_holdout_customers: int = 200
    min_train_positives: int = 50
    min_holdout_positives: int = 20
    baseline_margin: float = 0.0
    production_margin: float = 0.0
    # After a drift alarm the holdout predates the change, so a fresh candidate may trail production by this
    # much there: it has seen the new regime, and the rollback sensor undoes the bet if it loses in reality.
    drift_production_margin: float = -0.01
    max_single_row_p99_ms: float = 100.0
    max_batch_10k_ms: float = 2000.0
    max_peak_memory_mb: float = 512.0
    high_risk_below: float = 0.10
    medium_risk_below: float = 0.30

    def plan(self, cutoff, horizon_days: int):
        from mlops_assets.core.ml.training_data import TrainingPlan

        return TrainingPlan(cutoff, horizon_days, self.train_snapshots, self.step_days)

    def thresholds(self):
        from mlops_assets.core.ml.training_data import ColdStartThresholds

        return ColdStartThresholds(
            self.min_history_days, self.min_holdout_customers, self.min_train_positives, self.min_holdout_positives
        )

    def promotion(self, after_drift: bool = False):
        from mlops_assets.core.ml.promotion import PromotionPolicy

        return PromotionPolicy(
            self.baseline_margin,
            self.drift_production_margin if after_drift else self.production_margin,
            self.max_single_row_p99_ms,
            self.max_batch_10k_ms,
            self.max_peak_memory_mb,
            refresh_fallback=after_drift,
        )

    def bands(self):
        from mlops_assets.core.ml.scoring import RiskBands

        return RiskBands(self.high_risk_below, self.medium_risk_below)


class MonitoringPolicyResource(dg.ConfigurableResource):
    """Drift, performance, rollback and retrain thresholds for every tenant; the registry may override them."""

    column_drift: float = 0.1
    drifted_share: float = 0.1
    prediction_psi: float = 0.2
    auc_floor: float = 0.6
    max_auc_drop: float = 0.1
    rollback_margin: float = 0.03
    probation_days: int = 60
    cooldown_days: int = 7
    sample_rows: int = 5000

    def thresholds(self, tenant: Tenant) -> MonitoringThresholds:
        defaults = MonitoringThresholds(**{name: getattr(self, name) for name in MonitoringThresholds.names()})
        return defaults.overridden(tenant.tenant_id, tenant.monitoring)


class WebhookResource(dg.ConfigurableResource):
    """Where operator events go besides Dagster's logs: a URL taking JSON POSTs (Slack, Teams, PagerDuty...)."""

    url: str | None = None

    def announce(self, log, event: OperatorEvent) -> str:
        """Log the event and post it; returns the delivery status for metadata."""
        notice = log.warning if event.kind in ("drift_detected", "performance_below_floor", "rolled_back") else log.info
        notice(f"[{event.kind}] {event.tenant_id} {event.day}: {event.message}")
        status = deliver(event, self.url)
        if status.startswith("webhook delivery failed"):
            log.warning(f"{event.kind} for {event.tenant_id}: {status}")
        return status
