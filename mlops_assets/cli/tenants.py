"""`mlops tenants ...`: the tenant registry, monitoring overrides and API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_assets.cli.common import console, fail, print_table, registry, settings, sync_partitions
from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id
from mlops_assets.core.tenants.registry import RegistryError, Tenant, file_settings, shopify_settings

app = typer.Typer(no_args_is_help=True, help="The tenant registry.")
api_key_app = typer.Typer(no_args_is_help=True, help="A tenant's API keys (the API and the dashboard login).")
app.add_typer(api_key_app, name="api-key")


def parse_columns(columns: list[str]) -> dict[str, str]:
    mapping = {}
    for item in columns:
        field, sep, name = item.partition("=")
        if not sep or not field or not name:
            fail(f"--column {item!r} must look like FIELD=COLUMN, e.g. timestamp=order_date")
        mapping[field.strip()] = name.strip()
    return mapping


@app.command("add")
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
            source_settings = shopify_settings(shop_url, token_env, api_version, tenant_id)
        elif source == "file":
            source_settings = file_settings(path, file_format, parse_columns(column), tenant_id)
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


def _where(tenant: Tenant) -> str:
    where = tenant.source_settings.get("shop_url") or tenant.source_settings.get("path")
    if tenant.source_kind == "shopify":
        where = f"{where} (token: ${tenant.source_settings['token_env']})"
    return where


@app.command("list")
def tenants_list(as_json: Annotated[bool, typer.Option("--json", help="one JSON object per tenant")] = False):
    """Show registered tenants and their state (secrets are referenced by variable name only)."""
    import json

    from mlops_assets.cli.status import fleet_health

    tenants = registry().list()
    fleet, quarantine = fleet_health()
    states = {state.tenant_id: state for state in fleet}
    if as_json:
        for tenant in tenants:
            view = {
                **tenant.public_view(),
                "state": states[tenant.tenant_id].state,
                "quarantine": quarantine[tenant.tenant_id].public_view(),
            }
            typer.echo(json.dumps(view, sort_keys=True))
        return
    print_table(
        ("tenant", "source", "where", "timezone", "currency", "H", "status", "state", "quarantined 7d", "created"),
        (
            (
                tenant.tenant_id,
                tenant.source_kind,
                _where(tenant),
                tenant.timezone,
                tenant.currency,
                str(tenant.horizon_days),
                tenant.status,
                states[tenant.tenant_id].state,
                quarantine[tenant.tenant_id].short,
                tenant.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for tenant in tenants
        ),
    )


@app.command("remove")
def tenants_remove(
    tenant_id: str,
    purge: Annotated[
        bool,
        typer.Option(help="also delete the tenant's lake data, quarantine, quarantine ledger and customer orders"),
    ] = False,
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
        from mlops_assets.core.warehouse.customer_orders import forget_orders
        from mlops_assets.core.warehouse.quarantine_ledger import QuarantineLedger

        current = settings()
        removed = purge_tenant(lake_root(current.lake_url, current.s3_endpoint_url), tenant_id)
        QuarantineLedger(current.warehouse_url).forget(tenant_id)
        orders = forget_orders(current.warehouse_url, tenant_id)
        console.print(
            f"purged {len(removed)} lake directories of {tenant_id}, its quarantine ledger and its {orders} customer "
            "orders in the warehouse"
        )


def _set_status(tenant_id: str, status: str) -> None:
    try:
        registry().set_status(tenant_id, status)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    console.print(f"{tenant_id} is now {status}")


@app.command("pause")
def tenants_pause(tenant_id: str):
    """Keep a tenant's data and partition but leave it out of scheduled runs."""
    _set_status(tenant_id, "paused")


@app.command("resume")
def tenants_resume(tenant_id: str):
    _set_status(tenant_id, "active")


@app.command("retry")
def tenants_retry(tenant_id: str):
    """Retry a tenant's failed work now: after fixing the cause of a permanent failure (token, shop URL) or of
    one that "needs attention", the next sensor tick (or `mlops backfill`) runs it again."""
    try:
        registry().touch(tenant_id)
    except (InvalidTenantId, RegistryError) as exc:
        fail(str(exc))
    console.print(
        f"{tenant_id}: earlier failures no longer hold its retries; the daemon retries its failed onboarding "
        f"steps and days within minutes (or now: `mlops backfill {tenant_id} --from DAY`)"
    )


@app.command("monitoring")
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
    thresholds = MonitoringPolicyResource().thresholds(current)
    print_table(
        ("threshold", "value", "source"),
        (
            (name, str(getattr(thresholds, name)), "tenant" if name in current.monitoring else "default")
            for name in thresholds.names()
        ),
    )


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
    print_table(
        ("key id", "label", "created", "revoked"),
        (
            (
                row["key_id"],
                row["label"],
                row["created_at"].strftime("%Y-%m-%d %H:%M"),
                row["revoked_at"].strftime("%Y-%m-%d %H:%M") if row["revoked_at"] else "-",
            )
            for row in _api_keys(tenant_id).list(tenant_id)
        ),
    )
