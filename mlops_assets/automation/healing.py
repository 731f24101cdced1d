"""Self-healing of the scheduled cycles: tenant-days whose runs failed and that are still not materialized
are run again, as `core.tenants.retries` decides (backoff, cap, permanent failures held until the tenant
changes). The healing sensor and `replay.Automation` (so `mlops backfill`) call the same function.

The work is found from state, not from run outcomes alone: a tenant-day counts as failed when a finished
run of the cycle covered it and failed, and one of the cycle's assets still lacks that partition. So a
retry covers exactly the tenants still missing, and this holds when a run fails for some tenants only.
"""

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from mlops_assets.automation.attempts import FAILED, RunFailures, attempt_run_key
from mlops_assets.automation.batching import tenant_range_request, tenant_ranges
from mlops_assets.automation.decisions import CYCLES, onboarded_tenants
from mlops_assets.automation.jobs import ATTEMPT_TAG, DAILY_ASSETS, RETRAIN_ASSETS
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.core.tenants.retries import DEFAULT_POLICY, RetryPolicy, RetryState
from mlops_assets.partitions import TENANTS

CYCLE_ASSETS = {"daily": DAILY_ASSETS, "weekly": RETRAIN_ASSETS}


def _covered(record: dg.RunRecord, ordered: list[str], first_day: date) -> list[tuple[date, str]]:
    """The tenant-days of a run's rectangle from `first_day` on (earlier days left the partition window)."""
    tags = record.dagster_run.tags
    start, _, low = tags.get(ASSET_PARTITION_RANGE_START_TAG, "|").partition("|")
    end, _, high = tags.get(ASSET_PARTITION_RANGE_END_TAG, "|").partition("|")
    if low not in ordered or high not in ordered:
        return []
    tenants = ordered[ordered.index(low) : ordered.index(high) + 1]
    day, last = max(date.fromisoformat(start), first_day), date.fromisoformat(end)
    covered = []
    while day <= last:
        covered += [(day, tenant_id) for tenant_id in tenants]
        day += timedelta(days=1)
    return covered


def _missing(instance: dg.DagsterInstance, assets: list[str], tenant_days: list[tuple[date, str]]) -> set:
    """The tenant-days that some of `assets` has never materialized."""
    keys = {f"{day.isoformat()}|{tenant_id}": (day, tenant_id) for day, tenant_id in tenant_days}
    missing: set[tuple[date, str]] = set()
    for asset in assets:
        done, cursor = set(), None
        while True:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=list(keys)),
                limit=10_000,
                cursor=cursor,
            )
            done.update(record.partition_key for record in page.records)
            if not page.has_more:
                break
            cursor = page.cursor
        missing.update(tenant_day for key, tenant_day in keys.items() if key not in done)
    return missing


def cycle_retry_requests(
    instance: dg.DagsterInstance,
    registry: TenantRegistry,
    first_day: date,
    now: datetime,
    only: list[str] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> tuple[list[dg.RunRequest], list[str]]:
    """Retries of the daily cycles and weekly retrains that failed for onboarded active tenants; the notes name
    the tenant-days waiting, held as permanent or needing attention."""
    active = {tenant.tenant_id: tenant for tenant in registry.list(status="active")}
    scheduled = onboarded_tenants(instance) & set(active) & set(active if only is None else only)
    ordered = instance.get_dynamic_partitions(TENANTS)
    failures, requests, notes = RunFailures(instance), [], []
    for cycle, (job_name, tags) in CYCLES.items():
        failed_runs: dict[tuple[date, str], list[dg.RunRecord]] = defaultdict(list)
        # A run is created after the day it covers: older runs only cover days that left the window.
        since = datetime.combine(first_day, time(), UTC)
        for record in instance.get_run_records(dg.RunsFilter(tags=tags, statuses=FAILED, created_after=since)):
            for day, tenant_id in _covered(record, ordered, first_day):
                if tenant_id in scheduled:
                    failed_runs[day, tenant_id].append(record)
        due: dict[tuple[date, int], list[str]] = defaultdict(list)
        for day, tenant_id in sorted(_missing(instance, CYCLE_ASSETS[cycle], list(failed_runs))):
            runs = failed_runs[day, tenant_id]
            decision = policy.decide(
                [failures.of(record, tenant_id) for record in runs], active[tenant_id].updated_at, now
            )
            notes.append(decision.note(tenant_id, f"{cycle} cycle of {day}"))
            if decision.state is RetryState.RETRY:
                due[day, decision.attempt].append(tenant_id)
        for (day, attempt), tenant_ids in sorted(due.items()):
            for low, high in tenant_ranges(instance, tenant_ids):
                run_key = attempt_run_key(f"{cycle}-{day}-{low}-{high}", attempt)
                requests.append(
                    tenant_range_request(job_name, day, day, low, high, run_key, {**tags, ATTEMPT_TAG: str(attempt)})
                )
    # Oldest day first, as the schedules ran them: a retried retrain's model then scores the retried days after it.
    requests.sort(key=lambda request: request.tags[ASSET_PARTITION_RANGE_START_TAG].split("|")[0])
    return requests, notes
