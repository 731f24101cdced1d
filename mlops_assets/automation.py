"""Jobs, schedules and sensors: Dagster's daemon in the role of the seed's Celery Beat and workers.

- `tenant_registry_sensor`: registry rows -> `tenants` partitions;
- `onboarding_sensor`: a new tenant -> history sweep -> days of the window -> first model and predictions;
- `daily_cycle_schedule`: ingest, features, predictions, drift and realized performance for yesterday;
- `weekly_retrain_schedule`: retrain, gate, promote and re-predict every onboarded tenant;
- `drift_retrain_sensor`: a drift or performance alarm -> retrain that tenant (cooldown, run keys, one in flight);
- `rollback_sensor`: a promoted version that does worse than its predecessor -> `production` moves back.

Each decision is a function of the instance and the registry (`*_requests`), so the daemon and the
operator's `mlops backfill` (which replays days through `Automation`) take the same path. Requests
cover contiguous tenant ranges, so a day of 1000 tenants is a few runs, not 1000.
"""

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, RUN_KEY_TAG
from mlops_assets.core.monitoring.events import OperatorEvent
from mlops_assets.core.monitoring.performance import retrain_refusal
from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id
from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.partitions import TENANTS, TenantDayPartitions, tenant_day_key, tenant_partitions
from mlops_assets.resources import (
    LakeResource,
    ModelRegistryResource,
    MonitoringPolicyResource,
    TenantRegistryResource,
    WebhookResource,
)
from mlops_assets.settings import Settings

STAGE_TAG, TRIGGER_TAG, TENANT_TAG, ONBOARDING_TAG = "mlops/stage", "mlops/trigger", "mlops/tenant", "mlops/onboarding"
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
WEEKLY_RETRAIN_CRON = "0 13 * * 0"
# 11:00 UTC: yesterday has ended in every timezone from UTC-11 to UTC+14.
DAILY_CRON = "0 11 * * *"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]  # fmt: skip

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


def tenant_runs(
    ordered_tenants: list[str], selected: list[str], max_tenants: int | None = None
) -> list[tuple[str, str]]:
    """Split selected tenants into runs of at most `max_tenants` neighbours in the partition order.

    A multi-partition key range is a rectangle (dates x tenants between its ends), so one run can
    cover many tenants only if they are contiguous in the `tenants` partition order. The cap bounds a
    run's memory (it holds its partitions' frames) and lets runs share the cores and workers.
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


def _run(job, instance, asset_selection, start: str, end: str, stage: str, console_log_level: str):
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


def _tenant_range_request(
    job_name: str, first: date, last: date, low: str, high: str, run_key: str, tags: dict[str, str]
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        job_name=job_name,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{first.isoformat()}|{low}",
            ASSET_PARTITION_RANGE_END_TAG: f"{last.isoformat()}|{high}",
            **tags,
        },
    )


def _latest_day_by_tenant(instance: dg.DagsterInstance, asset: str) -> dict[str, date]:
    latest: dict[str, date] = {}
    for key in instance.get_materialized_partitions(dg.AssetKey(asset)):
        day, tenant_id = key.split("|")
        latest[tenant_id] = max(latest.get(tenant_id, date.min), date.fromisoformat(day))
    return latest


def onboarded_tenants(instance: dg.DagsterInstance) -> set[str]:
    """Tenants with a production decision: the ones the daily cycle can score."""
    return set(_latest_day_by_tenant(instance, "production_model"))


def _ranges(instance: dg.DagsterInstance, tenant_ids) -> list[tuple[str, str]]:
    return tenant_runs(instance.get_dynamic_partitions(TENANTS), sorted(tenant_ids))


def _scheduled(registry: TenantRegistry, instance: dg.DagsterInstance, only: list[str] | None) -> set[str]:
    wanted = set(registry.list_ids(status="active")) & onboarded_tenants(instance)
    return wanted & set(only) if only is not None else wanted


# The two scheduled cycles: the job they run and the tags that tell their runs apart.
CYCLES = {
    "daily": ("daily_cycle", {STAGE_TAG: "daily"}),
    "weekly": ("retrain", {STAGE_TAG: "retrain", TRIGGER_TAG: "schedule"}),
}


def cycle_requests(
    cycle: str, instance: dg.DagsterInstance, registry: TenantRegistry, day: date, only: list[str] | None = None
) -> list[dg.RunRequest]:
    """One run per contiguous range of onboarded active tenants, for `day`."""
    job_name, tags = CYCLES[cycle]
    return [
        _tenant_range_request(job_name, day, day, low, high, f"{cycle}-{day}-{low}-{high}", tags)
        for low, high in _ranges(instance, _scheduled(registry, instance, only))
    ]


def _in_flight_retrains(instance: dg.DagsterInstance) -> set[str]:
    """Tenants covered by a retrain run that is queued or running."""
    ordered, busy = instance.get_dynamic_partitions(TENANTS), set()
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS, tags={STAGE_TAG: "retrain"})):
        low = run.tags.get(ASSET_PARTITION_RANGE_START_TAG, "|").split("|")[1]
        high = run.tags.get(ASSET_PARTITION_RANGE_END_TAG, "|").split("|")[1]
        if low in ordered and high in ordered:
            busy.update(ordered[ordered.index(low) : ordered.index(high) + 1])
    return busy


def _new_records(instance: dg.DagsterInstance, asset: str, after: int) -> list:
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


def drift_retrain_requests(
    instance: dg.DagsterInstance, registry: TenantRegistry, monitoring: MonitoringPolicyResource, cursor: int = 0
) -> tuple[list[dg.RunRequest], list[str], int]:
    """Retrains for tenants whose newest drift or performance alarm is past their cooldown; the notes say why not."""
    alarms: dict[str, tuple[date, set[str]]] = {}
    newest = cursor
    for asset in ("drift_report", "realized_performance"):
        for record in _new_records(instance, asset, cursor):
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
        _latest_day_by_tenant(instance, "production_model"),
        _in_flight_retrains(instance),
        set(registry.list_ids(status="active")),
    )
    last_drift_retrain: dict[str, date] = {}
    for run in instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift"}), limit=10_000):
        day, tenant_id = run.tags[ASSET_PARTITION_RANGE_START_TAG].split("|")
        last_drift_retrain[tenant_id] = max(last_drift_retrain.get(tenant_id, date.min), date.fromisoformat(day))
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
            _tenant_range_request("retrain", day, day, tenant_id, tenant_id, f"retrain-{tenant_id}-{day}", tags)
        )
        notes.append(f"{tenant_id} {day}: retrain requested ({', '.join(sorted(reasons))})")
    return requests, notes, newest


def rollback_requests(instance: dg.DagsterInstance, cursor: int = 0) -> tuple[list[dg.RunRequest], int]:
    requests, newest = [], cursor
    for record in _new_records(instance, "realized_performance", cursor):
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


def onboarding_requests(
    instance: dg.DagsterInstance, registry: TenantRegistry, today: date, first_day: date, only: list[str] | None = None
) -> tuple[list[dg.RunRequest], list[str]]:
    """The next step of each new tenant: history sweep, the window's days (from `first_day`), then the first
    model at yesterday.

    A failed step is not retried on its own (its run key is spent): the note names it and the operator
    fixes the cause and runs `mlops backfill`.
    """
    yesterday = today - timedelta(days=1)
    partitions, done = set(instance.get_dynamic_partitions(TENANTS)), onboarded_tenants(instance)
    new_tenants = [
        tenant_id
        for tenant_id in registry.list_ids(status="active")
        if tenant_id not in done and tenant_id in partitions and (only is None or tenant_id in only)
    ]
    # One query for every new tenant's onboarding runs (newest first), not one per tenant: 1000 sign-ups
    # at once took 10 s of the tick's 60 s that way.
    runs_by_tenant: dict[str, list] = defaultdict(list)
    if new_tenants:
        for run in instance.get_runs(dg.RunsFilter(tags={ONBOARDING_TAG: new_tenants})):
            runs_by_tenant[run.tags[ONBOARDING_TAG]].append(run)
    requests, notes = [], []
    for tenant_id in new_tenants:
        status = {run.tags.get(STAGE_TAG): run.status for run in reversed(runs_by_tenant[tenant_id])}
        tags = {ONBOARDING_TAG: tenant_id, TENANT_TAG: tenant_id}
        failed = [stage for stage, state in status.items() if state == dg.DagsterRunStatus.FAILURE]
        if failed:
            notes.append(f"{tenant_id}: onboarding step {failed[0]} failed (fix the cause, then `mlops backfill`)")
        elif any(state in IN_PROGRESS for state in status.values()):
            continue
        elif "history" not in status:
            requests.append(
                dg.RunRequest(
                    run_key=f"onboard-{tenant_id}-history", job_name="ingest_history", partition_key=tenant_id,
                    tags={**tags, STAGE_TAG: "history"},
                )
            )  # fmt: skip
        elif "days" not in status:
            requests.append(
                _tenant_range_request(
                    "ingest_days", first_day, yesterday, tenant_id, tenant_id, f"onboard-{tenant_id}-days",
                    {**tags, STAGE_TAG: "days"},
                )
            )  # fmt: skip
        elif "retrain" not in status:
            requests.append(
                _tenant_range_request(
                    "retrain", yesterday, yesterday, tenant_id, tenant_id, f"onboard-{tenant_id}-model",
                    {**tags, STAGE_TAG: "retrain", TRIGGER_TAG: "onboarding"},
                )
            )  # fmt: skip
    return requests, notes


def _cycle_schedule(name: str, cycle: str, cron: str, job, description: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name, cron_schedule=cron, job=job, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING, description=description,
    )  # fmt: skip
    def _schedule(context: dg.ScheduleEvaluationContext, tenants: TenantRegistryResource):
        day = context.scheduled_execution_time.date() - timedelta(days=1)
        requests = cycle_requests(cycle, context.instance, tenants.registry(), day)
        return requests or dg.SkipReason("no onboarded active tenant")

    return _schedule


daily_cycle_schedule = _cycle_schedule(
    "daily_cycle_schedule", "daily", DAILY_CRON, daily_cycle_job,
    "Yesterday's ingest, features, predictions, drift and realized performance for every onboarded tenant.",
)  # fmt: skip
weekly_retrain_schedule = _cycle_schedule(
    "weekly_retrain_schedule", "weekly", WEEKLY_RETRAIN_CRON, retrain_job,
    "Every Sunday: retrain at yesterday's cutoff, gate, promote, re-predict, for every onboarded tenant.",
)  # fmt: skip


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


@dg.sensor(
    jobs=[rollback_job], minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="A newly promoted version whose realized AUC trails its predecessor's is rolled back (once).",
)  # fmt: skip
def rollback_sensor(context: dg.SensorEvaluationContext):
    requests, cursor = rollback_requests(context.instance, int(context.cursor or 0))
    return dg.SensorResult(run_requests=requests, cursor=str(cursor))


@dg.sensor(
    jobs=[ingest_history_job, ingest_days_job, retrain_job], minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A new active tenant: history sweep, the window's days, first model and predictions, no human.",
)  # fmt: skip
def onboarding_sensor(context: dg.SensorEvaluationContext, tenants: TenantRegistryResource):
    first_day = TenantDayPartitions.of(context.repository_def).first_day
    requests, notes = onboarding_requests(context.instance, tenants.registry(), datetime.now(UTC).date(), first_day)
    for note in notes:
        context.log.warning(note)
    return requests or dg.SkipReason("; ".join(notes) or "every active tenant is onboarded")


class Automation:
    """The daemon's decisions replayed day by day in this process: `mlops backfill`, tests, benchmarks.

    On each simulated `today` it does what the daemon would: onboarding steps, the daily cycle for
    yesterday, the weekly retrain on its day, then drift retrains and rollbacks until nothing new is
    requested. Run keys are honoured as the daemon does, so a replay never runs a request twice.
    """

    def __init__(
        self,
        defs: dg.Definitions,
        instance: dg.DagsterInstance,
        registry: TenantRegistry,
        monitoring: MonitoringPolicyResource | None = None,
        only: list[str] | None = None,
        console_log_level: str = "WARNING",
        on_run: Callable[[dg.RunRequest, dg.ExecuteInProcessResult], None] | None = None,
        weekly_retrain: bool = True,
    ):
        self.defs, self.instance, self.registry, self.weekly_retrain = defs, instance, registry, weekly_retrain
        self.first_day = TenantDayPartitions.of(defs).first_day
        self.monitoring = monitoring or MonitoringPolicyResource()
        self.only, self.log_level, self.on_run = only, console_log_level, on_run
        self.cursor = max((r.storage_id for r in _new_records(instance, "realized_performance", 0)), default=0)
        self.drift_cursor = self.cursor
        self.notes: list[str] = []
        self.results: list[tuple[dg.RunRequest, dg.ExecuteInProcessResult]] = []

    def execute(self, requests: list[dg.RunRequest]) -> list[dg.ExecuteInProcessResult]:
        done = []
        for request in requests:
            if request.run_key and self.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: request.run_key}), limit=1):
                continue
            run_config = {
                **(request.run_config or {}),
                "loggers": {"console": {"config": {"log_level": self.log_level}}},
            }
            result = self.defs.resolve_job_def(request.job_name).execute_in_process(
                instance=self.instance,
                partition_key=request.partition_key,
                tags={**request.tags, **({RUN_KEY_TAG: request.run_key} if request.run_key else {})},
                run_config=run_config,
                raise_on_error=False,
            )
            self.results.append((request, result))
            done.append(result)
            if self.on_run:
                self.on_run(request, result)
        return done

    def onboard(self, today: date) -> None:
        while True:
            requests, notes = onboarding_requests(self.instance, self.registry, today, self.first_day, self.only)
            self.notes += notes
            if not self.execute(requests):
                return

    def react(self) -> None:
        """Drift retrains and rollbacks until the sensors ask for nothing new."""
        while True:
            retrains, notes, self.drift_cursor = drift_retrain_requests(
                self.instance, self.registry, self.monitoring, self.drift_cursor
            )
            rollbacks, self.cursor = rollback_requests(self.instance, self.cursor)
            self.notes += notes
            if not self.execute(retrains + rollbacks):
                return

    def day(self, today: date) -> None:
        """Everything the daemon does on `today` (its schedules run for yesterday)."""
        yesterday = today - timedelta(days=1)
        self.onboard(today)
        self.execute(cycle_requests("daily", self.instance, self.registry, yesterday, self.only))
        if self.weekly_retrain and today.isoweekday() == 7:  # WEEKLY_RETRAIN_CRON fires on Sundays
            self.execute(cycle_requests("weekly", self.instance, self.registry, yesterday, self.only))
        self.react()

    def failures(self) -> list[str]:
        return [f"{request.job_name} {request.run_key}" for request, result in self.results if not result.success]

    def runs_by_stage(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for request, _ in self.results:
            counts[request.tags.get(STAGE_TAG, request.job_name)] += 1
        return dict(counts)
