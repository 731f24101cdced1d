"""Fleet health: the facts of every tenant gathered from the registry, the warehouse and the Dagster instance,
their states (`core.tenants.health`), and the sensor that alerts once per state change.

Gathering is a fixed number of queries whatever the fleet's size: the registry, one grouped warehouse
query, the production decisions, the runs of the last `LOOKBACK`, the onboarding runs of tenants not yet
onboarded, and the failure events of the newest failed run per tenant (a run shared by many tenants is
read once).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from mlops_assets.automation.decisions import IN_PROGRESS, onboarded_tenants
from mlops_assets.automation.jobs import ONBOARDING_TAG, STAGE_TAG, TENANT_TAG
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG
from mlops_assets.core.tenants.health import RunFailure, TenantFacts, TenantState, health_events, tenant_state
from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.core.warehouse.prediction_store import latest_prediction_days
from mlops_assets.partitions import TENANTS
from mlops_assets.resources import TenantRegistryResource, WebhookResource

# Failed runs older than this are not counted: a tenant failing for two weeks needs attention anyway.
LOOKBACK = timedelta(days=14)
ONBOARDING_STEPS = {"history": "history", "days": "days", "retrain": "model"}


def tenants_of_run(run: dg.DagsterRun, ordered: list[str]) -> list[str]:
    """The tenants a run covers: its tenant tag, its partition range (a rectangle of contiguous tenants), or its
    single partition."""
    if TENANT_TAG in run.tags:
        return [run.tags[TENANT_TAG]]
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        low, high = start.split("|")[-1], end.split("|")[-1]
        if low in ordered and high in ordered:
            return ordered[ordered.index(low) : ordered.index(high) + 1]
    partition = run.tags.get(PARTITION_NAME_TAG)
    return [partition.split("|")[-1]] if partition else []


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first failed step and its innermost error (the user's exception, not Dagster's wrapper), else the
    run's own failure message (a run worker that died, a launch that failed)."""
    events = instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE})
    for entry in events:
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            return f"{event.step_key}: {error.message.strip().splitlines()[0]}"
    return next((entry.dagster_event.message or "run failed" for entry in events), "run failed (no failure event)")


def _onboarding_steps(instance: dg.DagsterInstance, tenant_ids: list[str]) -> dict[str, str]:
    """The onboarding step each tenant is at: the first of history, days, model without a successful run."""
    done: dict[str, set[str]] = defaultdict(set)
    if tenant_ids:
        for run in instance.get_runs(dg.RunsFilter(tags={ONBOARDING_TAG: tenant_ids})):
            if run.status == dg.DagsterRunStatus.SUCCESS:
                done[run.tags[ONBOARDING_TAG]].add(run.tags.get(STAGE_TAG))
    return {
        tenant_id: next((name for stage, name in ONBOARDING_STEPS.items() if stage not in done[tenant_id]), "model")
        for tenant_id in tenant_ids
    }


def gather_facts(
    instance: dg.DagsterInstance, registry: TenantRegistry, warehouse_url: str, now: datetime
) -> list[TenantFacts]:
    tenants, ordered = registry.list(), instance.get_dynamic_partitions(TENANTS)
    onboarded, latest = onboarded_tenants(instance), latest_prediction_days(warehouse_url)
    steps = _onboarding_steps(instance, [t.tenant_id for t in tenants if t.tenant_id not in onboarded])
    failed: dict[str, list[dg.RunRecord]] = defaultdict(list)
    settled, running = set(), set()
    # Newest first: a tenant's failures count until its newest successful run.
    for record in instance.get_run_records(dg.RunsFilter(created_after=now - LOOKBACK)):
        run = record.dagster_run
        for tenant_id in tenants_of_run(run, ordered):
            if run.status in IN_PROGRESS:
                running.add(tenant_id)
            elif tenant_id in settled:
                continue
            elif run.status == dg.DagsterRunStatus.SUCCESS:
                settled.add(tenant_id)
            elif run.status == dg.DagsterRunStatus.FAILURE:
                failed[tenant_id].append(record)
    reasons: dict[str, str] = {}
    facts = []
    for tenant in tenants:
        records = failed.get(tenant.tenant_id, [])
        if records and records[0].dagster_run.run_id not in reasons:
            reasons[records[0].dagster_run.run_id] = failure_reason(instance, records[0].dagster_run.run_id)
        failures = tuple(
            RunFailure(
                record.dagster_run.run_id,
                record.dagster_run.tags.get(STAGE_TAG, record.dagster_run.job_name),
                datetime.fromtimestamp(record.end_time or record.create_timestamp.timestamp(), UTC),
                reasons.get(record.dagster_run.run_id, ""),
            )
            for record in records
        )
        facts.append(
            TenantFacts(
                tenant.tenant_id, tenant.status, tenant.zone, tenant.tenant_id in onboarded,
                steps.get(tenant.tenant_id), latest.get(tenant.tenant_id), failures, tenant.tenant_id in running,
            )
        )  # fmt: skip
    return facts


def fleet_states(
    instance: dg.DagsterInstance, registry: TenantRegistry, warehouse_url: str, now: datetime | None = None
) -> list[TenantState]:
    """Every registered tenant's state, in the registry's order."""
    now = now or datetime.now(UTC)
    return [tenant_state(facts, now) for facts in gather_facts(instance, registry, warehouse_url, now)]


@dg.sensor(
    minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every tenant's state; a webhook event when one turns stale or failing and when it recovers (once).",
)  # fmt: skip
def fleet_health_sensor(context: dg.SensorEvaluationContext, tenants: TenantRegistryResource, webhook: WebhookResource):
    now = datetime.now(UTC)
    states = fleet_states(context.instance, tenants.registry(), tenants.warehouse_url, now)
    previous = json.loads(context.cursor) if context.cursor else {}
    for event in health_events(previous, states, now.date()):
        webhook.announce(context.log, event)
    return dg.SensorResult(cursor=json.dumps({state.tenant_id: state.state for state in states}, sort_keys=True))
