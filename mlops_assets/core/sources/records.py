"""The typed shape of raw orders and customers, and validation of source records into it.

Pydantic validates each source record (a Shopify JSON object or a file row) so that a malformed
record becomes a quarantine row naming its field, never a crash and never a silent drop. The
pyarrow schemas are the contract of the lake's `raw_orders` and `raw_customers` partitions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from mlops_assets.core.sources.reasons import REASONS

UTC_TS = pa.timestamp("us", tz="UTC")

ORDERS_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("order_name", pa.string()),
        ("customer_id", pa.string()),
        ("created_at", UTC_TS),
        ("updated_at", UTC_TS),
        ("processed_at", UTC_TS),
        ("cancelled_at", UTC_TS),
        ("currency", pa.string()),
        ("total_price", pa.float64()),
        ("subtotal_price", pa.float64()),
        ("total_tax", pa.float64()),
        ("total_discounts", pa.float64()),
        ("total_refunded", pa.float64()),
        ("financial_status", pa.string()),
        ("fulfillment_status", pa.string()),
        ("is_test", pa.bool_()),
        ("line_item_count", pa.int32()),
        ("item_quantity", pa.int32()),
        ("source_name", pa.string()),
    ]
)
ORDERS_REQUIRED = ("order_id", "created_at", "updated_at", "currency", "total_price", "is_test")

CUSTOMERS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("created_at", UTC_TS),
        ("updated_at", UTC_TS),
        ("state", pa.string()),
        ("tags", pa.string()),
    ]
)
CUSTOMERS_REQUIRED = ("customer_id", "created_at", "updated_at")

# One row per quarantined record: its id when it has one, the day it belongs to (null: none can be read),
# the reason code (`reasons.REASONS`), the error naming tenant, field, value and fix, and the raw record.
QUARANTINE_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("day", pa.date32()),
        ("reason", pa.string()),
        ("error", pa.string()),
        ("record", pa.string()),
    ]
)

_EMPTY_QUARANTINE = QUARANTINE_SCHEMA.empty_table().to_pandas()
SCHEMAS = {"orders": ORDERS_SCHEMA, "customers": CUSTOMERS_SCHEMA}
REQUIRED = {"orders": ORDERS_REQUIRED, "customers": CUSTOMERS_REQUIRED}


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _CustomerRef(_Record):
    id: int = Field(gt=0)


class _Transaction(_Record):
    kind: str
    status: str | None = None
    amount: Decimal = Field(allow_inf_nan=False)


class _Refund(_Record):
    transactions: list[_Transaction] = []


class _LineItem(_Record):
    quantity: int = Field(ge=0)


class ShopifyOrder(_Record):
    id: int = Field(gt=0)
    name: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    processed_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None
    currency: str = Field(min_length=3, max_length=3)
    total_price: Decimal = Field(allow_inf_nan=False)
    subtotal_price: Decimal | None = Field(default=None, allow_inf_nan=False)
    total_tax: Decimal | None = Field(default=None, allow_inf_nan=False)
    total_discounts: Decimal | None = Field(default=None, allow_inf_nan=False)
    financial_status: str | None = None
    fulfillment_status: str | None = None
    test: bool = False
    source_name: str | None = None
    customer: _CustomerRef | None = None
    line_items: list[_LineItem] = []
    refunds: list[_Refund] = []

    def row(self) -> dict[str, Any]:
        refunded = sum(
            (
                t.amount
                for r in self.refunds
                for t in r.transactions
                if t.kind == "refund" and t.status in (None, "success")
            ),
            Decimal(0),
        )
        return {
            "order_id": str(self.id),
            "order_name": self.name,
            "customer_id": str(self.customer.id) if self.customer else None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "processed_at": self.processed_at,
            "cancelled_at": self.cancelled_at,
            "currency": self.currency.upper(),
            "total_price": float(self.total_price),
            "subtotal_price": None if self.subtotal_price is None else float(self.subtotal_price),
            "total_tax": None if self.total_tax is None else float(self.total_tax),
            "total_discounts": None if self.total_discounts is None else float(self.total_discounts),
            "total_refunded": float(refunded),
            "financial_status": self.financial_status,
            "fulfillment_status": self.fulfillment_status,
            "is_test": self.test,
            "line_item_count": len(self.line_items),
            "item_quantity": sum(item.quantity for item in self.line_items),
            "source_name": self.source_name,
        }


class ShopifyCustomer(_Record):
    id: int = Field(gt=0)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    state: str | None = None
    tags: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "customer_id": str(self.id),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state": self.state,
            "tags": self.tags,
        }


MODELS: dict[str, type[ShopifyOrder] | type[ShopifyCustomer]] = {"orders": ShopifyOrder, "customers": ShopifyCustomer}


@dataclass
class Validated:
    """Rows that passed, as a typed frame (every version the source returned), and the quarantined rest."""

    frame: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def quarantined(self) -> int:
        return len(self.quarantine)


def describe_error(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False))


def validate_records(resource: str, records: Iterable[dict[str, Any]], tenant_id: str | None = None) -> Validated:
    model = MODELS[resource]
    subject = f"tenant {tenant_id}: " if tenant_id else ""
    rows, bad = [], []
    for record in records:
        try:
            rows.append(model.model_validate(record).row())
        except ValidationError as exc:
            record_id = record.get("id") if isinstance(record, dict) else None
            problem = f"{subject}{resource} record {record_id}: {describe_error(exc)}"
            bad.append(
                {
                    "record_id": None if record_id is None else str(record_id),
                    "reason": "invalid_record",
                    "error": f"{problem}: {REASONS['invalid_record']}",
                    "record": json.dumps(record, sort_keys=True, default=str),
                }
            )
    return Validated(frame=to_frame(resource, rows), quarantine=quarantine_frame(bad))


def schema_problems(frame: pd.DataFrame, resource: str) -> list[str]:
    """What keeps a frame from being the lake's partition: missing columns, wrong types, empty required fields."""
    schema = SCHEMAS[resource]
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        return [f"missing columns {missing}"]
    problems = []
    if not frame.dtypes[schema.names].equals(_lake_dtypes(resource)):  # the lake's own dtypes convert as they are
        try:
            pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            problems.append(f"types do not match the schema: {exc}")
    id_column = schema.names[0]
    for name in REQUIRED[resource]:
        empty = frame[name].isna()
        if empty.any():
            first = ", ".join(frame.loc[empty, id_column].astype(str).head(5))
            problems.append(f"{int(empty.sum())} empty values in required column {name} (first {id_column}s: {first})")
    return problems


@functools.cache
def _lake_dtypes(resource: str) -> pd.Series:
    return to_frame(resource, []).dtypes


def quarantine_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:  # the common case, and converting an empty table costs milliseconds
        return _EMPTY_QUARANTINE.copy()
    return pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA).to_pandas()


def to_frame(resource: str, rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Rows in the lake's schema and canonical order (by id), so equal data gives equal files."""
    schema = SCHEMAS[resource]
    if isinstance(rows, pd.DataFrame):
        table = pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False).replace_schema_metadata(
            None
        )
    else:
        table = pa.Table.from_pylist(rows, schema=schema)
    return from_arrow(table.sort_by(schema.names[0]))


def from_arrow(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas keeping nullable integers nullable and timestamps tz-aware UTC."""
    frame = table.to_pandas(
        types_mapper={
            pa.int64(): pd.Int64Dtype(),
            pa.int32(): pd.Int32Dtype(),
            pa.bool_(): pd.BooleanDtype(),
            pa.string(): pd.StringDtype(),
        }.get
    )
    return frame
