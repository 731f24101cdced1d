"""File tenants: a transaction export (CSV or Parquet, local or on the lake) split into days.

Columns are mapped by name (`customer_id`, `timestamp`, `amount`, optional `order_id`,
`quantity`, `currency`). Rows that cannot be read are quarantined with the field and the fix;
rows whose timestamp cannot be read belong to no day and are kept in one `undated` quarantine
file per tenant, refreshed on every ingestion so nothing is lost or counted twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from upath import UPath

from mlops_assets.core.sources.records import quarantine_frame, to_frame
from mlops_assets.core.tenants.sources import FileSource

REQUIRED = ("customer_id", "timestamp", "amount")


class FileSourceError(ValueError):
    pass


@dataclass
class DaySlice:
    frame: pd.DataFrame
    quarantine: pd.DataFrame
    undated: pd.DataFrame
    source_rows: int


def _read_export(url: str, file_format: str, delimiter: str) -> pd.DataFrame:
    with UPath(url).open("rb") as handle:
        if file_format == "parquet":
            frame = pd.read_parquet(handle)
            return frame.astype({c: "string" for c in frame.columns})
        sep = r"\s+" if delimiter == "whitespace" else delimiter
        return pd.read_csv(handle, sep=sep, dtype=str, keep_default_na=False, engine="python" if len(sep) > 1 else "c")


@functools.lru_cache(maxsize=8)
def _normalized(source: FileSource, stamp, timezone, currency, tenant_id) -> pd.DataFrame:
    del stamp  # only part of the cache key: a changed file is read again
    raw = _read_export(source.path, source.format, source.delimiter)
    return normalize_export(raw, source, ZoneInfo(timezone), currency, tenant_id)


def load_normalized(source: FileSource, timezone: str, currency: str, tenant_id: str) -> pd.DataFrame:
    """The whole export, normalized once per process and file version (a run covers many days)."""
    path = UPath(source.path)
    if not path.exists():
        raise FileSourceError(
            f"tenant {tenant_id}: export file {source.path} does not exist (fix: re-register the tenant with "
            "`mlops tenants add ... --path` pointing at a readable file)"
        )
    info = path.stat()
    stamp = (getattr(info, "st_mtime", None), getattr(info, "st_size", None))
    return _normalized(source, stamp, timezone, currency, tenant_id)


def normalize_export(
    raw: pd.DataFrame, source: FileSource, zone: ZoneInfo, currency: str, tenant_id: str
) -> pd.DataFrame:
    """All rows as typed columns plus `_error` (None when the row is good) and `_day`."""
    mapping = source.column_names()
    missing = [f"{field} (column {mapping[field]!r})" for field in REQUIRED if mapping[field] not in raw.columns]
    if missing:
        raise FileSourceError(
            f"tenant {tenant_id}: export {source.path} lacks {', '.join(missing)}; it has {list(raw.columns)} "
            "(fix: map columns with --column FIELD=COLUMN)"
        )
    column = lambda field: raw[mapping[field]].astype("string").str.strip() if mapping[field] in raw.columns else None  # noqa: E731
    customer = column("customer_id").replace("", pd.NA)
    text_ts = column("timestamp")
    parsed = pd.to_datetime(text_ts, errors="coerce", format="mixed")
    if parsed.dt.tz is None:
        local = parsed.dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
    else:
        local = parsed.dt.tz_convert(zone)
    amount = pd.to_numeric(column("amount"), errors="coerce")
    quantity = (
        pd.to_numeric(column("quantity"), errors="coerce")
        if column("quantity") is not None
        else pd.Series(1, index=raw.index)
    )
    row_currency = (
        column("currency").str.upper() if column("currency") is not None else pd.Series(currency, index=raw.index)
    )

    errors = pd.Series(pd.NA, index=raw.index, dtype="string")
    checks = [
        (customer.isna(), f"customer_id: empty (fix: every row of the export needs column {mapping['customer_id']!r})"),
        (local.isna(), f"timestamp: unreadable {mapping['timestamp']!r} value (fix: ISO 8601 or YYYYMMDD)"),
        (amount.isna() | ~np.isfinite(amount.fillna(0)), f"amount: not a number in column {mapping['amount']!r}"),
        (quantity.isna(), "quantity: not a number"),
    ]
    for bad, message in reversed(checks):
        errors = errors.mask(bad, message)

    order_id = column("order_id")
    if order_id is None or order_id.eq("").all():
        stamp = local.dt.strftime("%Y%m%dT%H%M%S").fillna("undated")
        base = customer.fillna("") + "-" + stamp
        order_id = base + "-" + base.groupby(base).cumcount().astype(str)
    return pd.DataFrame(
        {
            "order_id": order_id,
            "order_name": pd.NA,
            "customer_id": customer,
            "created_at": local.dt.tz_convert("UTC"),
            "updated_at": local.dt.tz_convert("UTC"),
            "processed_at": local.dt.tz_convert("UTC"),
            "cancelled_at": pd.NaT,
            "currency": row_currency,
            "total_price": amount.round(2),
            "subtotal_price": np.nan,
            "total_tax": np.nan,
            "total_discounts": np.nan,
            "total_refunded": 0.0,
            "financial_status": "paid",
            "fulfillment_status": pd.NA,
            "is_test": False,
            "line_item_count": 1,
            "item_quantity": quantity.fillna(0).astype("int64"),
            "source_name": "file",
            "_error": errors,
            "_day": local.dt.date,
            "_record": raw.to_dict("records"),
        }
    )


def _quarantine(rows: pd.DataFrame) -> pd.DataFrame:
    return quarantine_frame(
        [
            {"record_id": str(r["order_id"]), "error": r["_error"], "record": pd.Series(r["_record"]).to_json()}
            for r in rows[["order_id", "_error", "_record"]].to_dict("records")
        ]
    )


def day_slices(normalized: pd.DataFrame, days: list[date]) -> dict[date, DaySlice]:
    """The days' rows in one pass over the export (a mask per day made a history sweep O(days x rows))."""
    undated = _quarantine(normalized[normalized["_day"].isna()])
    by_day = dict(tuple(normalized[normalized["_day"].isin(days)].groupby("_day", sort=False)))
    empty = normalized.iloc[0:0]
    slices = {}
    for day in days:
        todays = by_day.get(day, empty)
        good = todays[todays["_error"].isna()]
        slices[day] = DaySlice(
            frame=to_frame("orders", good.drop(columns=["_error", "_day", "_record"])),
            quarantine=_quarantine(todays[todays["_error"].notna()]),
            undated=undated,
            source_rows=len(normalized),
        )
    return slices
