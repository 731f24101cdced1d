"""Fleet health: the facts of every tenant gathered from the registry, the warehouse and the Dagster instance,
their states (`core.tenants.health`) and quarantines (`core.monitoring.quarantine`), and the sensor that alerts
once per change of either.

Gathering costs a fixed number of queries plus one per failed run, whatever the fleet's size: the
registry, one grouped warehouse query, the production decisions, the runs of the last `LOOKBACK`, the
onboarding runs of tenants not yet onboarded, and the failure events of each failed run in the lookback
(read once however many tenants it covered; `automation.attempts.RunFailures`, which the healing sensor
reads too). The retry policy the healing sensor follows gives each failing tenant its next retry, or
holds it as needing attention. The quarantine of the fleet is one query of the quarantine ledger.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg

from mlops_assets.automation.attempts import RunFailures
from mlops_assets.automation.decisions import IN_PROGRESS, onboarded_tenants
from mlops_assets.automation.jobs import ONBOARDING_TAG, STAGE_TAG, TENANT_TAG
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, PARTITION_NAME_TAG
from mlops_assets.core.monitoring.quarantine import LEDGER_DAYS, TenantQuarantine, fleet_quarantine, quarantine_events
from mlops_assets.core.tenants.health import (
    AlertMemory,
    RunFailure,
    TenantFacts,
    TenantState,
    health_events,
    tenant_state,
)
from mlops_assets.core.tenants.registry import TenantRegistry
from mlops_assets.core.tenants.retries import DEFAULT_POLICY, RetryState
from mlops_assets.core.warehouse.prediction_store import latest_prediction_days
from mlops_assets.core.warehouse.quarantine_ledger import QuarantineLedger
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
    canceled: dict[str, list[dg.RunRecord]] = defaultdict(list)  # not the tenant's failures; they time its retry
    settled, running, run_failures = set(), set(), RunFailures(instance)
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
                # An isolated run fails for some of its tenants only: the others succeeded in it.
                failed_in_run = run_failures.failed_tenants(record)
                if failed_in_run is None or tenant_id in failed_in_run:
                    failed[tenant_id].append(record)
                else:
                    settled.add(tenant_id)
            elif run.status == dg.DagsterRunStatus.CANCELED:
                canceled[tenant_id].append(record)
    facts = []
    for tenant in tenants:
        records = failed.get(tenant.tenant_id, [])
        attempts = [run_failures.of(record, tenant.tenant_id) for record in records]
        failures = tuple(
            RunFailure(
                record.dagster_run.run_id, record.dagster_run.tags.get(STAGE_TAG, record.dagster_run.job_name),
                attempt.ended_at, attempt.reason,
            )
            for record, attempt in zip(records, attempts, strict=True)
        )  # fmt: skip
        # The same policy the healing sensor follows: when the next retry is due, or that none will come.
        stopped = [run_failures.of(record, tenant.tenant_id) for record in canceled.get(tenant.tenant_id, [])]
        retry = DEFAULT_POLICY.decide(attempts + stopped, tenant.updated_at, now) if attempts else None
        held = retry is not None and retry.state in (RetryState.PERMANENT, RetryState.NEEDS_ATTENTION)
        facts.append(
            TenantFacts(
                tenant.tenant_id, tenant.status, tenant.zone, tenant.tenant_id in onboarded,
                steps.get(tenant.tenant_id), latest.get(tenant.tenant_id), failures, tenant.tenant_id in running,
                next_retry=retry.next_retry if retry and not held else None, retries_exhausted=held,
            )
        )  # fmt: skip
    return facts


def fleet_states(
    instance: dg.DagsterInstance, registry: TenantRegistry, warehouse_url: str, now: datetime | None = None
) -> list[TenantState]:
    """Every registered tenant's state, in the registry's order."""
    now = now or datetime.now(UTC)
    return [tenant_state(facts, now) for facts in gather_facts(instance, registry, warehouse_url, now)]


def quarantines(warehouse_url: str, tenant_ids: list[str], now: datetime | None = None) -> dict[str, TenantQuarantine]:
    """Every listed tenant's quarantine counts and spike, from one query of the ledger."""
    today = (now or datetime.now(UTC)).date()
    rows = QuarantineLedger(warehouse_url).since(today - timedelta(days=LEDGER_DAYS))
    return fleet_quarantine(rows, tenant_ids, today)


@dg.sensor(
    minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every tenant's state and quarantine; a webhook event when one turns stale or failing and when it "
    "recovers, when its quarantine share spikes and when it is back to usual (once each).",
)  # fmt: skip
def fleet_health_sensor(context: dg.SensorEvaluationContext, tenants: TenantRegistryResource, webhook: WebhookResource):
    now = datetime.now(UTC)
    states = fleet_states(context.instance, tenants.registry(), tenants.warehouse_url, now)
    quarantine = quarantines(tenants.warehouse_url, [state.tenant_id for state in states], now)
    previous = AlertMemory.loads(context.cursor)
    events = health_events(previous.states, states, now.date())
    for event in events + quarantine_events(previous.spiking, quarantine, now.date()):
        webhook.announce(context.log, event)
    spiking = frozenset(tenant_id for tenant_id, view in quarantine.items() if view.spike)
    return dg.SensorResult(cursor=AlertMemory({state.tenant_id: state.state for state in states}, spiking).dumps())
