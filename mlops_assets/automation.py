"""Schedules and sensors. For now: the registry -> `tenants` dynamic partitions sensor."""

import dagster as dg

from mlops_assets.core.registry import TenantRegistry
from mlops_assets.core.tenant_ids import InvalidTenantId, validate_tenant_id
from mlops_assets.partitions import TENANTS, tenant_partitions
from mlops_assets.resources import TenantRegistryResource


def partition_changes(registered: list[str], existing: list[str]) -> tuple[list[str], list[str]]:
    """(to add, to delete); ids that break the rules are never added, whatever their source."""
    wanted = []
    for tenant_id in registered:
        try:
            wanted.append(validate_tenant_id(tenant_id))
        except InvalidTenantId:
            continue
    return sorted(set(wanted) - set(existing)), sorted(set(existing) - set(wanted))


def sync_tenant_partitions(instance: dg.DagsterInstance, registry: TenantRegistry) -> tuple[list[str], list[str]]:
    """Bring the instance's `tenants` partitions in step with the registry (used by the CLI too)."""
    add, delete = partition_changes(registry.list_ids(), instance.get_dynamic_partitions(TENANTS))
    if add:
        instance.add_dynamic_partitions(TENANTS, add)
    for tenant_id in delete:
        instance.delete_dynamic_partition(TENANTS, tenant_id)
    return add, delete


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


def tenant_runs(ordered_tenants: list[str], selected: list[str]) -> list[tuple[str, str]]:
    """Split selected tenants into runs of neighbours in the partition order.

    A multi-partition key range is a rectangle (dates x tenants between its ends), so one run can
    cover many tenants only if they are contiguous in the `tenants` partition order.
    """
    wanted = set(selected)
    runs, current = [], []
    for tenant_id in ordered_tenants:
        if tenant_id in wanted:
            current.append(tenant_id)
        elif current:
            runs.append((current[0], current[-1]))
            current = []
    if current:
        runs.append((current[0], current[-1]))
    return runs


def _run(job, instance, asset_selection, start: str, end: str, stage: str, console_log_level: str):
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return job.execute_in_process(
        instance=instance,
        asset_selection=asset_selection,
        tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end, "mlops/stage": stage},
        run_config={"loggers": {"console": {"config": {"log_level": console_log_level}}}},
        raise_on_error=False,
    )


def _known_tenants(instance: dg.DagsterInstance, tenant_ids: list[str]) -> list[str]:
    ordered = instance.get_dynamic_partitions(TENANTS)
    missing = sorted(set(tenant_ids) - set(ordered))
    if missing:
        raise ValueError(f"tenants {missing} have no partition yet (fix: register them; the sensor or CLI adds it)")
    return ordered


def materialize_tenants(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    tenant_ids: list[str],
    asset_selection: list[dg.AssetKey],
    console_log_level: str = "INFO",
) -> list[dg.ExecuteInProcessResult]:
    """Materialize tenant-partitioned assets (the history) for many tenants in few runs."""
    return [
        _run(job, instance, asset_selection, low, high, "history", console_log_level)
        for low, high in tenant_runs(_known_tenants(instance, tenant_ids), tenant_ids)
    ]


def materialize_tenant_days(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    tenant_ids: list[str],
    first_day,
    last_day,
    asset_selection: list[dg.AssetKey],
    days_per_run: int = 7,
    on_run_done=None,
    console_log_level: str = "INFO",
    stage: str = "ingestion",
) -> list[dg.ExecuteInProcessResult]:
    """Materialize tenants x [first_day, last_day] in few in-process runs (one per date chunk)."""
    from datetime import timedelta

    results = []
    ordered = _known_tenants(instance, tenant_ids)
    chunk_start = first_day
    while chunk_start <= last_day:
        chunk_end = min(last_day, chunk_start + timedelta(days=days_per_run - 1))
        for low, high in tenant_runs(ordered, tenant_ids):
            result = _run(
                job,
                instance,
                asset_selection,
                f"{chunk_start.isoformat()}|{low}",
                f"{chunk_end.isoformat()}|{high}",
                stage,
                console_log_level,
            )
            results.append(result)
            if on_run_done:
                on_run_done(result, (chunk_end - chunk_start).days + 1)
        chunk_start = chunk_end + timedelta(days=1)
    return results
