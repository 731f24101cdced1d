"""`mlops`: the operator's command line (typer for commands, rich for tables, tqdm for progress)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id
from mlops_assets.core.tenants.registry import RegistryError, Tenant, TenantRegistry, file_settings, shopify_settings
from mlops_assets.settings import Settings, SettingsError
from mlops_assets.sim.demo_shops import DEMO_CALENDAR_DAYS

app = typer.Typer(no_args_is_help=True, help="Multi-tenant prediction factory on Dagster.")
tenants_app = typer.Typer(no_args_is_help=True, help="The tenant registry.")
app.add_typer(tenants_app, name="tenants")
# Logs and pipes get 160 columns (Rich would wrap the fleet table at 80); a terminal keeps its width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
EMULATOR_TOKEN_ENV = "MLOPS_EMULATOR_TOKEN"
DEMO_TOKEN = "shpat_demo_emulator_token"


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
        raise


def registry() -> TenantRegistry:
    return TenantRegistry(settings().warehouse_url)


def instance():
    """The Dagster instance of this profile: $DAGSTER_HOME, or $MLOPS_HOME/dagster for local use."""
    import dagster as dg

    home = settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    instance_yaml = home / "dagster.yaml"
    shipped = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if not instance_yaml.exists() and shipped.exists():
        instance_yaml.write_text(shipped.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    dagster_instance = dg.DagsterInstance.get()
    # On PostgreSQL Dagster opens a connection per storage call (NullPool): 3,926 connections, 29 s of a
    # 100-tenant daily cycle run from this process. The webserver's pooled engines serve a long-lived
    # process like this one; run workers started by the daemon want PgBouncer (docs/operations.md).
    dagster_instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)
    return dagster_instance


def sync_partitions() -> tuple[list[str], list[str]]:
    from mlops_assets.automation import sync_tenant_partitions

    with instance() as dagster_instance:
        return sync_tenant_partitions(dagster_instance, registry())


def parse_columns(columns: list[str]) -> dict[str, str]:
    mapping = {}
    for item in columns:
        field, sep, name = item.partition("=")
        if not sep or not field or not name:
            fail(f"--column {item!r} must look like FIELD=COLUMN, e.g. timestamp=order_date")
        mapping[field.strip()] = name.strip()
    return mapping


@tenants_app.command("add")
def tenants_add(
    tenant_id: Annotated[str, typer.Argument(help="2-63 chars: a-z, 0-9, '_' or '-'")],
    source: Annotated[str, typer.Option(help="shopify | file")] = "shopify",
    shop_url: Annotated[str | None, typer.Option(help="e.g. https://acme.myshopify.com")] = None,
    token_env: Annotated[str | None, typer.Option(help="NAME of the env var holding the shop token")] = None,
    api_version: Annotated[str, typer.Option(help="Shopify Admin API version")] = "2025-01",
    path: Annotated[str | None, typer.Option(help="file tenants: CSV/Parquet export, local or s3://")] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv | parquet (default: from the suffix)")
    ] = None,
    delimiter: Annotated[str, typer.Option(help="CSV delimiter, or 'whitespace'")] = ",",
    column: Annotated[list[str], typer.Option(help="FIELD=COLUMN mapping, repeatable")] = [],  # noqa: B006
    timezone: Annotated[str, typer.Option(help="IANA zone of the shop's days")] = "UTC",
    currency: Annotated[str, typer.Option(help="ISO 4217 code")] = "USD",
    horizon_days: Annotated[int, typer.Option(help="prediction horizon H in days")] = 30,
    display_name: Annotated[str | None, typer.Option(help="shown in the dashboard")] = None,
):
    """Register a tenant and add its partition."""
    try:
        validate_tenant_id(tenant_id)
        if source == "shopify":
            if not shop_url or not token_env:
                fail("a shopify tenant needs --shop-url and --token-env (the NAME of a variable, not the token)")
            source_settings = shopify_settings(shop_url, token_env, api_version)
        elif source == "file":
            source_settings = file_settings(path, file_format, parse_columns(column))
            source_settings["delimiter"] = delimiter
        else:
            fail(f"--source {source!r} must be 'shopify' or 'file'")
        tenant = registry().add(
            Tenant(
                tenant_id=tenant_id,
                display_name=display_name or tenant_id,
                source_kind=source,
                source_settings=source_settings,
                timezone=timezone,
                currency=currency.upper(),
                horizon_days=horizon_days,
            )
        )
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    sync_partitions()
    console.print(f"registered [bold]{tenant.tenant_id}[/bold] ({tenant.source_kind}) and added its partition")


@tenants_app.command("list")
def tenants_list(as_json: Annotated[bool, typer.Option("--json", help="one JSON object per tenant")] = False):
    """Show registered tenants (secrets are referenced by variable name only)."""
    import json

    tenants = registry().list()
    if as_json:
        for tenant in tenants:
            typer.echo(json.dumps(tenant.public_view(), sort_keys=True))
        return
    table = Table("tenant", "source", "where", "timezone", "currency", "H", "status", "created")
    for tenant in tenants:
        where = tenant.source_settings.get("shop_url") or tenant.source_settings.get("path")
        if tenant.source_kind == "shopify":
            where = f"{where} (token: ${tenant.source_settings['token_env']})"
        table.add_row(
            tenant.tenant_id,
            tenant.source_kind,
            where,
            tenant.timezone,
            tenant.currency,
            str(tenant.horizon_days),
            tenant.status,
            tenant.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@tenants_app.command("remove")
def tenants_remove(
    tenant_id: str,
    purge: Annotated[bool, typer.Option(help="also delete the tenant's lake data and quarantine")] = False,
):
    """Unregister a tenant and drop its partition; its data stays unless --purge."""
    from mlops_assets.core.lake.files import lake_root, purge_tenant

    try:
        registry().remove(tenant_id)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    sync_partitions()
    console.print(f"removed {tenant_id} from the registry and its partition from Dagster")
    if purge:
        current = settings()
        removed = purge_tenant(lake_root(current.lake_url, current.s3_endpoint_url), tenant_id)
        console.print(f"purged {len(removed)} lake directories of {tenant_id}")


def _set_status(tenant_id: str, status: str) -> None:
    try:
        registry().set_status(tenant_id, status)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    console.print(f"{tenant_id} is now {status}")


@tenants_app.command("pause")
def tenants_pause(tenant_id: str):
    """Keep a tenant's data and partition but leave it out of scheduled runs."""
    _set_status(tenant_id, "paused")


@tenants_app.command("resume")
def tenants_resume(tenant_id: str):
    _set_status(tenant_id, "active")


@tenants_app.command("monitoring")
def tenants_monitoring(
    tenant_id: str,
    settings_: Annotated[
        list[str], typer.Argument(metavar="[NAME=VALUE]...", help="thresholds to override; none: show them")
    ] = None,  # noqa: RUF013 - typer's optional variadic argument
    reset: Annotated[bool, typer.Option(help="drop every override (back to the defaults)")] = False,
):
    """Show or override a tenant's monitoring thresholds (drift, performance floor, rollback, cooldown)."""
    from mlops_assets.resources import MonitoringPolicyResource

    try:
        current = registry().get(tenant_id)
        overrides = {} if reset else dict(current.monitoring)
        for item in settings_ or []:
            name, sep, value = item.partition("=")
            if not sep:
                fail(f"{item!r} must look like NAME=VALUE, e.g. cooldown_days=3")
            overrides[name.strip()] = value.strip()
        if reset or settings_:
            current = registry().set_monitoring(tenant_id, overrides)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    table = Table("threshold", "value", "source")
    thresholds = MonitoringPolicyResource().thresholds(current)
    for name in thresholds.names():
        table.add_row(name, str(getattr(thresholds, name)), "tenant" if name in current.monitoring else "default")
    console.print(table)


api_key_app = typer.Typer(no_args_is_help=True, help="A tenant's API keys (the API and the dashboard login).")
tenants_app.add_typer(api_key_app, name="api-key")


def _api_keys(tenant_id: str):
    from mlops_assets.core.tenants.api_keys import ApiKeys

    try:
        registry().get(tenant_id)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    return ApiKeys(settings().warehouse_url)


@api_key_app.command("create")
def api_key_create(tenant_id: str, label: Annotated[str, typer.Option(help="who or what uses it")] = ""):
    """Create a key; it is printed once and only its hash is stored."""
    key_id, key = _api_keys(tenant_id).create(tenant_id, label)
    console.print(f"key id {key_id} for {tenant_id} (shown once, store it now):", highlight=False)
    typer.echo(key)


@api_key_app.command("revoke")
def api_key_revoke(tenant_id: str, key_id: str):
    """Revoke a key: API calls and dashboard sessions opened with it stop working at once."""
    from mlops_assets.core.tenants.api_keys import ApiKeyError

    try:
        _api_keys(tenant_id).revoke(tenant_id, key_id)
    except ApiKeyError as exc:
        fail(str(exc))
    console.print(f"revoked key {key_id} of {tenant_id}")


@api_key_app.command("list")
def api_key_list(tenant_id: str):
    table = Table("key id", "label", "created", "revoked")
    for row in _api_keys(tenant_id).list(tenant_id):
        revoked = row["revoked_at"].strftime("%Y-%m-%d %H:%M") if row["revoked_at"] else "-"
        table.add_row(row["key_id"], row["label"], row["created_at"].strftime("%Y-%m-%d %H:%M"), revoked)
    console.print(table)


def _build_emulator(shops, host: str, port: int, token: str, faults=None, bucket=(40, 2.0), as_of_request=False):
    from tqdm import tqdm

    from mlops_assets.sim.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator
    from mlops_assets.sim.shops import SyntheticShop

    emulated = {}
    for spec in tqdm(shops, desc="generating shops", unit="shop", disable=None):
        emulated[spec.name] = EmulatedShop(SyntheticShop(spec), token, LeakyBucket(*bucket), as_of_request)
    try:
        return ShopApiEmulator(emulated, host=host, port=port, faults=faults)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc} (fix: pick another --port)")
        raise


def _emulator_token() -> str:
    return os.environ.get(EMULATOR_TOKEN_ENV) or DEMO_TOKEN


@app.command("shop-emulator")
def shop_emulator(
    host: str = "127.0.0.1",
    port: int = 8765,
    shop: Annotated[list[str], typer.Option(help="NAME[:CUSTOMERS[:SEED]], repeatable; default: the demo shops")] = [],  # noqa: B006
    timezone: str = "UTC",
    currency: str = "USD",
    end_date: Annotated[str | None, typer.Option(help="last day of history (default: yesterday)")] = None,
    history_days: int = 730,
    error_rate: Annotated[float, typer.Option(help="share of requests answered 5xx")] = 0.0,
    latency_ms: float = 0.0,
    drop_rate: Annotated[float, typer.Option(help="share of connections dropped without an answer")] = 0.0,
    malformed_body_rate: float = 0.0,
    malformed_record_rate: float = 0.0,
    bucket_capacity: int = 40,
    leak_per_s: float = 2.0,
    as_of_request: Annotated[
        bool, typer.Option(help="answer as the shop did at updated_at_max (replays of past days), not final states")
    ] = False,
    calendar_days: Annotated[
        int, typer.Option(help="demo shops: the `mlops demo --days` they were replayed with (sets the drift day)")
    ] = DEMO_CALENDAR_DAYS,
):
    """Serve synthetic shops with the Shopify Admin REST API shape; the token is read from $MLOPS_EMULATOR_TOKEN."""
    from mlops_assets.sim.demo_shops import demo_shops
    from mlops_assets.sim.shop_emulator import Faults
    from mlops_assets.sim.shops import ShopSpec

    end = date.fromisoformat(end_date) if end_date else datetime.now(UTC).date() - timedelta(days=1)
    specs = []
    for item in shop:
        name, *rest = item.split(":")
        try:
            validate_tenant_id(name)
            specs.append(
                ShopSpec(
                    name,
                    customers=int(rest[0]) if rest else 2000,
                    seed=int(rest[1]) if len(rest) > 1 else 0,
                    end=end,
                    history_days=history_days,
                    timezone=timezone,
                    currency=currency,
                )
            )
        except (InvalidTenantId, ValueError) as exc:
            fail(f"--shop {item!r}: {exc}")
    specs = specs or [demo.spec for demo in demo_shops(end, calendar_days)]
    faults = Faults(error_rate, latency_ms, drop_rate, malformed_body_rate, malformed_record_rate)
    emulator = _build_emulator(
        specs, host, port, _emulator_token(), faults, (bucket_capacity, leak_per_s), as_of_request
    )
    for spec in specs:
        console.print(
            f"{spec.name}: {emulator.shop_url(spec.name)}  "
            f"({spec.customers} customers, {spec.timezone}, {spec.currency})"
        )
    if EMULATOR_TOKEN_ENV not in os.environ:
        console.print(f"token: ${EMULATOR_TOKEN_ENV} is unset, accepting the demo token {DEMO_TOKEN!r}")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        fail(f"{value!r} is not a date like 2026-01-31")
        raise


def _job():
    from mlops_assets.definitions import build_defs

    return build_defs(settings()).resolve_implicit_global_asset_job_def()


def _keys(names: list[str]):
    import dagster as dg

    return [dg.AssetKey(name) for name in names]


INGESTION = ["raw_orders", "raw_customers"]
HISTORY = ["raw_orders_history", "raw_customers_history"]
TRAINING = ["customer_features", "training_set", "candidate_model", "production_model"]
PREDICTION = ["customer_features", "predictions"]


def _run_days(tenant_ids: list[str], first: date, last: date, assets: list[str], days_per_run: int, stage: str) -> list:
    from tqdm import tqdm

    from mlops_assets.automation import materialize_tenant_days

    job = _job()
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
            _keys(assets),
            days_per_run=days_per_run,
            on_run_done=lambda result, days: bar.update(days),
            console_log_level="WARNING",
            stage=stage,
        )


def _run_history(tenant_ids: list[str]) -> list:
    from mlops_assets.automation import materialize_tenants

    console.print(f"history before the partition window for {len(tenant_ids)} tenants ...")
    with instance() as dagster_instance:
        return materialize_tenants(_job(), dagster_instance, tenant_ids, _keys(HISTORY), console_log_level="WARNING")


def _summarize(results: list) -> bool:
    """Print rows per tenant and the gates; True when every run and blocking gate passed."""
    from collections import defaultdict

    rows, quarantined, requests = defaultdict(int), defaultdict(int), defaultdict(int)
    gates: dict[str, list[bool]] = defaultdict(list)
    ok = True
    for result in results:
        ok &= result.success
        for event in result.get_asset_materialization_events():
            materialization = event.event_specific_data.materialization
            meta = {k: v.value for k, v in materialization.metadata.items()}
            tenant = materialization.partition.split("|")[-1]
            key = (tenant, materialization.asset_key.path[-1])
            rows[key] += int(meta.get("rows", 0))
            quarantined[key] += int(meta.get("quarantined", 0))
            requests[tenant] += int(meta.get("api_requests", 0))
        for evaluation in result.get_asset_check_evaluations():
            gates[f"{evaluation.asset_key.path[-1]}.{evaluation.check_name}"].append(evaluation.passed)
            ok &= evaluation.passed or not evaluation.blocking
    table = Table("tenant", "asset", "rows", "quarantined", "API requests")
    for (tenant, asset), count in sorted(rows.items()):
        table.add_row(tenant, asset, str(count), str(quarantined[(tenant, asset)]), str(requests[tenant]))
    console.print(table)
    gate_table = Table("quality gate", "runs passed")
    for name, passed in sorted(gates.items()):
        gate_table.add_row(name, f"{sum(passed)}/{len(passed)}")
    console.print(gate_table)
    return ok


@app.command("ingest")
def ingest(
    tenant: Annotated[list[str], typer.Option(help="tenant id, repeatable (default: every active tenant)")] = [],  # noqa: B006
    from_date: Annotated[str | None, typer.Option("--from", help="first day (default: yesterday)")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="last day (default: yesterday)")] = None,
    resource: Annotated[str, typer.Option(help="all | orders | customers")] = "all",
    history: Annotated[bool, typer.Option("--history", help="also fill the history before the window")] = False,
    days_per_run: int = 7,
):
    """Materialize raw orders/customers for tenants x days, batched into few runs."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first, last = _day(from_date, yesterday), _day(to_date, yesterday)
    if first > last:
        fail("--from is after --to")
    tenant_ids = _tenant_ids(tenant)
    assets = {"all": INGESTION, "orders": ["raw_orders"], "customers": ["raw_customers"]}[resource]
    results = (_run_history(tenant_ids) if history else []) + _run_days(
        tenant_ids, first, last, assets, days_per_run, "ingestion"
    )
    if not _summarize(results):
        fail("some runs or blocking quality gates failed; see the run logs in `mlops dev`")


def _tenant_ids(given: list[str]) -> list[str]:
    tenant_ids = given or registry().list_ids(status="active")
    if not tenant_ids:
        fail("no active tenants (fix: `mlops tenants add ...`)")
    sync_partitions()
    return tenant_ids


def _summarize_models(results: list) -> bool:
    """Print each tenant's candidate and promotion; True when every run succeeded."""
    cards, decisions = {}, {}
    for result in results:
        for event in result.get_asset_materialization_events():
            m = event.event_specific_data.materialization
            meta = {k: v.value for k, v in m.metadata.items()}
            tenant = m.partition.split("|")[-1]
            if m.asset_key.path[-1] == "candidate_model":
                cards[tenant] = meta
            elif m.asset_key.path[-1] == "production_model":
                decisions[tenant] = meta
    table = Table("tenant", "candidate", "kind", "holdout AUC", "baseline AUC", "production", "decision")
    for tenant in sorted(set(cards) | set(decisions)):
        card, decision = cards.get(tenant, {}), decisions.get(tenant, {})
        table.add_row(
            tenant,
            str(card.get("version", "")),
            str(card.get("kind", "")),
            f"{card.get('holdout_auc', float('nan')):.4f}",
            f"{card.get('baseline_auc', float('nan')):.4f}",
            str(decision.get("production_version") or "-"),
            str(decision.get("reason", ""))[:90],
        )
    console.print(table)
    return all(result.success for result in results)


@app.command("train")
def train(
    tenant: Annotated[list[str], typer.Option(help="tenant id, repeatable (default: every active tenant)")] = [],  # noqa: B006
    cutoff: Annotated[str | None, typer.Option(help="training cutoff day (default: yesterday)")] = None,
):
    """Feature snapshot, training set, candidate and promotion for tenants at one cutoff day."""
    day = _day(cutoff, datetime.now(UTC).date() - timedelta(days=1))
    if not _summarize_models(_run_days(_tenant_ids(tenant), day, day, TRAINING, 1, "training")):
        fail("a training run failed; see the run logs in `mlops dev`")


def _summarize_predictions(results: list) -> bool:
    """Print each tenant-day's predictions; True when every run succeeded."""
    table = Table("tenant", "day", "customers", "model", "high", "medium", "low")
    for result in results:
        for event in result.get_asset_materialization_events():
            m = event.event_specific_data.materialization
            if m.asset_key.path[-1] != "predictions":
                continue
            meta = {k: v.value for k, v in m.metadata.items()}
            day, tenant = m.partition.split("|")
            table.add_row(
                tenant, day, str(meta.get("customers")), f"v{meta.get('model_version')} ({meta.get('model_kind')})",
                *(str(meta.get(f"risk_{band}")) for band in ("high", "medium", "low")),
            )  # fmt: skip
    console.print(table)
    _print_failures(results)
    return all(result.success for result in results)


def _print_failures(results: list) -> None:
    for result in results:
        for event in result.all_events:
            if event.is_step_failure:
                console.print(
                    f"[red]{event.step_key} failed:[/red] {event.step_failure_data.error.message.strip()[:500]}"
                )


@app.command("predict")
def predict(
    tenant: Annotated[list[str], typer.Option(help="tenant id, repeatable (default: every active tenant)")] = [],  # noqa: B006
    from_date: Annotated[str | None, typer.Option("--from", help="first day (default: yesterday)")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="last day (default: yesterday)")] = None,
    days_per_run: int = 7,
):
    """Feature snapshots and predictions (production model -> warehouse) for tenants x days."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first, last = _day(from_date, yesterday), _day(to_date, yesterday)
    if first > last:
        fail("--from is after --to")
    results = _run_days(_tenant_ids(tenant), first, last, PREDICTION, days_per_run, "predictions")
    if not _summarize_predictions(results):
        fail("a predictions run failed (above); nothing was written for its tenant-days")


def _automation(only: list[str] | None, dagster_instance, on_run=None, weekly_retrain: bool = True):
    from mlops_assets.automation import Automation
    from mlops_assets.definitions import build_defs

    return Automation(
        build_defs(settings()), dagster_instance, registry(), only=only, on_run=on_run, weekly_retrain=weekly_retrain
    )


@app.command("backfill")
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
    the warehouse.
    """
    try:
        validate_tenant_id(tenant_id)
        registry().get(tenant_id)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    first = _day(from_date, date.today())
    last = _day(to_date, datetime.now(UTC).date() - timedelta(days=1))
    automation = _replay([tenant_id], first, last)
    _print_automation(automation, tenant_id, last)


def _replay(tenant_ids: list[str], first: date, last: date):
    """The daemon's days `first`..`last` for these tenants, in this process, with a progress bar."""
    from tqdm import tqdm

    from mlops_assets.automation import STAGE_TAG, TENANT_TAG, TRIGGER_TAG

    window_start = _window_start()
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

        automation = _automation(tenant_ids, dagster_instance, on_run)
        automation.onboard(first)
        while day <= last:
            automation.day(day + timedelta(days=1))
            bar.update(1)
            day += timedelta(days=1)
    return automation


def _window_start() -> date:
    from mlops_assets.partitions import TenantDayPartitions

    return TenantDayPartitions.from_settings(settings()).first_day


def _print_automation(automation, tenant_id: str, last: date) -> None:
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.warehouse.prediction_store import read_partition

    table = Table("stage", "runs")
    for stage, count in sorted(automation.runs_by_stage().items()):
        table.add_row(stage, str(count))
    console.print(table)
    for note in dict.fromkeys(automation.notes):
        console.print(f"  {note}", highlight=False)
    moves = [row for row in PromotionLog(settings().warehouse_url).history(tenant_id) if row["action"] != "refuse"]
    for row in moves[-10:]:
        console.print(
            f"  {row['action']} v{row['version']} (was {row['previous_version'] or '-'}): {row['reason'][:110]}"
        )
    rows = len(read_partition(settings().warehouse_url, tenant_id, last))
    console.print(f"{tenant_id}: {rows} predictions for {last} in the warehouse")
    if automation.failures():
        fail(f"failed runs: {', '.join(automation.failures())} (their logs: `mlops dev`)")


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="listen address; keep loopback unless a proxy fronts it")] = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
):
    """The prediction API (`/v1`, OpenAPI at /openapi.json) and the tenant dashboard (`/dashboard`)."""
    import uvicorn

    settings()
    console.print(f"API and dashboard on http://{host}:{port}/ (warehouse: {_safe_url(settings().warehouse_url)})")
    uvicorn.run(
        "mlops_assets.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        log_level="warning", access_log=False,
    )  # fmt: skip


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="port of the demo shop emulator")] = 8765,
    days: Annotated[int, typer.Option(help="days of the simulated calendar, ending yesterday")] = DEMO_CALENDAR_DAYS,
    reset: Annotated[bool, typer.Option("--reset", help="delete the local state first and start clean")] = False,
):
    """The main job on the embedded default: demo tenants sign up, then the daemon's days are replayed.

    Three Shopify-shaped shops (served by a local emulator) and one file tenant built from the real CDNOW
    log sign up on the calendar's first day; onboarding, the daily cycle, the weekly retrain, drift
    retrains and rollbacks then run exactly as the daemon would run them, day by day, until yesterday.
    A rerun continues where the last one stopped (run keys); --reset starts from nothing.
    """
    from mlops_assets.sim.demo_shops import CDNOW_COLUMNS, CDNOW_TENANT, calendar_start, cdnow_export, demo_shops

    current = settings()
    if reset:
        _reset_local_state(current)
    console.print(f"profile [bold]{current.profile}[/bold]; state under {current.home}")
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = calendar_start(last, days)
    shops = demo_shops(last, days)
    os.environ.setdefault(EMULATOR_TOKEN_ENV, DEMO_TOKEN)
    emulator_log = current.home / "shop-emulator.log"
    emulator = _background_emulator(port, days, emulator_log)
    try:
        export_path = current.home / "exports" / f"{CDNOW_TENANT}.csv"
        export_path.parent.mkdir(parents=True, exist_ok=True)
        cdnow_export(last).to_csv(export_path, index=False)
        tenants_registry = registry()
        for shop in shops:
            tenants_registry.upsert(
                Tenant(
                    shop.spec.name, shop.display_name, "shopify",
                    shopify_settings(f"http://127.0.0.1:{port}/shops/{shop.spec.name}", EMULATOR_TOKEN_ENV),
                    shop.spec.timezone, shop.spec.currency, horizon_days=shop.horizon_days,
                )
            )  # fmt: skip
        tenants_registry.upsert(
            Tenant(
                CDNOW_TENANT, "CDNOW Music (real log)", "file", file_settings(str(export_path), "csv", CDNOW_COLUMNS)
            )
        )
        tenant_ids = [shop.spec.name for shop in shops] + [CDNOW_TENANT]
        console.print(f"{len(tenant_ids)} tenants sign up on {first}; replaying the daemon's days {first} .. {last}")
        _wait_for_emulator(emulator, port, emulator_log)
        automation = _replay(tenant_ids, first, last)
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    _print_fleet(automation, tenant_ids, first, last)
    console.print(
        f"lineage: `.venv/bin/mlops dev` (Dagster UI on http://127.0.0.1:3000); to materialize shop partitions "
        f"from it, keep `.venv/bin/mlops shop-emulator --port {port} --as-of-request --calendar-days {days}` running\n"
        f"models: `.venv/bin/mlops models history {tenant_ids[0]}`; MLflow UI: "
        f"`.venv/bin/mlflow ui --backend-store-uri {current.mlflow_tracking_uri}` (http://127.0.0.1:5000)\n"
        f"dashboard and API: `.venv/bin/mlops tenants api-key create {tenant_ids[0]}`, then `.venv/bin/mlops serve` "
        "and sign in with the key at http://127.0.0.1:8000/dashboard"
    )
    if automation.failures():
        fail(f"failed runs: {', '.join(automation.failures())} (their logs: `mlops dev`)")


def _background_emulator(port: int, days: int, log: Path) -> subprocess.Popen:
    """`mlops shop-emulator` serving the demo shops from its own process (the second core builds and
    serves the shops while this one runs the pipeline), in replay mode with Shopify Plus limits."""
    command = [
        sys.executable, "-m", "mlops_assets.cli", "shop-emulator", "--port", str(port), "--as-of-request",
        "--calendar-days", str(days), "--bucket-capacity", "400", "--leak-per-s", "20",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_emulator(process: subprocess.Popen, port: int, log: Path, timeout_s: float = 120.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"the shop emulator stopped: {log.read_text()[-600:]} (fix: pick another --port)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    fail(f"the shop emulator did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


def _reset_local_state(current: Settings) -> None:
    """Delete $MLOPS_HOME and the Dagster home, refusing when a store lives elsewhere (never a server's data)."""
    import shutil

    outside = [
        name
        for name, where in (
            ("MLOPS_LAKE_URL", current.lake_url),
            ("MLOPS_WAREHOUSE_URL", current.warehouse_url.removeprefix("sqlite:///")),
            ("MLOPS_MLFLOW_TRACKING_URI", current.mlflow_tracking_uri.removeprefix("sqlite:///")),
            ("DAGSTER_HOME", str(current.dagster_home)),
        )
        if not Path(where).resolve().is_relative_to(current.home)
    ]
    if current.profile != "local" or outside:
        fail(
            f"--reset only deletes local state under {current.home}, and {', '.join(outside) or 'MLOPS_PROFILE'} "
            "points elsewhere (fix: clear that store by hand, or unset the variable)"
        )
    shutil.rmtree(current.home, ignore_errors=True)
    console.print(f"reset: deleted {current.home}")


def _print_fleet(automation, tenant_ids: list[str], first: date, last: date) -> None:
    """Per tenant: customers, serving model and its holdout AUC against the baseline, promotions, drift, rows."""
    import dagster as dg

    from mlops_assets.automation import TENANT_TAG, TRIGGER_TAG
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.warehouse.prediction_store import PredictionReader
    from mlops_assets.partitions import tenant_day_key

    reader, log = PredictionReader(settings().warehouse_url), PromotionLog(settings().warehouse_url)
    table = Table(
        "tenant", "customers", "model", "AUC", "baseline", "promoted", "drift days", "drift retrains", "predictions",
        title=f"{first} .. {last}",
    )  # fmt: skip
    dagster_instance = instance()
    for tenant_id in tenant_ids:
        batches = [b for b in reader.batches(tenant_id, limit=3660) if first <= b["as_of_date"] <= last]
        latest = batches[-1] if batches else {}
        metrics = latest.get("model_metrics", {})
        keys = [tenant_day_key(tenant_id, first + timedelta(days=k)) for k in range((last - first).days + 1)]
        reports = dagster_instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report"), asset_partitions=keys), limit=10 * len(keys)
        ).records
        alarms = sorted(
            {r.partition_key[:10] for r in reports if r.asset_materialization.metadata["alarms"].value != "none"}
        )
        retrains = len(dagster_instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift", TENANT_TAG: tenant_id})))
        moves = [(row["alias"], row["action"]) for row in log.history(tenant_id)]
        table.add_row(
            tenant_id,
            str(latest.get("customers", "-")),
            f"v{latest['model_version']} {latest['model_kind']}" if latest else "-",
            f"{metrics.get('holdout_auc', float('nan')):.3f}",
            f"{metrics.get('baseline_auc', float('nan')):.3f}",
            str(moves.count(("production", "promote"))),
            f"{len(alarms)} from {alarms[0][5:]}" if alarms else "0",
            str(retrains),
            f"{sum(b['customers'] for b in batches):,}",
        )
    dagster_instance.dispose()
    console.print(table)
    launched = ", ".join(f"{stage} {count}" for stage, count in sorted(automation.runs_by_stage().items()))
    console.print(f"runs this time: {launched or 'none (everything was already done)'}")
    for note in dict.fromkeys(automation.notes):
        console.print(f"  {note}", highlight=False)


models_app = typer.Typer(no_args_is_help=True, help="Registered models, promotions and rollbacks.")
app.add_typer(models_app, name="models")


def _model_registry():
    from mlops_assets.core.ml.tracking import ModelRegistry

    current = settings()
    return ModelRegistry(current.mlflow_tracking_uri, current.mlflow_artifact_uri, current.s3_endpoint_url)


def _serving_sample(tenant_id: str, cutoff: str | None):
    """The holdout of the version's training set, when the lake still has it."""
    from mlops_assets.core.lake.files import lake_root
    from mlops_assets.core.ml.training_data import stored_holdout_sample

    current = settings()
    return stored_holdout_sample(lake_root(current.lake_url, current.s3_endpoint_url), tenant_id, cutoff)


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


@models_app.command("history")
def models_history(tenant_id: str):
    """Registered versions with their holdout metrics, and every alias move from the promotion log."""
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.ml.tracking import PRODUCTION, STAGING

    try:
        validate_tenant_id(tenant_id)
    except InvalidTenantId as exc:
        fail(str(exc))
    models = _model_registry()
    production, staging = models.alias_version(tenant_id, PRODUCTION), models.alias_version(tenant_id, STAGING)
    versions = Table("version", "kind", "cutoff", "holdout AUC", "baseline AUC", "aliases", "run")
    for version in models.versions(tenant_id):
        metrics = models.run(version.run_id).data.metrics
        aliases = [a for a, v in ((PRODUCTION, production), (STAGING, staging)) if v and v.version == version.version]
        versions.add_row(
            version.version,
            version.tags.get("model_kind", "?"),
            version.tags.get("cutoff", "?"),
            f"{metrics.get('holdout_auc', float('nan')):.4f}",
            f"{metrics.get('baseline_auc', float('nan')):.4f}",
            ",".join(aliases),
            version.run_id[:8],
        )
    console.print(versions)
    log = Table("when", "alias", "action", "version", "previous", "by", "reason")
    for row in PromotionLog(settings().warehouse_url).history(tenant_id):
        log.add_row(
            row["created_at"].strftime("%Y-%m-%d %H:%M"),
            row["alias"],
            row["action"],
            str(row["version"]),
            str(row["previous_version"] or "-"),
            row["actor"],
            row["reason"][:100],
        )
    console.print(log)


def _move_production(tenant_id: str, version: str, action: str, reason: str) -> None:
    from mlops_assets.core.ml.candidates import set_production

    models = _model_registry()
    try:
        target = models.version(tenant_id, version)
    except Exception as exc:  # noqa: BLE001 - MLflow raises one exception type for every lookup failure
        fail(
            f"tenant {tenant_id}: no registered version {version} ({exc.__class__.__name__}); "
            f"see `mlops models history {tenant_id}`"
        )
        raise
    outcome = set_production(
        models,
        settings().warehouse_url,
        tenant_id,
        target.version,
        action,
        reason,
        _actor(),
        _serving_sample(tenant_id, target.tags.get("cutoff")),
    )
    if not outcome.promoted:
        fail(outcome.reason)
    console.print(
        f"{tenant_id}: production is now version {outcome.production_version} "
        f"(was {outcome.previous_production or 'none'})"
    )


@models_app.command("promote")
def models_promote(
    tenant_id: str,
    to_version: Annotated[str, typer.Option("--to-version", help="registered version to serve")],
    reason: Annotated[str, typer.Option(help="why, for the promotion log")] = "manual promotion",
):
    """Point `production` at a version by hand; serving checks still apply."""
    _move_production(tenant_id, to_version, "promote", reason)


@models_app.command("rollback")
def models_rollback(
    tenant_id: str,
    to_version: Annotated[str | None, typer.Option("--to-version", help="default: the previous production")] = None,
    reason: Annotated[str, typer.Option(help="why, for the promotion log")] = "manual rollback",
):
    """Move `production` back to the version it pointed to before (from the promotion log)."""
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.ml.tracking import PRODUCTION

    current = _model_registry().alias_version(tenant_id, PRODUCTION)
    if current is None:
        fail(f"tenant {tenant_id} has no production model to roll back")
    target = to_version or PromotionLog(settings().warehouse_url).previous_production(tenant_id, current.version)
    if not target:
        fail(
            f"tenant {tenant_id}: the promotion log has no version before {current.version} "
            "(fix: name one with --to-version)"
        )
    _move_production(tenant_id, target, "rollback", reason)


@app.command("reproduce")
def reproduce_command(tenant_id: str, version: str):
    """Rebuild a version's training set from its logged data version, retrain, compare predictions bit for bit."""
    from mlops_assets.core.lake.files import lake_root
    from mlops_assets.core.ml.reproduction import reproduce

    current = settings()
    report = reproduce(_model_registry(), lake_root(current.lake_url, current.s3_endpoint_url), tenant_id, version)
    for line in report.differences:
        console.print(f"  differs: {line}", highlight=False)
    if not report.identical:
        fail(f"tenant {tenant_id} version {version} was NOT reproduced: holdout predictions differ")
    console.print(
        f"tenant {tenant_id} version {version} reproduced: holdout predictions bit-identical "
        f"({report.rebuilt_predictions})"
    )


@app.command("dev")
def dev(host: str = "127.0.0.1", port: int = 3000):
    """`dagster dev` on this profile's persistent instance ($MLOPS_HOME/dagster unless DAGSTER_HOME is set).

    It also passes the demo emulator's token (unless $MLOPS_EMULATOR_TOKEN is set), so demo tenants
    can be materialized from the UI while `mlops shop-emulator` runs.
    """
    instance().dispose()
    os.environ.setdefault(EMULATOR_TOKEN_ENV, DEMO_TOKEN)
    command = [sys.executable, "-m", "dagster", "dev", "-m", "mlops_assets.definitions", "-h", host, "-p", str(port)]
    raise typer.Exit(subprocess.call(command, env={**os.environ}))


if __name__ == "__main__":
    app()
