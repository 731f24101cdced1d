"""What the daemon decides, as plain functions of the instance and the tenant registry (`*_requests`).

The schedules and sensors return these requests; the operator's `mlops backfill` replays the same
functions day by day (`replay.Automation`), so both take one path. Requests cover contiguous tenant
ranges, so a day of 1000 tenants is a few runs, not 1000.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from mlops_assets.automation.attempts import FAILED, RunFailures, attempt_run_key
from mlops_assets.automation.batching import tenant_range_request, tenant_ranges
from mlops_assets.automation.jobs import ATTEMPT_TAG, ONBOARDING_TAG, STAGE_TAG, TENANT_TAG, TRIGGER_TAG
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.monitoring.performance import retrain_refusal
from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id
from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.core.tenants.retries import DEFAULT_POLICY, RetryPolicy, RetryState
from mlops_assets.partitions import TENANTS
from mlops_assets.resources import MonitoringPolicyResource

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]  # fmt: skip
# The two scheduled cycles: the job they run and the tags that tell their runs apart.
CYCLES = {
    "daily": ("daily_cycle", {STAGE_TAG: "daily"}),
    "weekly": ("retrain", {STAGE_TAG: "retrain", TRIGGER_TAG: "schedule"}),
}
# The weekly retrain leaves out a tenant whose model was decided on in the last days (its onboarding, a drift
# retrain): a few more days of data change little and a training costs as much as a week of daily cycles.
FRESH_MODEL_DAYS = 3


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


def _latest_day_by_tenant(keys: Iterable[str]) -> dict[str, date]:
    """The latest day per tenant among `<day>|<tenant>` keys."""
    latest: dict[str, date] = {}
    for key in keys:
        day, tenant_id = key.split("|")
        latest[tenant_id] = max(latest.get(tenant_id, date.min), date.fromisoformat(day))
    return latest


def _production_days(instance: dg.DagsterInstance) -> dict[str, date]:
    return _latest_day_by_tenant(instance.get_materialized_partitions(dg.AssetKey("production_model")))


def onboarded_tenants(instance: dg.DagsterInstance) -> set[str]:
    """Tenants with a production decision: the ones the daily cycle can score."""
    return set(_production_days(instance))


def _scheduled(
    cycle: str, registry: TenantRegistry, instance: dg.DagsterInstance, day: date, only: list[str] | None
) -> set[str]:
    decided = _production_days(instance)
    wanted = set(registry.list_ids(status="active")) & set(decided)
    if cycle == "weekly":
        wanted = {tenant_id for tenant_id in wanted if (day - decided[tenant_id]).days >= FRESH_MODEL_DAYS}
    return wanted & set(only) if only is not None else wanted


def cycle_requests(
    cycle: str, instance: dg.DagsterInstance, registry: TenantRegistry, day: date, only: list[str] | None = None
) -> list[dg.RunRequest]:
    """One run per contiguous range of onboarded active tenants, for `day` (weekly: whose model is not fresh)."""
    job_name, tags = CYCLES[cycle]
    return [
        tenant_range_request(job_name, day, day, low, high, f"{cycle}-{day}-{low}-{high}", {**tags, ATTEMPT_TAG: "1"})
        for low, high in tenant_ranges(instance, _scheduled(cycle, registry, instance, day, only))
    ]


ONBOARDING_STEPS = ("history", "days", "retrain")


def _onboarding_step(tenant_id: str, step: str, today: date, first_day: date, attempt: int) -> dg.RunRequest:
    yesterday = today - timedelta(days=1)
    tags = {ONBOARDING_TAG: tenant_id, TENANT_TAG: tenant_id, STAGE_TAG: step, ATTEMPT_TAG: str(attempt)}
    if step == "history":
        key = attempt_run_key(f"onboard-{tenant_id}-history", attempt)
        return dg.RunRequest(run_key=key, job_name="ingest_history", partition_key=tenant_id, tags=tags)
    if step == "days":
        key = attempt_run_key(f"onboard-{tenant_id}-days", attempt)
        return tenant_range_request("ingest_days", first_day, yesterday, tenant_id, tenant_id, key, tags)
    key = attempt_run_key(f"onboard-{tenant_id}-model", attempt)
    return tenant_range_request(
        "retrain", yesterday, yesterday, tenant_id, tenant_id, key, {**tags, TRIGGER_TAG: "onboarding"}
    )


def onboarding_requests(
    instance: dg.DagsterInstance,
    registry: TenantRegistry,
    today: date,
    first_day: date,
    only: list[str] | None = None,
    now: datetime | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> tuple[list[dg.RunRequest], list[str]]:
    """The next step of each new tenant: history sweep, the window's days (from `first_day`), then the first
    model at yesterday.

    A failed step is retried as `policy` decides at `now` (default: the clock): after a backoff when it
    was transient, not before the tenant changes when it was permanent or reached the cap (the notes say so).
    """
    now = now or datetime.now(UTC)
    partitions, done = set(instance.get_dynamic_partitions(TENANTS)), onboarded_tenants(instance)
    new_tenants = {
        tenant.tenant_id: tenant
        for tenant in registry.list(status="active")
        if tenant.tenant_id not in done
        and tenant.tenant_id in partitions
        and (only is None or tenant.tenant_id in only)
    }
    # One query for every new tenant's onboarding runs, not one per tenant: 1000 sign-ups at once took 10 s
    # of the tick's 60 s that way.
    runs_by_step: dict[tuple[str, str], list[dg.RunRecord]] = defaultdict(list)
    if new_tenants:
        for record in instance.get_run_records(dg.RunsFilter(tags={ONBOARDING_TAG: list(new_tenants)})):
            tags = record.dagster_run.tags
            runs_by_step[tags[ONBOARDING_TAG], tags.get(STAGE_TAG, "")].append(record)
    requests, notes, failures = [], [], RunFailures(instance)
    for tenant_id, tenant in new_tenants.items():
        runs = {step: runs_by_step[tenant_id, step] for step in ONBOARDING_STEPS}
        if any(record.dagster_run.status in IN_PROGRESS for records in runs.values() for record in records):
            continue
        succeeded = {step for step, records in runs.items() if any(r.dagster_run.is_success for r in records)}
        step = next((step for step in ONBOARDING_STEPS if step not in succeeded), None)
        if step is None:
            continue
        failed = [failures.of(record, tenant_id) for record in runs[step] if record.dagster_run.status in FAILED]
        attempt = 1
        if failed:
            decision = policy.decide(failed, tenant.updated_at, now)
            notes.append(decision.note(tenant_id, f"onboarding step {step}"))
            if decision.state is not RetryState.RETRY:
                continue
            attempt = decision.attempt
        requests.append(_onboarding_step(tenant_id, step, today, first_day, attempt))
    return requests, notes


def new_records(instance: dg.DagsterInstance, asset: str, after: int) -> list:
    """Every materialization after the cursor, oldest first, in pages.

    A single capped fetch would skip records: 1000 tenants write 1000 per asset and day, so a few days
    of backlog passed the cap while the cursor moved past them.
    """
    records, cursor = [], None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=after or None),
            limit=10_000,
            cursor=cursor,
            ascending=True,
        )
        records += page.records
        if not page.has_more:
            return records
        cursor = page.cursor


def _meta(record) -> dict:
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _in_flight_retrains(instance: dg.DagsterInstance) -> set[str]:
    """Tenants covered by a retrain run that is queued or running."""
    ordered, busy = instance.get_dynamic_partitions(TENANTS), set()
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, tags={STAGE_TAG: "retrain"})):
        low = run.tags.get(ASSET_PARTITION_RANGE_START_TAG, "|").split("|")[1]
        high = run.tags.get(ASSET_PARTITION_RANGE_END_TAG, "|").split("|")[1]
        if low in ordered and high in ordered:
            busy.update(ordered[ordered.index(low) : ordered.index(high) + 1])
    return busy


def drift_retrain_requests(
    instance: dg.DagsterInstance, registry: TenantRegistry, monitoring: MonitoringPolicyResource, cursor: int = 0
) -> tuple[list[dg.RunRequest], list[str], int]:
    """Retrains for tenants whose newest drift or performance alarm is past their cooldown; the notes say why not."""
    alarms: dict[str, tuple[date, set[str]]] = {}
    newest = cursor
    for asset in ("drift_report", "realized_performance"):
        for record in new_records(instance, asset, cursor):
            newest = max(newest, record.storage_id)
            alarm = _meta(record).get("alarms", "none")
            if alarm == "none":
                continue
            day, tenant_id = record.partition_key.split("|")
            seen_day, reasons = alarms.get(tenant_id, (date.min, set()))
            day = date.fromisoformat(day)
            alarms[tenant_id] = (max(seen_day, day), reasons | set(alarm.split(", ")))
    if not alarms:
        return [], [], newest
    last_trained, busy, active = (
        _production_days(instance),
        _in_flight_retrains(instance),
        set(registry.list_ids(status="active")),
    )
    last_drift_retrain = _latest_day_by_tenant(
        run.tags[ASSET_PARTITION_RANGE_START_TAG]
        for run in instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift"}), limit=10_000)
    )
    requests, notes = [], []
    for tenant_id, (day, reasons) in sorted(alarms.items()):
        if tenant_id not in active:
            continue
        cooldown = monitoring.thresholds(registry.get(tenant_id)).cooldown_days
        refusal = retrain_refusal(
            day, last_trained.get(tenant_id), last_drift_retrain.get(tenant_id), cooldown, tenant_id in busy
        )
        if refusal:
            notes.append(f"{tenant_id} {day} ({', '.join(sorted(reasons))}): no retrain, {refusal}")
            continue
        tags = {
            STAGE_TAG: "retrain",
            TRIGGER_TAG: "drift",
            TENANT_TAG: tenant_id,
            "mlops/alarms": ",".join(sorted(reasons)),
        }
        requests.append(
            tenant_range_request("retrain", day, day, tenant_id, tenant_id, f"retrain-{tenant_id}-{day}", tags)
        )
        notes.append(f"{tenant_id} {day}: retrain requested ({', '.join(sorted(reasons))})")
    return requests, notes, newest


def rollback_requests(instance: dg.DagsterInstance, cursor: int = 0) -> tuple[list[dg.RunRequest], int]:
    """A rollback for each newly regressed production version; the run key makes it once per version."""
    requests, newest = [], cursor
    for record in new_records(instance, "realized_performance", cursor):
        newest = max(newest, record.storage_id)
        meta = _meta(record)
        if not meta.get("regressed"):
            continue
        day, tenant_id = record.partition_key.split("|")
        config = {
            "tenant_id": tenant_id,
            "day": day,
            "from_version": str(meta["serving_version"]),
            "to_version": str(meta["predecessor_version"]),
            "reason": f"automatic rollback: version {meta['serving_version']} realized AUC "
            f"{meta['realized_auc']:.3f} < version {meta['predecessor_version']} {meta['predecessor_auc']:.3f} on the "
            f"predictions of {meta['predicted_on']} (outcomes through {day})",
        }
        requests.append(
            dg.RunRequest(
                run_key=f"rollback-{tenant_id}-{config['from_version']}",
                job_name="rollback",
                run_config={"ops": {"roll_back_production": {"config": config}}},
                tags={STAGE_TAG: "rollback", TENANT_TAG: tenant_id},
            )
        )
    return requests, newest
