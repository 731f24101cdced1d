"""The tenant registry: who the tenants are and where their orders come from.

Secrets are referenced, never stored: a Shopify tenant names the environment variable that
holds its access token, and the token is read only at the moment a request is made. Source
settings and monitoring overrides are validated by their models (core/tenants/sources.py,
core/monitoring/thresholds.py) before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.tenants.sources import (
    SHOPIFY_API_VERSION,
    FileSource,
    ShopifySource,
    SourceKind,
    parse_source,
)
from mlops_assets.core.tenants.validation import TenantSettingError
from mlops_assets.core.warehouse.engine import engine_for, tenants_table

CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


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

    @property
    def source(self) -> ShopifySource | FileSource:
        """The typed source settings; stored ones that no longer validate name the tenant, the field and the fix."""
        return parse_source(self.source_kind, self.source_settings, self.tenant_id)

    def public_view(self) -> dict[str, Any]:
        """What may be shown or logged: settings only reference secrets, so all of it."""
        view = asdict(self)
        for key in ("created_at", "updated_at"):
            view[key] = view[key].isoformat() if view[key] else None
        return view


def shopify_settings(
    shop_url: str, token_env: str, api_version: str = SHOPIFY_API_VERSION, tenant_id: str | None = None
) -> dict[str, Any]:
    """A Shopify tenant's settings as the registry stores them."""
    return _stored("shopify", {"shop_url": shop_url, "token_env": token_env, "api_version": api_version}, tenant_id)


def file_settings(
    path: str | None,
    file_format: str | None = None,
    columns: dict[str, str] | None = None,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """A file tenant's settings as the registry stores them (the format defaults to the path's suffix)."""
    given = {"path": path, "format": file_format, "columns": dict(columns or {})}
    return _stored("file", {name: value for name, value in given.items() if value is not None}, tenant_id)


def _stored(kind: str, settings: dict[str, Any], tenant_id: str | None) -> dict[str, Any]:
    try:
        return parse_source(kind, settings, tenant_id).stored()
    except TenantSettingError as exc:
        raise RegistryError(str(exc)) from exc


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
    if tenant.status not in ("active", "paused"):
        raise RegistryError(f"tenant {tenant.tenant_id}: status {tenant.status!r} must be 'active' or 'paused'")
    try:
        MonitoringThresholds().overridden(tenant.tenant_id, tenant.monitoring)
        return replace(tenant, source_settings=tenant.source.stored())
    except TenantSettingError as exc:
        raise RegistryError(str(exc)) from exc


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
        except TenantSettingError as exc:
            raise RegistryError(str(exc)) from exc
        return self._update(tenant_id, monitoring={name: getattr(typed, name) for name in overrides})

    def touch(self, tenant_id: str) -> Tenant:
        """Mark the tenant as changed (`updated_at` moves): retries held on its earlier failures (permanent, or
        past the cap) start again, as after any change of its settings (core/tenants/retries.py)."""
        return self._update(tenant_id)

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
