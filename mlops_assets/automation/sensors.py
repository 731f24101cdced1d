"""The daemon's sensors: each evaluates a decision from `decisions` and hands its requests to Dagster.

- `tenant_registry_sensor`: registry rows -> `tenants` partitions;
- `onboarding_sensor`: a new tenant -> history sweep -> days of the window -> first model and predictions;
- `drift_retrain_sensor`: a drift or performance alarm -> retrain that tenant (cooldown, run keys, one in flight);
- `rollback_sensor`: a promoted version that does worse than its predecessor -> `production` moves back;
- `healing_sensor`: a failed daily cycle or weekly retrain -> the tenant-days still missing run again (`healing`).
"""

from datetime import UTC, datetime

import dagster as dg

from mlops_assets.automation.decisions import (
    drift_retrain_requests,
    onboarding_requests,
    partition_changes,
    rollback_requests,
)
from mlops_assets.automation.healing import cycle_retry_requests
from mlops_assets.automation.jobs import (
    daily_cycle_job,
    ingest_days_job,
    ingest_history_job,
    retrain_job,
    rollback_job,
)
from mlops_assets.partitions import TENANTS, TenantDayPartitions, tenant_partitions
from mlops_assets.resources import MonitoringPolicyResource, TenantRegistryResource


@dg.sensor(
    name="tenant_registry_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps the `tenants` dynamic partitions in step with the tenant registry.",
)
def tenant_registry_sensor(context: dg.SensorEvaluationContext, tenants: TenantRegistryResource):
    add, delete = partition_changes(tenants.registry().list_ids(), context.instance.get_dynamic_partitions(TENANTS))
    if not add and not delete:
        return dg.SkipReason("tenant partitions match the registry")
    return dg.SensorResult(
        dynamic_partitions_requests=[
            request
            for request in (
                tenant_partitions.build_add_request(add) if add else None,
                tenant_partitions.build_delete_request(delete) if delete else None,
            )
            if request is not None
        ]
    )


@dg.sensor(
    jobs=[ingest_history_job, ingest_days_job, retrain_job], minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A new active tenant: history sweep, the window's days, first model and predictions, no human.",
)  # fmt: skip
def onboarding_sensor(context: dg.SensorEvaluationContext, tenants: TenantRegistryResource):
    first_day = TenantDayPartitions.of(context.repository_def).first_day
    now = datetime.now(UTC)
    requests, notes = onboarding_requests(context.instance, tenants.registry(), now.date(), first_day, now=now)
    for note in notes:
        context.log.warning(note)
    return requests or dg.SkipReason("; ".join(notes) or "every active tenant is onboarded")


@dg.sensor(
    jobs=[retrain_job], minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="A drift or performance alarm starts a retrain of that tenant (cooldown, one in flight, once per day).",
)  # fmt: skip
def drift_retrain_sensor(
    context: dg.SensorEvaluationContext, tenants: TenantRegistryResource, monitoring: MonitoringPolicyResource
):
    requests, notes, cursor = drift_retrain_requests(
        context.instance, tenants.registry(), monitoring, int(context.cursor or 0)
    )
    for note in notes:
        context.log.info(note)
    return dg.SensorResult(run_requests=requests, cursor=str(cursor))


@dg.sensor(
    jobs=[rollback_job], minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="A newly promoted version whose realized AUC trails its predecessor's is rolled back (once).",
)  # fmt: skip
def rollback_sensor(context: dg.SensorEvaluationContext):
    requests, cursor = rollback_requests(context.instance, int(context.cursor or 0))
    return dg.SensorResult(run_requests=requests, cursor=str(cursor))


@dg.sensor(
    jobs=[daily_cycle_job, retrain_job], minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Failed daily cycles and weekly retrains run again for the tenant-days still missing (backoff, cap; "
    "a permanent failure waits for the tenant to change).",
)  # fmt: skip
def healing_sensor(context: dg.SensorEvaluationContext, tenants: TenantRegistryResource):
    first_day = TenantDayPartitions.of(context.repository_def).first_day
    requests, notes = cycle_retry_requests(context.instance, tenants.registry(), first_day, datetime.now(UTC))
    for note in notes:
        context.log.warning(note)
    return requests or dg.SkipReason("; ".join(notes) or "no failed tenant-day")
