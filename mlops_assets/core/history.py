"""A tenant's whole order history as one pyarrow dataset over the lake's day files.

History lives in two assets with one layout: `raw_orders_history` (everything before the partition
window, filled once) and `raw_orders` (the window, daily). An order appears once per day it was
updated on; the versions are all kept, and `features.orders_as_of` picks the one known at a cutoff.
The data version of a read is the sha256 of the sorted (path, file sha256) list.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow.dataset as ds
from upath import UPath

from mlops_assets.core import lake
from mlops_assets.core.shop_records import from_arrow

ORDER_SOURCES = ("raw_orders_history", "raw_orders")
ORDER_COLUMNS = [
    "order_id", "customer_id", "created_at", "updated_at", "cancelled_at", "total_price", "total_refunded",
    "is_test", "item_quantity",
]  # fmt: skip


@dataclass(frozen=True)
class HistoryFiles:
    tenant_id: str
    files: tuple[UPath, ...]
    through: date | None

    def digest(self) -> str:
        """Content digest of exactly these files (threads: S3 reads are latency-bound)."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            digests = list(pool.map(lake.file_digest, self.files))
        listing = "\n".join(
            f"{f.parent.parent.parent.name}/{f.parent.name} {d}" for f, d in zip(self.files, digests, strict=True)
        )
        return lake.content_digest(listing.encode())


def history_files(root: UPath, tenant_id: str, through: date | None = None) -> HistoryFiles:
    """The tenant's day files of both order assets, up to `through` (inclusive) if given."""
    found = []
    for asset in ORDER_SOURCES:
        base = lake.tenant_dir(root, asset, tenant_id)
        if not base.exists():
            continue
        for day_dir in base.iterdir():
            name = day_dir.name
            if not name.startswith("date="):
                continue
            day = date.fromisoformat(name.removeprefix("date="))
            if through is None or day <= through:
                found.append((day, asset, day_dir / lake.PART_FILE))
    found.sort(key=lambda item: (item[0], item[1]))
    return HistoryFiles(tenant_id, tuple(path for _, _, path in found), found[-1][0] if found else None)


def read_orders(files: HistoryFiles, columns: list[str] | None = None) -> pd.DataFrame:
    """Every stored version of every order in `files`, as one pyarrow dataset read."""
    columns = columns or ORDER_COLUMNS
    if not files.files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    filesystem = files.files[0].fs
    dataset = ds.dataset([f.path for f in files.files], filesystem=filesystem, format="parquet")
    return from_arrow(dataset.to_table(columns=columns))
