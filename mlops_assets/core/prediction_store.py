"""The predictions tables in the warehouse: partition writes and the reads behind the API and dashboard.

A tenant-day is replaced in one transaction: delete its rows, then bulk-load the new ones (binary
`COPY` on PostgreSQL, one executemany on SQLite), with its summary row beside it. A re-run replaces,
never duplicates, and a writer killed mid-way leaves the previous rows in place. Every read takes
the tenant id first and filters by it: no query here can return another tenant's rows.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa

from mlops_assets.core.predictions import PREDICTION_COLUMNS
from mlops_assets.core.tenant_ids import validate_tenant_id
from mlops_assets.core.warehouse import engine_for, prediction_batches_table, predictions_table

P, B = predictions_table, prediction_batches_table
PG_COPY_TYPES = [
    "text", "text", "date", "float8", "text", "int4", "float8", "text", "text", "text", "text", "timestamptz", "text",
]  # fmt: skip
API_COLUMNS = [c for c in PREDICTION_COLUMNS if c not in ("run_id", "created_at", "feature_version")]


def _one_partition(frame: pd.DataFrame, tenant_id: str, as_of: date) -> None:
    if len(frame) and (set(frame["tenant_id"]) != {tenant_id} or set(frame["as_of_date"]) != {as_of}):
        raise ValueError(
            f"tenant {tenant_id}, {as_of}: a predictions partition must hold only its own tenant and date "
            f"(found tenants {sorted(set(frame['tenant_id']))[:3]}, dates {sorted(set(frame['as_of_date']))[:3]})"
        )


def write_partition(
    warehouse_url: str, tenant_id: str, as_of: date, frame: pd.DataFrame, summary: dict, run_id: str
) -> int:
    """Replace the rows and the summary of one tenant-day atomically; returns the rows written."""
    validate_tenant_id(tenant_id)
    _one_partition(frame, tenant_id, as_of)
    engine = engine_for(warehouse_url)
    columns = [frame[name].tolist() for name in PREDICTION_COLUMNS]
    created_at = frame["created_at"].iloc[0] if len(frame) else pd.Timestamp.now(tz="UTC").to_pydatetime()
    with engine.begin() as conn:
        for table in (P, B):
            conn.execute(table.delete().where(table.c.tenant_id == tenant_id, table.c.as_of_date == as_of))
        if engine.dialect.name == "postgresql":
            driver = conn.connection.driver_connection
            with (
                driver.cursor() as cursor,
                cursor.copy(f"COPY {P.name} ({', '.join(PREDICTION_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(PG_COPY_TYPES)
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        elif len(frame):
            conn.execute(
                P.insert(), [dict(zip(PREDICTION_COLUMNS, row, strict=True)) for row in zip(*columns, strict=True)]
            )
        conn.execute(
            B.insert().values(
                tenant_id=tenant_id, as_of_date=as_of, run_id=run_id, created_at=created_at,
                feature_version=str(frame["feature_version"].iloc[0]) if len(frame) else "",
                **summary,
            )
        )  # fmt: skip
    return len(frame)


def read_partition(warehouse_url: str, tenant_id: str, as_of: date) -> pd.DataFrame:
    query = (
        sa.select(*(P.c[name] for name in PREDICTION_COLUMNS))
        .where(P.c.tenant_id == validate_tenant_id(tenant_id), P.c.as_of_date == as_of)
        .order_by(P.c.rank)
    )
    with engine_for(warehouse_url).connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=PREDICTION_COLUMNS)


class PredictionReader:
    """Tenant-scoped reads for the API and the dashboard (one pooled engine per process)."""

    def __init__(self, warehouse_url: str):
        self.engine = engine_for(warehouse_url)

    def _rows(self, query) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def batches(self, tenant_id: str, limit: int = 90) -> list[dict]:
        """Summaries of the latest `limit` days, oldest first (the trend)."""
        query = (
            sa.select(B)
            .where(B.c.tenant_id == validate_tenant_id(tenant_id))
            .order_by(B.c.as_of_date.desc())
            .limit(limit)
        )
        return list(reversed(self._rows(query)))

    def batch(self, tenant_id: str, as_of: date | None = None) -> dict | None:
        """The summary of `as_of`, or of the latest day when None."""
        query = sa.select(B).where(B.c.tenant_id == validate_tenant_id(tenant_id))
        query = query.where(B.c.as_of_date == as_of) if as_of else query.order_by(B.c.as_of_date.desc()).limit(1)
        rows = self._rows(query)
        return rows[0] if rows else None

    def customer(self, tenant_id: str, customer_id: str, as_of: date) -> dict | None:
        query = sa.select(*(P.c[name] for name in API_COLUMNS)).where(
            P.c.tenant_id == validate_tenant_id(tenant_id), P.c.customer_id == customer_id, P.c.as_of_date == as_of
        )
        rows = self._rows(query)
        return rows[0] if rows else None

    def customer_history(self, tenant_id: str, customer_id: str, limit: int = 180) -> list[dict]:
        query = (
            sa.select(P.c.as_of_date, P.c.repurchase_probability, P.c.risk_band, P.c.rank, P.c.model_version)
            .where(P.c.tenant_id == validate_tenant_id(tenant_id), P.c.customer_id == customer_id)
            .order_by(P.c.as_of_date.desc())
            .limit(limit)
        )
        return list(reversed(self._rows(query)))

    def page(
        self,
        tenant_id: str,
        as_of: date,
        risk_band: str | None = None,
        after_rank: int = 0,
        limit: int = 100,
        min_probability: float | None = None,
        max_probability: float | None = None,
    ) -> list[dict]:
        """A page of one day's predictions in rank order, after `after_rank` (keyset pagination)."""
        query = (
            sa.select(*(P.c[name] for name in API_COLUMNS))
            .where(*self._filters(tenant_id, as_of, risk_band, min_probability, max_probability))
            .where(P.c.rank > after_rank)
            .order_by(P.c.rank)
            .limit(limit)
        )
        return self._rows(query)

    def count(
        self,
        tenant_id: str,
        as_of: date,
        risk_band: str | None = None,
        min_probability: float | None = None,
        max_probability: float | None = None,
    ) -> int:
        query = sa.select(sa.func.count()).where(
            *self._filters(tenant_id, as_of, risk_band, min_probability, max_probability)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    @staticmethod
    def _filters(tenant_id, as_of, risk_band, min_probability, max_probability) -> list:
        filters = [P.c.tenant_id == validate_tenant_id(tenant_id), P.c.as_of_date == as_of]
        if risk_band:
            filters.append(P.c.risk_band == risk_band)
        if min_probability is not None:
            filters.append(P.c.repurchase_probability >= min_probability)
        if max_probability is not None:
            filters.append(P.c.repurchase_probability <= max_probability)
        return filters
