"""One tenant-day of raw data from the tenant's source, with its quarantine and gate context.

The Dagster assets call `ingest_day` per partition; tests and benchmarks call it directly. A
re-run of a day returns exactly what a clean run returns: rows are canonical (latest version per
id, sorted by id) and the quarantine is rebuilt, not appended to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from upath import UPath

from mlops_assets.core.lake import files as lake
from mlops_assets.core.lake.history import LAKE_DAY, history_files, read_records
from mlops_assets.core.sources.files import day_slices, load_normalized
from mlops_assets.core.sources.quality import PartitionContext
from mlops_assets.core.sources.records import QUARANTINE_SCHEMA, quarantine_frame, to_frame
from mlops_assets.core.sources.shopify import FetchStats, ShopifyClient
from mlops_assets.core.tenants.registry import Tenant

RAW_ASSETS = {"orders": "raw_orders", "customers": "raw_customers"}
HISTORY_ASSETS = {"orders": "raw_orders_history", "customers": "raw_customers_history"}
TRAILING_DAYS = 14


@dataclass
class IngestedDay:
    frame: pd.DataFrame
    quarantine: pd.DataFrame
    stats: FetchStats = field(default_factory=FetchStats)
    undated: pd.DataFrame | None = None


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
        return {
            day: IngestedDay(frame=sliced.frame, quarantine=sliced.quarantine, undated=sliced.undated)
            for day, sliced in slices.items()
        }
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
    return IngestedDay(frame=validated.frame, quarantine=validated.quarantine, stats=stats)


@dataclass
class IngestedHistory:
    """Everything updated before a day, split into the days of the tenant's calendar."""

    days: dict[date, pd.DataFrame]
    quarantine: pd.DataFrame
    stats: FetchStats = field(default_factory=FetchStats)


def split_by_day(frame: pd.DataFrame, timezone: str) -> dict[date, pd.DataFrame]:
    local_day = frame["updated_at"].dt.tz_convert(timezone).dt.date
    return {day: part.reset_index(drop=True) for day, part in frame.groupby(local_day, sort=True)}


def ingest_history(
    tenant: Tenant, resource: str, before: date, client: ShopifyClient | None = None, since: date | None = None
) -> IngestedHistory:
    """One sweep over the source for everything updated in [since, before) (`before`: the partition window's start)."""
    if tenant.source_kind == "file":
        normalized = load_normalized(tenant.source, tenant.timezone, tenant.currency, tenant.tenant_id)
        days = sorted(d for d in normalized["_day"].dropna().unique() if d < before and (since is None or d >= since))
        ingested = ingest_file_days(tenant, resource, days)
        quarantine = pd.concat(
            [day.quarantine for day in ingested.values()] + [day_slices(normalized, [before])[before].undated],
            ignore_index=True,
        )
        return IngestedHistory({day: result.frame for day, result in ingested.items()}, quarantine)
    if client is None:
        raise ValueError(f"tenant {tenant.tenant_id}: a Shopify tenant needs a client")
    validated, stats = client.fetch_days(resource, since, before, tenant.zone)
    return IngestedHistory(split_by_day(validated.frame, tenant.timezone), validated.quarantine, stats)


def store_quarantine(root: UPath, resource: str, tenant_id: str, day: date, ingested: IngestedDay) -> dict[str, object]:
    """Replace the day's quarantine file (or remove a stale one) so re-runs never double count."""
    asset = RAW_ASSETS[resource]
    path = lake.quarantine_path(root, asset, tenant_id, day)
    meta: dict[str, object] = {"quarantined": len(ingested.quarantine)}
    if len(ingested.quarantine):
        lake.write_frame(path, ingested.quarantine, QUARANTINE_SCHEMA)
        meta["quarantine_path"] = str(path)
    else:
        lake.remove(path)
    if ingested.undated is not None:
        undated_path = lake.tenant_dir(root / lake.QUARANTINE, asset, tenant_id) / "undated" / lake.PART_FILE
        if len(ingested.undated):
            lake.write_frame(undated_path, ingested.undated, QUARANTINE_SCHEMA)
            meta["undated_quarantined"] = len(ingested.undated)
        else:
            lake.remove(undated_path)
    return meta


def gate_context(
    root: UPath, tenant: Tenant, resource: str, day: date, frame: pd.DataFrame, quarantined: int
) -> PartitionContext:
    first = day - timedelta(days=TRAILING_DAYS)
    files = history_files(root, tenant.tenant_id, through=day - timedelta(days=1), resource=resource)
    stored = [f.day for f in files.entries if f.day is not None and f.day >= first]
    columns = ["total_price"] if resource == "orders" else []
    trailing = read_records(files, columns) if stored else pd.DataFrame(columns=[*columns, LAKE_DAY])
    trailing = trailing[trailing[LAKE_DAY].isin(stored)]
    per_day = trailing[LAKE_DAY].value_counts()
    counts = [int(per_day.get(stored_day, 0)) for stored_day in reversed(stored)]
    median_value = None
    if resource == "orders":
        values = np.concatenate([trailing["total_price"].to_numpy(float), frame["total_price"].to_numpy(float)])
        if len(values) >= 20:
            median_value = float(np.median(values))
    return PartitionContext(
        resource=resource,
        tenant_id=tenant.tenant_id,
        day=day,
        timezone=tenant.timezone,
        currency=tenant.currency,
        quarantined=quarantined,
        trailing_row_counts=tuple(counts),
        trailing_median_order_value=median_value,
        outlier_factor=tenant.source.outlier_factor,
    )
