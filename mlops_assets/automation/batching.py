"""Runs of tenant-days: many tenants and days share one run, because a run costs seconds to start.

A multi-partition key range is a rectangle (dates x tenants between its ends), so one run can cover
many tenants only if they are contiguous in the `tenants` partition order.
"""

from datetime import date, timedelta

import dagster as dg

from mlops_assets.automation.jobs import STAGE_TAG
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.partitions import TENANTS
from mlops_assets.settings import Settings


def tenant_runs(
    ordered_tenants: list[str], selected: list[str], max_tenants: int | None = None
) -> list[tuple[str, str]]:
    """Split selected tenants into runs of at most `max_tenants` neighbours in the partition order.

    The cap bounds a run's memory (it holds its partitions' frames) and lets runs share the cores and workers.
    """
    wanted, limit = set(selected), max_tenants or Settings.from_env().tenants_per_run
    runs, current = [], []
    for tenant_id in ordered_tenants:
        if tenant_id in wanted:
            current.append(tenant_id)
        if current and (tenant_id not in wanted or len(current) == limit):
            runs.append((current[0], current[-1]))
            current = []
    if current:
        runs.append((current[0], current[-1]))
    return runs


def tenant_ranges(instance: dg.DagsterInstance, tenant_ids) -> list[tuple[str, str]]:
    """`tenant_runs` in the instance's current partition order."""
    return tenant_runs(instance.get_dynamic_partitions(TENANTS), sorted(tenant_ids))


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """The tags that make a run cover the partition keys `first_key`..`last_key`."""
    return {ASSET_PARTITION_RANGE_START_TAG: first_key, ASSET_PARTITION_RANGE_END_TAG: last_key}


def tenant_days_tags(first: date, last: date, low: str, high: str) -> dict[str, str]:
    """The rectangle of days `first`..`last` x tenants `low`..`high`."""
    return range_tags(f"{first.isoformat()}|{low}", f"{last.isoformat()}|{high}")


def tenant_range_request(
    job_name: str, first: date, last: date, low: str, high: str, run_key: str, tags: dict[str, str]
) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, job_name=job_name, tags={**tenant_days_tags(first, last, low, high), **tags})


def run_in_process(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    console_log_level: str,
    run_config: dict | None = None,
    **kwargs,
) -> dg.ExecuteInProcessResult:
    """One run in this process; a failed run is returned, not raised, so the runs after it still happen."""
    return job.execute_in_process(
        instance=instance,
        tags=tags,
        run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": console_log_level}}}},
        raise_on_error=False,
        **kwargs,
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
    stage: str = "history",
) -> list[dg.ExecuteInProcessResult]:
    """Materialize tenant-partitioned assets (the history) for many tenants in few runs."""
    return [
        run_in_process(
            job,
            instance,
            {**range_tags(low, high), STAGE_TAG: stage},
            console_log_level,
            asset_selection=asset_selection,
        )
        for low, high in tenant_runs(_known_tenants(instance, tenant_ids), tenant_ids)
    ]


def materialize_tenant_days(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    tenant_ids: list[str],
    first_day: date,
    last_day: date,
    asset_selection: list[dg.AssetKey],
    days_per_run: int = 7,
    on_run_done=None,
    console_log_level: str = "INFO",
    stage: str = "ingestion",
) -> list[dg.ExecuteInProcessResult]:
    """Materialize tenants x [first_day, last_day] in few in-process runs (one per date chunk)."""
    results = []
    ordered = _known_tenants(instance, tenant_ids)
    chunk_start = first_day
    while chunk_start <= last_day:
        chunk_end = min(last_day, chunk_start + timedelta(days=days_per_run - 1))
        for low, high in tenant_runs(ordered, tenant_ids):
            result = run_in_process(
                job,
                instance,
                {**tenant_days_tags(chunk_start, chunk_end, low, high), STAGE_TAG: stage},
                console_log_level,
                asset_selection=asset_selection,
            )
            results.append(result)
            if on_run_done:
                on_run_done(result, (chunk_end - chunk_start).days + 1)
        chunk_start = chunk_end + timedelta(days=1)
    return results
