"""`mlops ingest | train | predict | backfill`: stages or the daemon's days for tenants, run in this process."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from mlops_assets.cli.common import (
    RUN_LOG_LEVEL,
    build_automation,
    console,
    fail,
    instance,
    print_table,
    registry,
    settings,
    sync_partitions,
)
from mlops_assets.cli.outcomes import report_failures
from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id
from mlops_assets.core.tenants.registry import RegistryError

INGESTION = ["raw_orders", "raw_customers"]
HISTORY = ["raw_orders_history", "raw_customers_history"]
TRAINING = ["customer_features", "training_set", "candidate_model", "production_model"]
PREDICTION = ["customer_features", "predictions"]


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        fail(f"{value!r} is not a date like 2026-01-31")
        raise


def _yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def _window(from_date: str | None, to_date: str | None) -> tuple[date, date]:
    yesterday = _yesterday()
    first, last = _day(from_date, yesterday), _day(to_date, yesterday)
    if first > last:
        fail("--from is after --to")
    return first, last


def _tenant_ids(given: list[str]) -> list[str]:
    tenant_ids = given or registry().list_ids(status="active")
    if not tenant_ids:
        fail("no active tenants (fix: `mlops tenants add ...`)")
    sync_partitions()
    return tenant_ids


def asset_job():
    """The job of every asset, for runs of any selection (as `mlops` starts them, in this process)."""
    from mlops_assets.definitions import build_defs

    return build_defs(settings()).resolve_implicit_global_asset_job_def()


def asset_keys(names: list[str]):
    import dagster as dg

    return [dg.AssetKey(name) for name in names]


def _run_days(tenant_ids: list[str], first: date, last: date, assets: list[str], days_per_run: int, stage: str) -> list:
    from tqdm import tqdm

    from mlops_assets.automation.batching import materialize_tenant_days

    job = asset_job()
    with (
        instance() as dagster_instance,
        tqdm(total=(last - first).days + 1, desc=stage, unit="day", disable=None) as bar,
    ):
        return materialize_tenant_days(
            job,
            dagster_instance,
            tenant_ids,
            first,
            last,
            asset_keys(assets),
            days_per_run=days_per_run,
            on_run_done=lambda result, days: bar.update(days),
            console_log_level=RUN_LOG_LEVEL,
            stage=stage,
        )


def _run_history(tenant_ids: list[str]) -> list:
    from mlops_assets.automation.batching import materialize_tenants

    console.print(f"history before the partition window for {len(tenant_ids)} tenants ...")
    with instance() as dagster_instance:
        return materialize_tenants(
            asset_job(), dagster_instance, tenant_ids, asset_keys(HISTORY), console_log_level=RUN_LOG_LEVEL
        )


def _materializations(results: list):
    """(asset name, partition key, metadata values) of every materialization in the runs, in run order."""
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            yield materialization.asset_key.path[-1], materialization.partition, metadata


def _summarize_ingestion(results: list) -> bool:
    """Print rows per tenant and the gates; True when every run and blocking gate passed."""
    rows, quarantined, requests = defaultdict(int), defaultdict(int), defaultdict(int)
    for asset, partition, meta in _materializations(results):
        tenant = partition.split("|")[-1]
        rows[(tenant, asset)] += int(meta.get("rows", 0))
        quarantined[(tenant, asset)] += int(meta.get("quarantined", 0))
        requests[tenant] += int(meta.get("api_requests", 0))
    gates: dict[str, list[bool]] = defaultdict(list)
    ok = all(result.success for result in results)
    for result in results:
        for evaluation in result.get_asset_check_evaluations():
            gates[f"{evaluation.asset_key.path[-1]}.{evaluation.check_name}"].append(evaluation.passed)
            ok &= evaluation.passed or not evaluation.blocking
    print_table(
        ("tenant", "asset", "rows", "quarantined", "API requests"),
        (
            (tenant, asset, str(count), str(quarantined[(tenant, asset)]), str(requests[tenant]))
            for (tenant, asset), count in sorted(rows.items())
        ),
    )
    print_table(
        ("quality gate", "runs passed"),
        ((name, f"{sum(passed)}/{len(passed)}") for name, passed in sorted(gates.items())),
    )
    return ok


def _summarize_models(results: list) -> bool:
    """Print each tenant's candidate and promotion; True when every run succeeded."""
    cards, decisions = {}, {}
    for asset, partition, meta in _materializations(results):
        tenant = partition.split("|")[-1]
        if asset == "candidate_model":
            cards[tenant] = meta
        elif asset == "production_model":
            decisions[tenant] = meta
    rows = []
    for tenant in sorted(set(cards) | set(decisions)):
        card, decision = cards.get(tenant, {}), decisions.get(tenant, {})
        rows.append(
            (
                tenant,
                str(card.get("version", "")),
                str(card.get("kind", "")),
                f"{card.get('holdout_auc', float('nan')):.4f}",
                f"{card.get('baseline_auc', float('nan')):.4f}",
                str(decision.get("production_version") or "-"),
                str(decision.get("reason", ""))[:90],
            )
        )
    print_table(("tenant", "candidate", "kind", "holdout AUC", "baseline AUC", "production", "decision"), rows)
    return all(result.success for result in results)


def _summarize_predictions(results: list) -> bool:
    """Print each tenant-day's predictions and the failed steps; True when every run succeeded."""
    rows = []
    for asset, partition, meta in _materializations(results):
        if asset == "predictions":
            day, tenant = partition.split("|")
            rows.append(
                (
                    tenant, day, str(meta.get("customers")), f"v{meta.get('model_version')} ({meta.get('model_kind')})",
                    *(str(meta.get(f"risk_{band}")) for band in ("high", "medium", "low")),
                )
            )  # fmt: skip
    print_table(("tenant", "day", "customers", "model", "high", "medium", "low"), rows)
    return all(result.success for result in results)


def ingest(
    tenant: Annotated[list[str], typer.Option(help="tenant id, repeatable (default: every active tenant)")] = [],  # noqa: B006
    from_date: Annotated[str | None, typer.Option("--from", help="first day (default: yesterday)")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="last day (default: yesterday)")] = None,
    resource: Annotated[str, typer.Option(help="all | orders | customers")] = "all",
    history: Annotated[bool, typer.Option("--history", help="also fill the history before the window")] = False,
    days_per_run: int = 7,
):
    """Materialize raw orders/customers for tenants x days, batched into few runs."""
    first, last = _window(from_date, to_date)
    tenant_ids = _tenant_ids(tenant)
    assets = {"all": INGESTION, "orders": ["raw_orders"], "customers": ["raw_customers"]}[resource]
    results = (_run_history(tenant_ids) if history else []) + _run_days(
        tenant_ids, first, last, assets, days_per_run, "ingestion"
    )
    if not _summarize_ingestion(results):
        report_failures(results)
        fail("some tenant-days failed or were blocked (above); the others were written")


def train(
    tenant: Annotated[list[str], typer.Option(help="tenant id, repeatable (default: every active tenant)")] = [],  # noqa: B006
    cutoff: Annotated[str | None, typer.Option(help="training cutoff day (default: yesterday)")] = None,
):
    """Feature snapshot, training set, candidate and promotion for tenants at one cutoff day."""
    day = _day(cutoff, _yesterday())
    results = _run_days(_tenant_ids(tenant), day, day, TRAINING, 1, "training")
    if not _summarize_models(results):
        report_failures(results)
        fail("training failed for the tenants above; the others were trained")


def predict(
    tenant: Annotated[list[str], typer.Option(help="tenant id, repeatable (default: every active tenant)")] = [],  # noqa: B006
    from_date: Annotated[str | None, typer.Option("--from", help="first day (default: yesterday)")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="last day (default: yesterday)")] = None,
    days_per_run: int = 7,
):
    """Feature snapshots and predictions (production model -> warehouse) for tenants x days."""
    first, last = _window(from_date, to_date)
    results = _run_days(_tenant_ids(tenant), first, last, PREDICTION, days_per_run, "predictions")
    if not _summarize_predictions(results):
        report_failures(results)
        fail("a predictions run failed (above); its failed tenant-days were not written, the others were")


def backfill(
    tenant_id: Annotated[str, typer.Argument(help="the tenant to bring up to date")],
    from_date: Annotated[str, typer.Option("--from", help="first day to run")],
    to_date: Annotated[str | None, typer.Option("--to", help="last day (default: yesterday)")] = None,
):
    """Every stage for TENANT over the days, as the daemon would have run them day by day.

    A tenant without a model is onboarded first, as if it signed up on --from (history sweep, the
    window's days before --from, first model at the day before). Then each day gets the daily cycle
    (ingest, features, predictions, drift, realized performance), the weekly retrain on Sundays'
    cutoffs, and the drift retrains and rollbacks the sensors ask for. The predictions of --to end in
    the warehouse. It counts as `mlops tenants retry TENANT`: failed onboarding steps and days are
    retried now, whatever held them.
    """
    try:
        validate_tenant_id(tenant_id)
        registry().touch(tenant_id)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    first = _day(from_date, date.today())
    last = _day(to_date, _yesterday())
    automation = replay_days([tenant_id], first, last)
    _print_automation(automation, tenant_id, last)


def replay_days(tenant_ids: list[str], first: date, last: date):
    """The daemon's days `first`..`last` for these tenants, in this process, with a progress bar."""
    from tqdm import tqdm

    from mlops_assets.automation.jobs import STAGE_TAG, TENANT_TAG, TRIGGER_TAG
    from mlops_assets.partitions import TenantDayPartitions

    window_start = TenantDayPartitions.from_settings(settings()).first_day
    if not window_start < first <= last:
        fail(
            f"days {first} .. {last} must be ordered and start after the partition window's first day "
            f"{window_start} (fix: a later --from, fewer --days, or a longer MLOPS_PARTITION_WINDOW_DAYS)"
        )
    sync_partitions()
    with (
        instance() as dagster_instance,
        tqdm(total=(last - first).days + 1, desc="days", unit="day", disable=None) as bar,
    ):
        day = first

        def on_run(request, result):
            stage, outcome = request.tags.get(STAGE_TAG, request.job_name), "ok" if result.success else "FAILED"
            bar.set_postfix_str(f"{day} {stage} {outcome}")
            if request.tags.get(TRIGGER_TAG) == "drift" or stage == "rollback" or not result.success:
                why = request.tags.get("mlops/alarms", "")
                bar.write(f"{day} {request.tags.get(TENANT_TAG, '')}: {stage} {why} {outcome}".replace("  ", " "))

        automation = build_automation(tenant_ids, dagster_instance, on_run)
        automation.onboard(first)
        while day <= last:
            automation.day(day + timedelta(days=1))
            bar.update(1)
            day += timedelta(days=1)
    return automation


def print_notes(automation) -> None:
    for note in dict.fromkeys(automation.notes):
        console.print(f"  {note}", highlight=False)


def fail_on_failed_runs(automation) -> None:
    if automation.failures():
        report_failures([result for _, result in automation.results])
        fail(f"failed runs: {', '.join(automation.failures())} (their logs: `mlops dev`)")


def _print_automation(automation, tenant_id: str, last: date) -> None:
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.warehouse.prediction_store import read_partition

    print_table(("stage", "runs"), ((stage, str(count)) for stage, count in sorted(automation.runs_by_stage().items())))
    print_notes(automation)
    moves = [row for row in PromotionLog(settings().warehouse_url).history(tenant_id) if row["action"] != "refuse"]
    for row in moves[-10:]:
        console.print(
            f"  {row['action']} v{row['version']} (was {row['previous_version'] or '-'}): {row['reason'][:110]}"
        )
    rows = len(read_partition(settings().warehouse_url, tenant_id, last))
    console.print(f"{tenant_id}: {rows} predictions for {last} in the warehouse")
    fail_on_failed_runs(automation)
