"""One tenant-day of raw data from the tenant's source, the context its screening needs, and the history sweep.

The Dagster assets call `ingest_day` per partition and `ingest_history` per tenant; tests and
benchmarks call them directly. A re-run of a day returns exactly what a clean run returns: rows are
canonical (sorted by id) and the quarantine is rebuilt, not appended to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from upath import UPath

from mlops_assets.core.lake import files as lake
from mlops_assets.core.lake.history import LAKE_DAY, history_files, read_records
from mlops_assets.core.sources.files import day_slices, load_normalized, out_of_window
from mlops_assets.core.sources.records import QUARANTINE_SCHEMA, quarantine_frame, to_frame
from mlops_assets.core.sources.screening import PartitionContext, Screened, outlier_limit, screen
from mlops_assets.core.sources.shopify import FetchStats, ShopifyClient
from mlops_assets.core.tenants.registry import Tenant

RAW_ASSETS = {"orders": "raw_orders", "customers": "raw_customers"}
HISTORY_ASSETS = {"orders": "raw_orders_history", "customers": "raw_customers_history"}
TRAILING_DAYS = 14
REFERENCE_ORDERS = 20  # fewer trailing orders than this: the outlier reference takes the whole stored history


@dataclass
class IngestedDay:
    """A day's records as the source gave them (validated, every version) and those that failed validation."""

    frame: pd.DataFrame
    quarantine: pd.DataFrame
    stats: FetchStats = field(default_factory=FetchStats)


def shopify_client(tenant: Tenant, token: str, **options) -> ShopifyClient:
    """A client for the tenant's shop; `token` is read from the variable the tenant names when a run needs it."""
    source = tenant.source
    return ShopifyClient(
        shop_url=source.shop_url, token=token, tenant_id=tenant.tenant_id, api_version=source.api_version, **options
    )


def _file_customers(orders: pd.DataFrame, first_seen: pd.Series) -> pd.DataFrame:
    """File exports carry no customer records: a customer is seen on the days they order."""
    if orders.empty:
        return to_frame("customers", [])
    linked = orders.dropna(subset=["customer_id"])
    last = linked.groupby("customer_id")["updated_at"].max()
    return to_frame(
        "customers",
        pd.DataFrame(
            {
                "customer_id": last.index,
                "created_at": first_seen.reindex(last.index).to_numpy(),
                "updated_at": last.to_numpy(),
                "state": "enabled",
                "tags": None,
            }
        ),
    )


def ingest_file_days(tenant: Tenant, resource: str, days: list[date]) -> dict[date, IngestedDay]:
    normalized = load_normalized(tenant.source, tenant.timezone, tenant.currency, tenant.tenant_id)
    slices = day_slices(normalized, days)
    if resource == "orders":
        return {day: IngestedDay(frame=sliced.frame, quarantine=sliced.quarantine) for day, sliced in slices.items()}
    good = normalized[normalized["_error"].isna()]
    first_seen = good.groupby("customer_id")["created_at"].min()
    return {
        day: IngestedDay(frame=_file_customers(sliced.frame, first_seen), quarantine=quarantine_frame([]))
        for day, sliced in slices.items()
    }


def ingest_day(tenant: Tenant, resource: str, day: date, client: ShopifyClient | None = None) -> IngestedDay:
    if resource not in RAW_ASSETS:
        raise ValueError(f"unknown resource {resource!r}")
    if tenant.source_kind == "file":
        return ingest_file_days(tenant, resource, [day])[day]
    if client is None:
        raise ValueError(f"tenant {tenant.tenant_id}: a Shopify tenant needs a client")
    validated, stats = client.fetch_day(resource, day, tenant.zone)
    quarantine = validated.quarantine.assign(day=day)[QUARANTINE_SCHEMA.names]
    return IngestedDay(frame=validated.frame, quarantine=quarantine, stats=stats)


@dataclass
class IngestedHistory:
    """Everything updated before a day: the swept days' rows at once, their invalid records, and records of no day."""

    frame: pd.DataFrame  # every version, each on the day of its `updated_at` in the tenant's timezone
    quarantine: pd.DataFrame  # records of the swept days that failed validation
    out_of_window: pd.DataFrame  # undated, future or before the history start (files); undatable invalid records
    stats: FetchStats = field(default_factory=FetchStats)


def split_by_day(frame: pd.DataFrame, timezone: str) -> dict[date, pd.DataFrame]:
    local_day = frame["updated_at"].dt.tz_convert(timezone).dt.date
    return {day: part.reset_index(drop=True) for day, part in frame.groupby(local_day, sort=True)}


def _dated(quarantine: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Invalid API records placed on the day of their `updated_at` when it can be read (null when not)."""
    stamps = quarantine["record"].map(lambda record: (json.loads(record) or {}).get("updated_at"))
    updated = pd.to_datetime(stamps, errors="coerce", utc=True, format="ISO8601")
    days = updated.dt.tz_convert(timezone).dt.date.astype(object)
    return quarantine.assign(day=days.where(updated.notna(), None))


def ingest_history(
    tenant: Tenant,
    resource: str,
    before: date,
    today: date,
    client: ShopifyClient | None = None,
    since: date | None = None,
) -> IngestedHistory:
    """One sweep over the source for everything updated in [since, before) (`before`: the partition window's start;
    `today` in the tenant's timezone bounds what a file may hold)."""
    if tenant.source_kind == "file":
        normalized = load_normalized(tenant.source, tenant.timezone, tenant.currency, tenant.tenant_id)
        days = sorted(d for d in normalized["_day"].dropna().unique() if d < before and (since is None or d >= since))
        ingested = ingest_file_days(tenant, resource, days).values()
        outside = out_of_window(normalized, today, since, tenant.tenant_id)
        return IngestedHistory(
            pd.concat([day.frame for day in ingested], ignore_index=True) if days else to_frame(resource, []),
            pd.concat([day.quarantine for day in ingested], ignore_index=True) if days else quarantine_frame([]),
            outside if resource == "orders" else quarantine_frame([]),
        )
    if client is None:
        raise ValueError(f"tenant {tenant.tenant_id}: a Shopify tenant needs a client")
    validated, stats = client.fetch_days(resource, since, before, tenant.zone)
    invalid = _dated(validated.quarantine, tenant.timezone)
    undated = invalid["day"].isna()
    return IngestedHistory(
        validated.frame, invalid[~undated].reset_index(drop=True), invalid[undated].reset_index(drop=True), stats
    )


def store_quarantine(root: UPath, asset: str, tenant_id: str, day: date, quarantine: pd.DataFrame) -> dict[str, object]:
    """Replace the day's quarantine file (or remove a stale one) so re-runs never double count."""
    return _replace(lake.quarantine_path(root, asset, tenant_id, day), quarantine)


def store_history_quarantine(root: UPath, asset: str, tenant_id: str, quarantine: pd.DataFrame) -> dict[str, object]:
    """A history sweep's quarantine, its swept days' and the records of no day, in one file per tenant."""
    return _replace(lake.tenant_dir(root / lake.QUARANTINE, asset, tenant_id) / lake.SWEEP / lake.PART_FILE, quarantine)


def _replace(path: UPath, quarantine: pd.DataFrame) -> dict[str, object]:
    if not len(quarantine):
        lake.remove(path)
        return {"quarantined": 0}
    lake.write_frame(path, quarantine, QUARANTINE_SCHEMA)
    return {"quarantined": len(quarantine), "quarantine_path": str(path)}


def gate_context(root: UPath, tenant: Tenant, resource: str, day: date, frame: pd.DataFrame) -> PartitionContext:
    """The trailing 14 days' volumes, and the outlier limit from the tenant's own order values: the trailing days
    and the day itself, with the whole stored history when that is too thin a reference."""
    first = day - timedelta(days=TRAILING_DAYS)
    files = history_files(root, tenant.tenant_id, through=day - timedelta(days=1), resource=resource)
    stored = [f.day for f in files.entries if f.day is not None and f.day >= first]
    columns = ["total_price"] if resource == "orders" else []
    stored_rows = read_records(files, columns) if files.entries else pd.DataFrame(columns=[*columns, LAKE_DAY])
    trailing = stored_rows[stored_rows[LAKE_DAY].isin(stored)]
    per_day = trailing[LAKE_DAY].value_counts()
    outliers = None
    if resource == "orders":
        reference = trailing if len(trailing) + len(frame) >= REFERENCE_ORDERS else stored_rows
        values = np.concatenate([reference["total_price"].to_numpy(float), frame["total_price"].to_numpy(float)])
        outliers = outlier_limit(values, tenant.source.outlier_factor)
    return PartitionContext(
        resource=resource,
        tenant_id=tenant.tenant_id,
        day=day,
        timezone=tenant.timezone,
        currency=tenant.currency,
        trailing_row_counts=tuple(int(per_day.get(stored_day, 0)) for stored_day in reversed(stored)),
        outliers=outliers,
    )


@dataclass
class ScreenedHistory:
    """A sweep after screening: its swept days' rows at once, and the records of no day."""

    swept: Screened
    out_of_window: pd.DataFrame
    context: PartitionContext  # the sweep as one partition

    def whole(self) -> Screened:
        """Everything the sweep read: what the gates judge and the files hold."""
        quarantine = pd.concat([self.swept.quarantine, self.out_of_window], ignore_index=True)
        return Screened(self.swept.frame, quarantine, self.swept.superseded, self.swept.schema_problems)

    def days(self) -> dict[date, tuple[int, dict[str, int]]]:
        """Each swept day's rows written and quarantined by reason (kept rows are on their `updated_at`'s day)."""
        written = self.swept.frame["updated_at"].dt.tz_convert(self.context.timezone).dt.date.value_counts()
        quarantined = self.swept.quarantine.groupby(["day", "reason"]).size()
        found = {day: (int(count), {}) for day, count in written.items()}
        for (day, reason), count in quarantined.items():
            found.setdefault(day, (0, {}))[1][reason] = int(count)
        return dict(sorted(found.items()))


def screen_history(
    history: IngestedHistory, tenant: Tenant, resource: str, before: date, released: frozenset[str] = frozenset()
) -> ScreenedHistory:
    """The swept days screened at once, versions counting per day as in the day partitions, against one outlier
    limit from the whole sweep's order values: a history has no trailing window, and a day of one order is no
    reference for itself."""
    frame = history.frame
    outliers = outlier_limit(frame["total_price"], tenant.source.outlier_factor) if resource == "orders" else None
    context = PartitionContext(
        resource, tenant.tenant_id, before, tenant.timezone, tenant.currency, outliers=outliers,
        span=f"history before {before}",
    )  # fmt: skip
    days = frame["updated_at"].dt.tz_convert(tenant.timezone).dt.date if len(frame) else None
    swept = screen(frame, context, released, history.quarantine, days)
    return ScreenedHistory(swept, history.out_of_window, context)
