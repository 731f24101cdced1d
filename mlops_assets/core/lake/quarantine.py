"""A tenant's quarantined records as the operator reads them, from the lake's quarantine files.

Ingestion writes `quarantine/<asset>/tenant=<t>/date=<d>/part-0.parquet` per day and, for a history sweep,
`.../sweep/part-0.parquet` (its swept days' rows and the rows of no day). Each row holds the record's id, its day,
the error, the source record as JSON and its reason code. Files from before reason codes (and lakes with the older
`undated/` folder) read too: a row without a reason is `invalid_record`, the only reason there was then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import pyarrow.parquet as pq
from upath import UPath

from mlops_assets.core.lake import files as lake
from mlops_assets.core.tenants.registry import Tenant

DEFAULT_REASON = "invalid_record"
UNDATED = "undated"  # the folder before history sweeps kept their own (`lake.SWEEP`)


@dataclass(frozen=True)
class QuarantinedRecord:
    asset: str
    day: date | None  # None: a row of no day (an unreadable timestamp) or of a history sweep's quarantine
    record_id: str | None
    reason: str
    error: str
    record: str  # the source's record as JSON

    def amount(self, fields: tuple[str, ...]) -> float | None:
        """The record's amount under the first of `fields` (`amount_fields`) holding a number."""
        try:
            values = json.loads(self.record)
        except ValueError:
            return None
        for name in fields:
            try:
                return float(values.get(name))
            except (TypeError, ValueError, AttributeError):
                continue
        return None


def amount_fields(tenant: Tenant) -> tuple[str, ...]:
    """Where a record keeps its amount: a source record under the export's mapped column (files) or Shopify's
    `total_price`; a row screening quarantined after validation is a lake row, under `total_price`."""
    return (tenant.source.column_names()["amount"], "total_price") if tenant.source_kind == "file" else ("total_price",)


def _files(root: UPath, tenant_id: str, assets: tuple[str, ...] | None) -> list[tuple[str, date | None, UPath]]:
    base = root / lake.QUARANTINE
    if not base.exists():
        return []
    found = []
    for asset_dir in sorted(base.iterdir(), key=lambda path: path.name):
        folder = lake.tenant_dir(base, asset_dir.name, tenant_id)
        if (assets is not None and asset_dir.name not in assets) or not folder.exists():
            continue
        for day_dir in folder.iterdir():
            path = day_dir / lake.PART_FILE
            if not path.exists():  # a re-run that quarantined nothing removed the file, not its folder
                continue
            if day_dir.name.startswith("date="):
                found.append((asset_dir.name, date.fromisoformat(day_dir.name.removeprefix("date=")), path))
            elif day_dir.name in (UNDATED, lake.SWEEP):
                found.append((asset_dir.name, None, path))
    return found


def _records(asset: str, day: date | None, path: UPath) -> list[QuarantinedRecord]:
    with path.open("rb") as handle:
        rows = pq.read_table(handle).to_pylist()
    return [
        QuarantinedRecord(
            asset,
            day or row.get("day"),
            row["record_id"],
            row.get("reason") or DEFAULT_REASON,
            row["error"] or "",
            row["record"] or "",
        )
        for row in rows
    ]


def read_quarantine(
    root: UPath, tenant_id: str, first: date | None = None, assets: tuple[str, ...] | None = None
) -> list[QuarantinedRecord]:
    """The tenant's quarantined records, newest day first and rows of no day last; from `first` on: dated ones only."""
    records = [
        record
        for asset, day, path in _files(root, tenant_id, assets)
        if first is None or (day is not None and day >= first)
        for record in _records(asset, day, path)
    ]
    return sorted(records, key=lambda r: (r.day is None, -(r.day or date.min).toordinal(), r.asset, r.record_id or ""))


def find_quarantined(root: UPath, tenant_id: str, record_id: str, assets: tuple[str, ...]) -> QuarantinedRecord | None:
    """The record with this id in the tenant's quarantine of these assets (the newest, if it is there twice)."""
    return next((r for r in read_quarantine(root, tenant_id, assets=assets) if r.record_id == record_id), None)
