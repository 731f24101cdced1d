"""A tenant's whole history of one record kind as one table, read through a compacted copy.

History lives in two assets: `raw_orders_history` (everything before the partition window, one file
per tenant at `through=<its last day>/`, swept once at onboarding) and `raw_orders` (a file per day
of the window; the days stay after the window moves on); the same for customers. Every stored version is kept, and
`features.orders_as_of` picks the one known at a cutoff. The data version of a read is the sha256 of
the sorted (file, file sha256) list.

Day files pile up (365 a year per tenant) and on S3 every file costs requests: reading 400 small
files took 8 s on the loopback endpoint. So reads go through `_compacted/<asset>/tenant=<t>/`, the
rows of every file through a day plus a manifest of the files' fingerprints (S3 ETag, or size and
mtime). A read lists the tenant's files, uses the compacted copy if the files it covers are exactly
the manifest, adds only the newer day files, and past `COMPACT_AFTER` of those writes a new copy. A
re-ingested or backfilled old day changes the listing, so the copy is rebuilt: it is derived data,
never the truth, and rows come back in the order a direct read of the files gives.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from mlops_assets.core.lake import files as lake
from mlops_assets.core.sources.records import SCHEMAS, from_arrow

SOURCES = {
    "orders": ("raw_orders_history", "raw_orders"),
    "customers": ("raw_customers_history", "raw_customers"),
}
ORDER_COLUMNS = [
    "order_id", "customer_id", "created_at", "updated_at", "cancelled_at", "total_price", "total_refunded",
    "is_test", "item_quantity",
]  # fmt: skip
LAKE_DAY = "lake_day"  # the day file a row came from; null for the history file
COMPACT_AFTER = 2  # each day file past the copy is a request per read; a rewrite of the copy is one PUT
_MANIFEST = b"mlops_manifest"


@dataclass(frozen=True)
class LakeFile:
    asset: str
    day: date | None  # None: the tenant's history file
    path: UPath
    fingerprint: str
    covers: date  # the last day of data in the file

    @property
    def label(self) -> str:
        return f"{self.asset}/{f'date={self.day}' if self.day else f'through={self.covers}'}"


@dataclass(frozen=True)
class HistoryFiles:
    """The files of one record kind a read covers (`files`), and every file the tenant has (`listing`)."""

    root: UPath
    tenant_id: str
    resource: str
    listing: tuple[LakeFile, ...]
    upto: date | None  # what the read asked for
    through: date | None  # the last day file it covers

    @property
    def entries(self) -> tuple[LakeFile, ...]:
        return tuple(f for f in self.listing if f.day is None or self.upto is None or f.day <= self.upto)

    @property
    def files(self) -> tuple[UPath, ...]:
        return tuple(f.path for f in self.entries)

    def digest(self) -> str:
        """Content digest of exactly these files (threads: S3 reads are latency-bound)."""
        entries = self.entries
        with ThreadPoolExecutor(max_workers=8) as pool:
            digests = list(pool.map(lambda f: lake.file_digest(f.path), entries))
        listing = "\n".join(f"{f.label} {d}" for f, d in zip(entries, digests, strict=True))
        return lake.content_digest(listing.encode())


def _fingerprint(info: dict) -> str:
    return str(info.get("ETag") or info.get("etag") or f"{info.get('size')}-{info.get('mtime')}")


def _listed(base: UPath) -> dict[str, dict]:
    """Every file below `base` with its details, in one (paginated) LIST on S3."""
    found = base.fs.find(base.path, detail=True)
    return {path: info for path, info in found.items() if info.get("type", "file") == "file"}


def _part_files(root: UPath, asset: str, tenant_id: str, folder_prefix: str) -> list[tuple[date, str]]:
    """(day in the folder name, fingerprint) of each `<prefix><day>/part-0.parquet` of a tenant's asset."""
    found = []
    for path, info in _listed(lake.tenant_dir(root, asset, tenant_id)).items():
        folder, name = path.rsplit("/", 2)[-2:]
        if name == lake.PART_FILE and folder.startswith(folder_prefix):
            found.append((date.fromisoformat(folder.removeprefix(folder_prefix)), _fingerprint(info)))
    return found


def history_files(root: UPath, tenant_id: str, through: date | None = None, resource: str = "orders") -> HistoryFiles:
    """The tenant's history file and day files of `resource`, the day files up to `through` (inclusive) if given.

    The history file holds days before the partition window and every partition day comes after them,
    so a read through any partition day covers all of it.
    """
    history_asset, day_asset = SOURCES[resource]
    sweeps = [
        LakeFile(history_asset, None, lake.history_path(root, history_asset, tenant_id, swept), fingerprint, swept)
        for swept, fingerprint in _part_files(root, history_asset, tenant_id, "through=")
    ]
    days = [
        LakeFile(day_asset, day, lake.partition_path(root, day_asset, tenant_id, day), fingerprint, day)
        for day, fingerprint in _part_files(root, day_asset, tenant_id, "date=")
    ]
    listing = ([max(sweeps, key=lambda f: f.covers)] if sweeps else []) + sorted(days, key=lambda f: f.day)
    covered = [f.covers for f in listing if f.day is None or through is None or f.day <= through]
    return HistoryFiles(root, tenant_id, resource, tuple(listing), through, max(covered) if covered else None)


def _read_file(entry: LakeFile, schema: pa.Schema) -> pa.Table:
    # One GET: opening the file would first ask S3 for its details (a HEAD per file, no listings cache).
    table = lake.read_table(entry.path, pa.BufferReader(entry.path.read_bytes()), schema=schema)
    return table.append_column(LAKE_DAY, pa.array([entry.day] * len(table), pa.date32()))


def _read_files(entries: list[LakeFile], schema: pa.Schema) -> list[pa.Table]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda entry: _read_file(entry, schema), entries))


def _compacted_path(files: HistoryFiles) -> UPath:
    return lake.tenant_dir(files.root / lake.COMPACTED, SOURCES[files.resource][1], files.tenant_id) / lake.PART_FILE


def _manifest(entries) -> str:
    return json.dumps([[f.label, f.fingerprint] for f in entries])


def _load_compacted(files: HistoryFiles) -> tuple[pq.ParquetFile, int] | None:
    """The compacted copy and how many of the listing's files it covers, if it matches them exactly."""
    try:
        payload = _compacted_path(files).read_bytes()
    except FileNotFoundError:
        return None
    parquet = pq.ParquetFile(pa.BufferReader(payload))
    covered = json.loads((parquet.schema_arrow.metadata or {}).get(_MANIFEST, b"[]"))
    listing = [[f.label, f.fingerprint] for f in files.listing[: len(covered)]]
    return (parquet, len(covered)) if covered == listing else None


def _store_compacted(files: HistoryFiles, table: pa.Table, covered: int) -> None:
    manifest = _manifest(files.listing[:covered])
    lake.write_table(_compacted_path(files), table.replace_schema_metadata({_MANIFEST: manifest}))


def read_records(files: HistoryFiles, columns: list[str] | None = None) -> pd.DataFrame:
    """Every stored version of every record in `files` (`columns` plus `lake_day`), in file order."""
    schema = SCHEMAS[files.resource]
    if columns is None:
        columns = ORDER_COLUMNS if files.resource == "orders" else schema.names
    selected = [*columns, LAKE_DAY]
    wanted = len(files.entries)
    loaded = _load_compacted(files)
    compacted, covered = loaded if loaded else (None, 0)
    tail = _read_files(list(files.listing[covered:wanted]), schema)
    if len(tail) > COMPACT_AFTER:
        merged = pa.concat_tables(([compacted.read().replace_schema_metadata(None)] if compacted else []) + tail)
        _store_compacted(files, merged, wanted)
        tables = [merged.select(selected)]
    else:
        tables = ([compacted.read(columns=selected).replace_schema_metadata(None)] if compacted else []) + [
            table.select(selected) for table in tail
        ]
    if not tables:
        return from_arrow(schema.append(pa.field(LAKE_DAY, pa.date32())).empty_table().select(selected))
    table = pa.concat_tables(tables)
    if covered > wanted:
        table = table.filter(pc.or_kleene(pc.is_null(table[LAKE_DAY]), pc.less_equal(table[LAKE_DAY], files.upto)))
    return from_arrow(table)


def read_orders(files: HistoryFiles) -> pd.DataFrame:
    return read_records(files, ORDER_COLUMNS)
