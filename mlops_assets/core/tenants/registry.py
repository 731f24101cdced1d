"""The tenant registry: who the tenants are and where their orders come from.

Secrets are referenced, never stored: a Shopify tenant names the environment variable that
holds its access token, and the token is read only at the moment a request is made.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from mlops_assets.core.monitoring.thresholds import MonitoringSettingError, MonitoringThresholds
from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.warehouse.engine import engine_for, tenants_table

SourceKind = Literal["shopify", "file"]
ENV_VAR_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
FILE_FORMATS = ("csv", "parquet")
FILE_COLUMNS = ("customer_id", "timestamp", "amount", "order_id", "quantity", "currency")


class RegistryError(ValueError):
    pass


class TenantNotFound(RegistryError, LookupError):
    pass


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    display_name: str
    source_kind: SourceKind
    source_settings: dict[str, Any]
    timezone: str = "UTC"
    currency: str = "USD"
    horizon_days: int = 30
    status: str = "active"
    created_at: datetime | None = None
    updated_at: datetime | None = field(default=None, compare=False)
    monitoring: dict[str, Any] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def public_view(self) -> dict[str, Any]:
        """What may be shown or logged: settings only reference secrets, so all of it."""
        view = asdict(self)
        for key in ("created_at", "updated_at"):
            view[key] = view[key].isoformat() if view[key] else None
        return view


def shopify_settings(shop_url: str, token_env: str, api_version: str = "2025-01") -> dict[str, Any]:
    parts = urlsplit(shop_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"--shop-url {shop_url!r} is not an http(s) URL (fix: e.g. https://acme.myshopify.com)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise RegistryError(
            "--shop-url must not carry credentials, a query or a fragment (fix: put the token in an "
            "environment variable and pass its name with --token-env)"
        )
    if not ENV_VAR_NAME.fullmatch(token_env or ""):
        raise RegistryError(
            f"--token-env {token_env!r} is not an environment variable name (fix: e.g. ACME_SHOPIFY_TOKEN; "
            "pass the variable's name, never the token itself)"
        )
    return {"shop_url": shop_url.rstrip("/"), "token_env": token_env, "api_version": api_version}


def file_settings(path: str, file_format: str | None = None, columns: dict[str, str] | None = None) -> dict[str, Any]:
    if not path:
        raise RegistryError("--path is required for a file tenant (fix: a CSV or Parquet export, local or s3://)")
    file_format = (file_format or ("parquet" if path.endswith(".parquet") else "csv")).lower()
    if file_format not in FILE_FORMATS:
        raise RegistryError(f"--format {file_format!r} is not one of {FILE_FORMATS}")
    columns = dict(columns or {})
    unknown = set(columns) - set(FILE_COLUMNS)
    if unknown:
        raise RegistryError(f"--column names {sorted(unknown)} are not among {FILE_COLUMNS}")
    return {"path": path, "format": file_format, "columns": columns}


def _validated(tenant: Tenant) -> Tenant:
    validate_tenant_id(tenant.tenant_id)
    try:
        ZoneInfo(tenant.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RegistryError(
            f"tenant {tenant.tenant_id}: timezone {tenant.timezone!r} is not an IANA zone (fix: e.g. Europe/Berlin)"
        ) from exc
    if not CURRENCY_CODE.fullmatch(tenant.currency):
        raise RegistryError(f"tenant {tenant.tenant_id}: currency {tenant.currency!r} is not an ISO 4217 code like EUR")
    if not 1 <= int(tenant.horizon_days) <= 365:
        raise RegistryError(f"tenant {tenant.tenant_id}: horizon_days {tenant.horizon_days} must be in [1, 365]")
    if tenant.source_kind not in ("shopify", "file"):
        raise RegistryError(f"tenant {tenant.tenant_id}: source {tenant.source_kind!r} must be 'shopify' or 'file'")
    if tenant.status not in ("active", "paused"):
        raise RegistryError(f"tenant {tenant.tenant_id}: status {tenant.status!r} must be 'active' or 'paused'")
    try:
        MonitoringThresholds().overridden(tenant.tenant_id, tenant.monitoring)
    except MonitoringSettingError as exc:
        raise RegistryError(str(exc)) from exc
    return tenant


def _row_to_tenant(row: sa.Row) -> Tenant:
    mapping = dict(row._mapping)
    for key in ("created_at", "updated_at"):
        if mapping[key] is not None and mapping[key].tzinfo is None:
            mapping[key] = mapping[key].replace(tzinfo=UTC)
    return Tenant(**mapping)


class TenantRegistry:
    def __init__(self, warehouse_url: str):
        self.engine = engine_for(warehouse_url)

    def add(self, tenant: Tenant) -> Tenant:
        tenant = _validated(tenant)
        now = datetime.now(UTC)
        values = {**asdict(tenant), "created_at": now, "updated_at": now}
        try:
            with self.engine.begin() as conn:
                conn.execute(tenants_table.insert().values(**values))
        except sa.exc.IntegrityError as exc:
            raise RegistryError(
                f"tenant {tenant.tenant_id} is already registered "
                f"(fix: `mlops tenants remove {tenant.tenant_id}` first, or pick another id)"
            ) from exc
        return self.get(tenant.tenant_id)

    def upsert(self, tenant: Tenant) -> Tenant:
        """Register, or update the settings of an existing tenant (keeping its created_at)."""
        tenant = _validated(tenant)
        values = {k: v for k, v in asdict(tenant).items() if k not in ("tenant_id", "created_at", "updated_at")}
        with self.engine.begin() as conn:
            updated = conn.execute(
                tenants_table.update()
                .where(tenants_table.c.tenant_id == tenant.tenant_id)
                .values(**values, updated_at=datetime.now(UTC))
            ).rowcount
        return self.get(tenant.tenant_id) if updated else self.add(tenant)

    def get(self, tenant_id: str) -> Tenant:
        validate_tenant_id(tenant_id)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tenants_table).where(tenants_table.c.tenant_id == tenant_id)).first()
        if row is None:
            raise TenantNotFound(f"tenant {tenant_id} is not registered (fix: `mlops tenants add {tenant_id} ...`)")
        return _row_to_tenant(row)

    def list(self, status: str | None = None) -> list[Tenant]:
        query = sa.select(tenants_table).order_by(tenants_table.c.tenant_id)
        if status:
            query = query.where(tenants_table.c.status == status)
        with self.engine.connect() as conn:
            return [_row_to_tenant(row) for row in conn.execute(query)]

    def list_ids(self, status: str | None = None) -> list[str]:
        return [tenant.tenant_id for tenant in self.list(status=status)]

    def set_status(self, tenant_id: str, status: str) -> Tenant:
        return self._update(tenant_id, status=status)

    def set_monitoring(self, tenant_id: str, overrides: dict[str, Any]) -> Tenant:
        """Replace the tenant's monitoring threshold overrides (an empty dict restores the defaults)."""
        try:
            typed = MonitoringThresholds().overridden(tenant_id, overrides)
        except MonitoringSettingError as exc:
            raise RegistryError(str(exc)) from exc
        return self._update(tenant_id, monitoring={name: getattr(typed, name) for name in overrides})

    def _update(self, tenant_id: str, **changes) -> Tenant:
        tenant = _validated(Tenant(**{**asdict(self.get(tenant_id)), **changes}))
        with self.engine.begin() as conn:
            conn.execute(
                tenants_table.update()
                .where(tenants_table.c.tenant_id == tenant.tenant_id)
                .values(**changes, updated_at=datetime.now(UTC))
            )
        return self.get(tenant_id)

    def remove(self, tenant_id: str) -> Tenant:
        tenant = self.get(tenant_id)
        with self.engine.begin() as conn:
            conn.execute(tenants_table.delete().where(tenants_table.c.tenant_id == tenant.tenant_id))
        return tenant
