"""The jobs the daemon launches and the tags that tell their runs apart (read back by decisions, CLI, benchmarks)."""

from datetime import date

import dagster as dg

from mlops_assets.core.monitoring.events import OperatorEvent
from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.partitions import tenant_day_key
from mlops_assets.resources import LakeResource, ModelRegistryResource, TenantRegistryResource, WebhookResource

STAGE_TAG, TRIGGER_TAG, TENANT_TAG, ONBOARDING_TAG = "mlops/stage", "mlops/trigger", "mlops/tenant", "mlops/onboarding"
# The attempt of a piece of work a run is (1: the first; retries count up; automation.attempts.attempt_run_key).
ATTEMPT_TAG = "mlops/attempt"
DAILY_ASSETS = [
    "raw_orders",
    "raw_customers",
    "customer_features",
    "predictions",
    "drift_report",
    "realized_performance",
]
RETRAIN_ASSETS = [
    "customer_features",
    "training_set",
    "candidate_model",
    "production_model",
    "predictions",
    "drift_report",
]
INGEST_ASSETS = ["raw_orders", "raw_customers"]
HISTORY_ASSETS = ["raw_orders_history", "raw_customers_history"]

daily_cycle_job = dg.define_asset_job(
    "daily_cycle", selection=DAILY_ASSETS,
    description="Yesterday for every onboarded tenant: ingest, features, predictions, drift, realized performance.",
)  # fmt: skip
retrain_job = dg.define_asset_job(
    "retrain", selection=RETRAIN_ASSETS,
    description="Train, gate and promote at a cutoff day, then re-predict and re-check drift for that day.",
)  # fmt: skip
ingest_days_job = dg.define_asset_job(
    "ingest_days", selection=INGEST_ASSETS,
    description="Raw orders and customers for days of the window (onboarding, repairs).",
)  # fmt: skip
ingest_history_job = dg.define_asset_job(
    "ingest_history", selection=HISTORY_ASSETS,
    description="A tenant's history before the partition window, in one sweep (onboarding).",
)  # fmt: skip


class RollbackConfig(dg.Config):
    tenant_id: str
    day: str
    from_version: str
    to_version: str
    reason: str


@dg.op(description="Move `production` back to the version a regressed one replaced, after serving checks.")
def roll_back_production(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    models: ModelRegistryResource,
    tenants: TenantRegistryResource,
    lake: LakeResource,
    webhook: WebhookResource,
):
    from mlops_assets.core.ml.candidates import set_production
    from mlops_assets.core.ml.tracking import PRODUCTION
    from mlops_assets.core.ml.training_data import stored_holdout_sample

    registry, tenant_id = models.registry(), validate_tenant_id(config.tenant_id)
    current = registry.alias_version(tenant_id, PRODUCTION)
    if current is None or current.version != config.from_version:
        context.log.info(
            f"{tenant_id}: production is {current and current.version}, not {config.from_version}; nothing to do"
        )
        return
    sample = stored_holdout_sample(
        lake.root(), tenant_id, registry.version(tenant_id, config.to_version).tags.get("cutoff")
    )
    outcome = set_production(
        registry, tenants.warehouse_url, tenant_id, config.to_version, "rollback", config.reason,
        "automation:rollback_sensor", sample,
    )  # fmt: skip
    if not outcome.promoted:
        raise dg.Failure(f"tenant {tenant_id}: {outcome.reason}", metadata={"tenant": tenant_id})
    delivery = webhook.announce(
        context.log,
        OperatorEvent(
            "rolled_back", tenant_id, config.day, config.reason, {"from": config.from_version, "to": config.to_version}
        ),
    )
    context.log_event(
        dg.AssetObservation(
            asset_key="production_model",
            partition=tenant_day_key(tenant_id, date.fromisoformat(config.day)),
            metadata={
                "action": "rollback", "from_version": config.from_version,
                "production_version": config.to_version, "reason": config.reason, "event": delivery,
            },
        )
    )  # fmt: skip


@dg.job(
    name="rollback", tags={STAGE_TAG: "rollback"}, description="Automatic rollback of one tenant's production model."
)
def rollback_job():
    roll_back_production()
