"""The predictions tables in the warehouse: partition writes and the reads behind the API and dashboard.

A tenant-day is replaced in one transaction: delete its rows, then bulk-load the new ones (binary
`COPY` on PostgreSQL, one executemany on SQLite), with its summary row beside it. A re-run replaces,
never duplicates, and a writer killed mid-way leaves the previous rows in place. Every read takes
the tenant id first and filters by it: no query here can return another tenant's rows.

Issue 16's targets (`TARGET_COLUMNS`) are nullable: a frame may lack them (NULL), rows of days
predicted before them hold NULL, and every read hands those NULLs on as None.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from mlops_assets.core.tenants.health import Freshness, freshness
from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.warehouse.engine import (
    MONITORED_TARGETS,
    PREDICTION_COLUMNS,
    TARGET_COLUMNS,
    Bindable,
    api_keys_table,
    customer_orders_table,
    engine_for,
    monitoring_days_table,
    prediction_batches_table,
    predictions_table,
    realized_column,
    tenants_table,
)

if TYPE_CHECKING:  # the API server reads through this module and never needs pandas
    import pandas as pd

P, B, K, M = predictions_table, prediction_batches_table, api_keys_table, monitoring_days_table
ORD = customer_orders_table
PG_COPY_TYPES = [
    "text", "text", "date", "float8", "text", "int4", "float8", "text", "text", "text", "text", "timestamptz", "text",
    "float8", "float8", "float8", "float8", "date", "text",
]  # fmt: skip
API_COLUMNS = [c for c in PREDICTION_COLUMNS if c not in ("run_id", "created_at", "feature_version")]
# The list filters: a band or tier, and `min_<stem>` / `max_<stem>` (inclusive) on these columns.
CATEGORY_FILTERS = ("risk_band", "spend_tier")
RANGE_FILTERS = {"probability": "repurchase_probability", "churn_probability": "churn_probability",
                 "clv_365d": "clv_365d"}  # fmt: skip
FILTERS = (*CATEGORY_FILTERS, *(f"{end}_{stem}" for stem in RANGE_FILTERS for end in ("min", "max")))


# Built once, so SQLAlchemy does not rebuild the statement and its cache key on every page view.
CUSTOMER_ON_DAY = sa.select(*(P.c[name] for name in API_COLUMNS)).where(
    P.c.tenant_id == sa.bindparam("tenant_id"),
    P.c.customer_id == sa.bindparam("customer_id"),
    P.c.as_of_date == sa.bindparam("as_of_date", type_=sa.Date),
)


def _keyed_customer_query() -> sa.Select:
    """The API's single lookup in one round trip: the key's active row, and the customer's prediction of
    `as_of` (or the tenant's latest day) joined on the key's own tenant, so no other tenant can match."""
    latest = sa.select(sa.func.max(B.c.as_of_date)).where(B.c.tenant_id == K.c.tenant_id).scalar_subquery()
    day = sa.func.coalesce(sa.bindparam("as_of_date", type_=sa.Date), latest)
    on = sa.and_(P.c.tenant_id == K.c.tenant_id, P.c.customer_id == sa.bindparam("customer_id"), P.c.as_of_date == day)
    return (
        sa.select(K.c.tenant_id.label("key_tenant_id"), K.c.key_id.label("key_id"), *(P.c[n] for n in API_COLUMNS))
        .select_from(K.outerjoin(P, on))
        .where(K.c.key_hash == sa.bindparam("key_hash"), K.c.revoked_at.is_(None))
    )


KEYED_CUSTOMER = _keyed_customer_query()


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
    columns = [_driver_values(frame, name) for name in PREDICTION_COLUMNS]
    created_at = frame["created_at"].iloc[0] if len(frame) else datetime.now(UTC)
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


def _driver_values(frame: pd.DataFrame, name: str) -> list:
    """A column as both drivers take it; a target's missing values (NaN, NaT, an absent column) as None."""
    if name not in TARGET_COLUMNS:
        return frame[name].tolist()
    if name not in frame:
        return [None] * len(frame)
    import pandas as pd

    column = frame[name]
    if name == "expected_next_order_date":
        column = pd.to_datetime(column).dt.date
    return column.astype(object).where(column.notna(), None).tolist()


def record_monitoring(warehouse_url: str, tenant_id: str, as_of: date, **values) -> None:
    """Merge one asset's figures (drift or realized performance) into the tenant-day's summary row."""
    validate_tenant_id(tenant_id)
    unknown = set(values) - set(M.c.keys())
    if unknown:
        raise ValueError(f"tenant {tenant_id}, {as_of}: unknown monitoring fields {sorted(unknown)}")
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
    key = (M.c.tenant_id == tenant_id, M.c.as_of_date == as_of)
    with engine_for(warehouse_url).begin() as conn:
        row = conn.execute(sa.select(M).where(*key).with_for_update()).mappings().first()
        merged = {**(dict(row) if row else {"tenant_id": tenant_id, "as_of_date": as_of}), **clean}
        conn.execute(M.delete().where(*key))
        conn.execute(M.insert().values(**{**merged, "updated_at": datetime.now(UTC)}))


# Per target, the monitoring column of the metric its backtest grades (the first of MONITORED_TARGETS').
RANKING_COLUMNS = {
    "repurchase_probability": "realized_auc",
    **{name: realized_column(name, metrics[0]) for name, metrics in MONITORED_TARGETS.items()},
}


def latest_realized(monitored: list[dict], through: date | None = None) -> dict[str, float]:
    """Per target, its latest realized AUC (probabilities) or normalized Gini (amounts) in monitoring summaries
    (oldest first) of days up to `through`: what the holdout figure of the model card is compared with."""
    found = {}
    for row in monitored:
        if through is None or row["as_of_date"] <= through:
            found.update({name: row[column] for name, column in RANKING_COLUMNS.items() if row[column] is not None})
    return found


def refresh_statistics(warehouse_url: str) -> None:
    """ANALYZE after a load: until it runs, a day newer than the statistics looks empty to the planner,
    which then answers a one-customer lookup by scanning the whole day (measured: 18 ms instead of 0.05
    ms for 20k customers). Once per run, not per partition: it samples, so it costs ~0.3 s at any size."""
    with engine_for(warehouse_url).begin() as conn:
        conn.execute(sa.text(f"analyze {P.name}"))


def latest_prediction_days(warehouse_url: str) -> dict[str, date]:
    """The newest predicted day of every tenant with predictions (fleet health; one grouped query)."""
    query = sa.select(B.c.tenant_id, sa.func.max(B.c.as_of_date)).group_by(B.c.tenant_id)
    with engine_for(warehouse_url).connect() as conn:
        return dict(conn.execute(query).all())


def read_partition(warehouse_url: str, tenant_id: str, as_of: date, columns: list[str] | None = None) -> pd.DataFrame:
    """A tenant-day's rows in rank order: every column, or only `columns` (a monitoring step's few)."""
    import pandas as pd

    columns = columns or PREDICTION_COLUMNS
    query = (
        sa.select(*(P.c[name] for name in columns))
        .where(P.c.tenant_id == validate_tenant_id(tenant_id), P.c.as_of_date == as_of)
        .order_by(P.c.rank)
    )
    with engine_for(warehouse_url).connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=columns)


def _in_zone(order: dict, zone: ZoneInfo) -> dict:
    """An order's times as UTC (SQLite hands them back without an offset) and its day in the tenant's timezone."""
    utc = {name: None if order[name] is None else order[name].replace(tzinfo=order[name].tzinfo or UTC)
           for name in ("ordered_at", "cancelled_at")}  # fmt: skip
    return {**order, **utc, "order_date": utc["ordered_at"].astimezone(zone).date()}


class PredictionReader(Bindable):
    """Tenant-scoped reads for the API and the dashboard (one pooled engine per process)."""

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

    def freshness(self, tenant_id: str, now: datetime) -> Freshness:
        """Whether the tenant's newest predictions are stale in its own timezone (UTC when it has no registry
        row), in one query."""
        validate_tenant_id(tenant_id)
        zone = sa.select(tenants_table.c.timezone).where(tenants_table.c.tenant_id == tenant_id).scalar_subquery()
        query = sa.select(sa.func.max(B.c.as_of_date).label("latest"), zone.label("timezone")).where(
            B.c.tenant_id == tenant_id
        )
        row = self._rows(query)[0]
        return freshness(row["latest"], ZoneInfo(row["timezone"] or "UTC"), now)

    def monitoring(self, tenant_id: str, limit: int = 90) -> list[dict]:
        """Drift and realized-performance summaries of the latest `limit` days, oldest first."""
        query = (
            sa.select(M)
            .where(M.c.tenant_id == validate_tenant_id(tenant_id))
            .order_by(M.c.as_of_date.desc())
            .limit(limit)
        )
        return list(reversed(self._rows(query)))

    def customer(self, tenant_id: str, customer_id: str, as_of: date) -> dict | None:
        params = {"tenant_id": validate_tenant_id(tenant_id), "customer_id": customer_id, "as_of_date": as_of}
        with self._connect() as conn:
            row = conn.execute(CUSTOMER_ON_DAY, params).mappings().first()
        return dict(row) if row else None

    def customer_for_key(
        self, key_hash: str, customer_id: str, as_of: date | None = None
    ) -> tuple[tuple[str, str] | None, dict | None]:
        """((tenant id, key id) of an active key, or None; the customer's row of that tenant, or None)."""
        params = {"key_hash": key_hash, "customer_id": customer_id, "as_of_date": as_of}
        with self._connect() as conn:
            found = conn.execute(KEYED_CUSTOMER, params).mappings().first()
        if found is None:
            return None, None
        row = {name: found[name] for name in API_COLUMNS}
        return (found["key_tenant_id"], found["key_id"]), (row if row["customer_id"] is not None else None)

    def customer_history(self, tenant_id: str, customer_id: str, limit: int = 180) -> list[dict]:
        query = (
            sa.select(P.c.as_of_date, P.c.repurchase_probability, P.c.risk_band, P.c.rank, P.c.model_version)
            .where(P.c.tenant_id == validate_tenant_id(tenant_id), P.c.customer_id == customer_id)
            .order_by(P.c.as_of_date.desc())
            .limit(limit)
        )
        return list(reversed(self._rows(query)))

    def orders(self, tenant_id: str, customer_id: str, limit: int = 50) -> dict:
        """A customer's order history: `count` and `net_total` (spend less refunds, cancelled orders left out) over
        every order, and the newest `limit` as `items`, each with its day in the tenant's timezone (two index reads
        however many orders the customer has)."""
        validate_tenant_id(tenant_id)
        mine = (ORD.c.tenant_id == tenant_id, ORD.c.customer_id == customer_id)
        zone = sa.select(tenants_table.c.timezone).where(tenants_table.c.tenant_id == tenant_id).scalar_subquery()
        net = sa.case((ORD.c.cancelled_at.is_(None), ORD.c.total - ORD.c.refunded), else_=0.0)
        summary = sa.select(
            sa.func.count().label("count"), sa.func.coalesce(sa.func.sum(net), 0.0).label("net_total"),
            zone.label("timezone"),
        ).where(*mine)  # fmt: skip
        newest = (
            sa.select(ORD.c.order_id, ORD.c.ordered_at, ORD.c.total, ORD.c.refunded, ORD.c.cancelled_at)
            .where(*mine)
            .order_by(ORD.c.ordered_at.desc(), ORD.c.order_id.desc())
            .limit(limit)
        )
        found = self._rows(summary)[0]
        local = ZoneInfo(found.pop("timezone") or "UTC")
        items = [_in_zone(row, local) for row in self._rows(newest)] if found["count"] else []
        return {**found, "net_total": float(found["net_total"]), "items": items}

    def terms(self, tenant_id: str) -> dict:
        """The units of a tenant's targets: its horizon in days and its currency (None for a tenant
        without a registry row)."""
        query = sa.select(tenants_table.c.horizon_days, tenants_table.c.currency).where(
            tenants_table.c.tenant_id == validate_tenant_id(tenant_id)
        )
        rows = self._rows(query)
        return rows[0] if rows else {"horizon_days": None, "currency": None}

    def page(self, tenant_id: str, as_of: date, after_rank: int = 0, limit: int = 100, **filters) -> list[dict]:
        """A page of one day's predictions in rank order, after `after_rank` (keyset pagination);
        `filters` by name from `FILTERS`, None meaning any."""
        query = (
            sa.select(*(P.c[name] for name in API_COLUMNS))
            .where(*self._filters(tenant_id, as_of, filters))
            .where(P.c.rank > after_rank)
            .order_by(P.c.rank)
            .limit(limit)
        )
        return self._rows(query)

    def count(self, tenant_id: str, as_of: date, **filters) -> int:
        return int(self._scalar(sa.select(sa.func.count()).where(*self._filters(tenant_id, as_of, filters))))

    def matching(self, batch: dict, **filters) -> int:
        """How many rows of a day match: from its summary (same transaction as the rows) when one band or
        one tier is all that is asked, else a count, which would otherwise scan the day on every page."""
        asked = {name: value for name, value in filters.items() if value is not None}
        tier_counts = (batch.get("targets") or {}).get("tier_counts")
        if not asked:
            return batch["customers"]
        if asked.keys() == {"risk_band"}:
            return batch["band_counts"][asked["risk_band"]]
        if asked.keys() == {"spend_tier"} and tier_counts:
            return tier_counts[asked["spend_tier"]]
        return self.count(batch["tenant_id"], batch["as_of_date"], **filters)

    @staticmethod
    def _filters(tenant_id: str, as_of: date, filters: dict) -> list:
        clauses = [P.c.tenant_id == validate_tenant_id(tenant_id), P.c.as_of_date == as_of]
        for name, value in filters.items():
            if name not in FILTERS:
                raise TypeError(f"unknown predictions filter {name!r} (known: {', '.join(FILTERS)})")
            if value is None:
                continue
            if name in CATEGORY_FILTERS:
                clauses.append(P.c[name] == value)
            else:
                column = P.c[RANGE_FILTERS[name[4:]]]
                clauses.append(column >= value if name.startswith("min_") else column <= value)
        return clauses
