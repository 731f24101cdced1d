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

from mlops_assets.core.sources.records import from_arrow
from mlops_assets.core.tenants.ids import validate_tenant_id

PART_FILE = "part-0.parquet"
QUARANTINE = "quarantine"
SWEEP = "sweep"  # a history sweep's one quarantine file per tenant: quarantine/<asset>/tenant=<t>/sweep/
COMPACTED = "_compacted"  # derived copies for fast reads (core.lake.history); removed with the tenant


class UnreadableFile(ValueError):
    """A lake file that is there but is not readable Parquet (truncated, overwritten, corrupted at rest)."""

    def __init__(self, path: UPath, error: Exception):
        super().__init__(
            f"{path} is not a readable Parquet file ({error}) (fix: write it again by re-running its asset for "
            "that tenant-day, or restore it from a backup)"
        )


def read_table(path: UPath, source, **options) -> pa.Table:
    """`pq.read_table` of `source` (the file's bytes or an open handle); a corrupt file raises `UnreadableFile`."""
    try:
        return pq.read_table(source, **options)
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(path, exc) from exc


def lake_root(url: str, s3_endpoint_url: str | None = None) -> UPath:
    if "://" in url and not url.startswith("file://"):
        # No listings cache: fsspec shares one filesystem per process, and processes that run many steps (Celery
        # workers, `mlops backfill`) would read a file's details from a listing older than another's write.
        options = {"use_listings_cache": False}
        if s3_endpoint_url:
            options["endpoint_url"] = s3_endpoint_url
        return UPath(url, **options)
    return UPath(Path(url.removeprefix("file://")).expanduser().resolve())


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def tenant_dir(root: UPath, asset: str, tenant_id: str) -> UPath:
    return root / asset / f"tenant={validate_tenant_id(tenant_id)}"


def partition_path(root: UPath, asset: str, tenant_id: str, day: date | str) -> UPath:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return tenant_dir(root, asset, tenant_id) / f"date={day.isoformat()}" / PART_FILE


def history_path(root: UPath, asset: str, tenant_id: str, through: date) -> UPath:
    """A history sweep's one file; `through` is the last day it covers (the day before the partition window)."""
    return tenant_dir(root, asset, tenant_id) / f"through={through.isoformat()}" / PART_FILE


def quarantine_path(root: UPath, asset: str, tenant_id: str, day: date | str) -> UPath:
    return partition_path(root / QUARANTINE, asset, tenant_id, day)


def encode_parquet(frame: pd.DataFrame, schema: pa.Schema) -> bytes:
    """Deterministic bytes for the same rows: no pandas index or version in the file's metadata."""
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    return encode_table(table.replace_schema_metadata(None))


def encode_table(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
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


def write_table(path: UPath, table: pa.Table) -> None:
    write_atomic(path, encode_table(table))


def read_frame(path: UPath, columns: list[str] | None = None, with_digest: bool = False) -> pd.DataFrame:
    payload = path.read_bytes()
    frame = from_arrow(read_table(path, pa.BufferReader(payload), columns=columns))
    if with_digest:
        frame.attrs["digest"] = content_digest(payload)
    return frame


def file_digest(path: UPath) -> str:
    return content_digest(path.read_bytes())


def remove(path: UPath) -> bool:
    if path.exists():
        path.unlink()
        return True
    return False


def remove_siblings(path: UPath) -> list[str]:
    """Delete the folders beside `path`'s own (an older history sweep once a new one is stored whole)."""
    folder = path.parent
    stale = [entry for entry in folder.parent.iterdir() if entry.name != folder.name]
    for entry in stale:
        entry.fs.rm(entry.path, recursive=True)
    return [str(entry) for entry in stale]


def purge_tenant(root: UPath, tenant_id: str) -> list[str]:
    """Delete every partition and quarantined record of one tenant; returns what was removed."""
    validate_tenant_id(tenant_id)
    removed = []
    for base in (root, root / QUARANTINE, root / COMPACTED):
        if not base.exists():
            continue
        for asset_dir in base.iterdir():
            target = asset_dir / f"tenant={tenant_id}"
            if asset_dir.is_dir() and target.exists():
                target.fs.rm(target.path, recursive=True)
                removed.append(str(target))
    return removed
