"""The lake: Hive-partitioned Parquet on a local directory or any S3 endpoint, via universal_pathlib.

Layout: `<lake>/<asset>/tenant=<t>/date=<YYYY-MM-DD>/part-0.parquet`, and the same below
`<lake>/quarantine/<asset>/` for records that failed validation. A file appears whole or not at
all (rename on local disk, a single PUT on S3), and its sha256 is the partition's data version.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from mlops_assets.core.shop_records import from_arrow
from mlops_assets.core.tenant_ids import validate_tenant_id

PART_FILE = "part-0.parquet"
QUARANTINE = "quarantine"


def lake_root(url: str, s3_endpoint_url: str | None = None) -> UPath:
    if "://" in url and not url.startswith("file://"):
        options = {"endpoint_url": s3_endpoint_url} if s3_endpoint_url else {}
        return UPath(url, **options)
    return UPath(Path(url.removeprefix("file://")).expanduser().resolve())


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def tenant_dir(root: UPath, asset: str, tenant_id: str) -> UPath:
    return root / asset / f"tenant={validate_tenant_id(tenant_id)}"


def partition_path(root: UPath, asset: str, tenant_id: str, day: date | str) -> UPath:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return tenant_dir(root, asset, tenant_id) / f"date={day.isoformat()}" / PART_FILE


def quarantine_path(root: UPath, asset: str, tenant_id: str, day: date | str) -> UPath:
    return partition_path(root / QUARANTINE, asset, tenant_id, day)


def encode_parquet(frame: pd.DataFrame, schema: pa.Schema) -> bytes:
    """Deterministic bytes for the same rows: no pandas index or version in the file's metadata."""
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(None), buffer, compression="zstd")
    return buffer.getvalue()


def content_digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def write_atomic(path: UPath, payload: bytes) -> None:
    if is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_bytes(payload)
        os.replace(temporary.path, path.path)
    else:
        path.write_bytes(payload)


def write_frame(path: UPath, frame: pd.DataFrame, schema: pa.Schema) -> dict[str, object]:
    """Write one partition file; returns what its metadata should record."""
    payload = encode_parquet(frame, schema)
    write_atomic(path, payload)
    return {"rows": len(frame), "bytes": len(payload), "digest": content_digest(payload), "path": str(path)}


def read_frame(path: UPath, columns: list[str] | None = None) -> pd.DataFrame:
    with path.open("rb") as handle:
        return from_arrow(pq.read_table(handle, columns=columns))


def file_digest(path: UPath) -> str:
    return content_digest(path.read_bytes())


def remove(path: UPath) -> bool:
    if path.exists():
        path.unlink()
        return True
    return False


def remove_days_except(root: UPath, asset: str, tenant_id: str, keep: set[date]) -> int:
    """Delete a tenant's day files of `asset` outside `keep` (a rebuilt history replaces the old one)."""
    base = tenant_dir(root, asset, tenant_id)
    if not base.exists():
        return 0
    removed = 0
    for day_dir in base.iterdir():
        name = day_dir.name
        if name.startswith("date=") and date.fromisoformat(name.removeprefix("date=")) not in keep:
            day_dir.fs.rm(day_dir.path, recursive=True)
            removed += 1
    return removed


def row_counts(root: UPath, asset: str, tenant_id: str, days: list[date]) -> dict[date, int]:
    """Row counts of the partitions that exist, from Parquet footers only."""
    counts = {}
    for day in days:
        path = partition_path(root, asset, tenant_id, day)
        if path.exists():
            with path.open("rb") as handle:
                counts[day] = pq.ParquetFile(handle).metadata.num_rows
    return counts


def read_days(root: UPath, asset: str, tenant_id: str, days: list[date], columns: list[str]) -> pd.DataFrame:
    frames = [
        read_frame(path, columns)
        for path in (partition_path(root, asset, tenant_id, day) for day in days)
        if path.exists()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def purge_tenant(root: UPath, tenant_id: str) -> list[str]:
    """Delete every partition and quarantined record of one tenant; returns what was removed."""
    validate_tenant_id(tenant_id)
    removed = []
    for base in (root, root / QUARANTINE):
        if not base.exists():
            continue
        for asset_dir in base.iterdir():
            target = asset_dir / f"tenant={tenant_id}"
            if asset_dir.is_dir() and target.exists():
                target.fs.rm(target.path, recursive=True)
                removed.append(str(target))
    return removed
