"""File tenants: a transaction export (CSV or Parquet, local or on the lake) split into days.

Columns are mapped by name (`customer_id`, `timestamp`, `amount`, optional `order_id`,
`quantity`, `currency`). Rows that cannot be read are quarantined with the field and the fix.
A negative amount is a refund (exports write refunds as negative rows): it becomes a new version
of the order it refunds, dated when it was refunded, as a Shopify order is updated by its refund.
Rows outside every ingested day (unreadable, future or older than the history start timestamps)
are the history sweep's to count (`out_of_window`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from upath import UPath

from mlops_assets.core.sources.reasons import REASONS
from mlops_assets.core.sources.records import quarantine_frame, to_frame
from mlops_assets.core.sources.screening import CENT
from mlops_assets.core.tenants.sources import FileSource

REQUIRED = ("customer_id", "timestamp", "amount")


class FileSourceError(ValueError):
    pass


@dataclass
class DaySlice:
    frame: pd.DataFrame
    quarantine: pd.DataFrame


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

    subject = f"tenant {tenant_id}: "
    checks = [
        (customer.isna(), "invalid_record", subject + f"customer_id: empty in column {mapping['customer_id']!r}"),
        (
            local.isna(),
            "unreadable_timestamp",
            subject + f"timestamp: {mapping['timestamp']!r} value '" + text_ts.fillna("") + "' cannot be read",
        ),
        (
            amount.isna() | ~np.isfinite(amount.fillna(0)),
            "invalid_record",
            subject + f"amount: {mapping['amount']!r} value '" + column("amount").fillna("") + "' is not a number",
        ),
        (quantity.isna(), "invalid_record", subject + "quantity: not a number"),
    ]
    errors = pd.Series(pd.NA, index=raw.index, dtype="string")
    reasons = pd.Series(pd.NA, index=raw.index, dtype="string")
    for bad, reason, message in reversed(checks):  # the first problem of a row is the one it is quarantined for
        errors = errors.mask(bad, message + ": " + REASONS[reason])
        reasons = reasons.mask(bad, reason)

    order_id = column("order_id")
    if order_id is None or order_id.eq("").all():
        stamp = local.dt.strftime("%Y%m%dT%H%M%S").fillna("undated")
        base = customer.fillna("") + "-" + stamp
        order_id = base + "-" + base.groupby(base).cumcount().astype(str)
    rows = pd.DataFrame(
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
            "_reason": reasons,
            "_day": local.dt.date,
            "_record": raw.to_dict("records"),
        }
    )
    return resolve_refunds(rows, tenant_id)


def resolve_refunds(rows: pd.DataFrame, tenant_id: str) -> pd.DataFrame:
    """Each negative-amount row as a refund: the order with its id when the export repeats it, else the customer's
    latest earlier order in the same currency with that much unrefunded. A matched refund becomes that order's new
    version (updated at the refund, `total_refunded` accumulated); an unmatched one is quarantined."""
    good = rows["_error"].isna()
    refunds = rows.index[good & (rows["total_price"] < 0)]
    if not len(refunds):
        return rows
    rows = rows.copy()
    orders = rows[good & (rows["total_price"] >= 0)].sort_values("created_at", kind="stable")
    unrefunded = orders["total_price"].to_dict()
    by_id = dict(zip(orders["order_id"][::-1], orders.index[::-1], strict=True))  # the first order of an id
    customers = orders[orders["customer_id"].isin(rows.loc[refunds, "customer_id"])].groupby("customer_id")
    for index in sorted(refunds, key=lambda i: (rows.at[i, "created_at"], i)):
        refund = rows.loc[index]
        amount = -float(refund["total_price"])
        target = by_id.get(refund["order_id"])
        if target is None and refund["customer_id"] in customers.groups:
            earlier = customers.get_group(refund["customer_id"])
            earlier = earlier[
                (earlier["created_at"] < refund["updated_at"])
                & (earlier["currency"] == refund["currency"])
                & (earlier.index.map(unrefunded) >= amount - CENT)
            ]
            target = earlier.index[-1] if len(earlier) else None
        if target is None:
            rows.at[index, "_error"] = (
                f"tenant {tenant_id}: amount {-amount:.2f} of customer {refund['customer_id']} on "
                f"{refund['updated_at'].isoformat()} matches no earlier order in {refund['currency']} with that much "
                f"unrefunded: {REASONS['unmatched_refund']}"
            )
            rows.at[index, "_reason"] = "unmatched_refund"
            continue
        unrefunded[target] -= amount
        original = orders.loc[target]
        for column in ("order_id", "customer_id", "created_at", "processed_at", "currency", "total_price"):
            rows.at[index, column] = original[column]
        rows.at[index, "item_quantity"] = original["item_quantity"]
        rows.at[index, "total_refunded"] = round(float(original["total_price"]) - unrefunded[target], 2)
        rows.at[index, "financial_status"] = "refunded" if unrefunded[target] <= CENT else "partially_refunded"
    return rows


def _quarantine(rows: pd.DataFrame, reasons: pd.Series | None = None) -> pd.DataFrame:
    """Export rows as quarantine records (`reasons`, when given, replaces the rows' own)."""
    reasons = rows["_reason"] if reasons is None else reasons
    return quarantine_frame(
        [
            {
                "record_id": str(order_id),
                "day": None if pd.isna(day) else day,
                "reason": reason,
                "error": error,
                "record": pd.Series(record).to_json(),
            }
            for order_id, day, reason, error, record in zip(
                rows["order_id"], rows["_day"], reasons, rows["_error"], rows["_record"], strict=True
            )
        ]
    )


def day_slices(normalized: pd.DataFrame, days: list[date]) -> dict[date, DaySlice]:
    """The days' rows in one pass over the export (a mask per day made a history sweep O(days x rows))."""
    by_day = dict(tuple(normalized[normalized["_day"].isin(days)].groupby("_day", sort=False)))
    empty = normalized.iloc[0:0]
    slices = {}
    for day in days:
        todays = by_day.get(day, empty)
        good = todays[todays["_error"].isna()]
        slices[day] = DaySlice(
            frame=to_frame("orders", good.drop(columns=["_error", "_reason", "_day", "_record"])),
            quarantine=_quarantine(todays[todays["_error"].notna()]),
        )
    return slices


def out_of_window(normalized: pd.DataFrame, today: date, since: date | None, tenant_id: str) -> pd.DataFrame:
    """Rows no ingested day holds: undated, dated after `today` or before `since`, as quarantine records.

    A row with a problem of its own keeps that reason; otherwise its date is the reason."""
    day = normalized["_day"]
    future = day.notna() & (day > today)
    early = day.notna() & (day < since) if since is not None else pd.Series(False, index=normalized.index)
    rows = normalized[day.isna() | future | early].copy()
    window = pd.Series("future_timestamp", index=rows.index).where(future[rows.index], "before_history_start")
    limit = pd.Series(f"after today ({today})", index=rows.index).where(future[rows.index], f"before {since}")
    own = rows["_reason"].notna()
    rows["_error"] = rows["_error"].where(
        own, f"tenant {tenant_id}: timestamp: " + rows["_day"].astype(str) + " is " + limit + ": " + window.map(REASONS)
    )
    return _quarantine(rows, rows["_reason"].where(own, window))
