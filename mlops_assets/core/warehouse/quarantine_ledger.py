"""The quarantine's ledger: what each raw partition read, wrote and quarantined, and released orders.

The lake keeps the quarantined records themselves (`<lake>/quarantine/`); this ledger keeps their
counts by reason per tenant, asset and day, so the operator's views and the fleet health sensor answer
for a thousand tenants with one query instead of reading every tenant's quarantine files. A re-run
replaces its partition's row: counts never add up twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import sqlalchemy as sa

from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.warehouse.engine import (
    Bindable,
    ingestion_days_table,
    released_orders_table,
)

D, R = ingestion_days_table, released_orders_table


@dataclass(frozen=True)
class IngestionDay:
    """One raw partition's balance: `rows_read == rows_written + quarantined`."""

    tenant_id: str
    asset: str
    day: date
    rows_read: int
    rows_written: int
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return sum(self.by_reason.values())

    def __post_init__(self):
        validate_tenant_id(self.tenant_id)
        if self.rows_read != self.rows_written + self.quarantined:
            raise ValueError(
                f"tenant {self.tenant_id} {self.asset} {self.day}: {self.rows_read} rows read but "
                f"{self.rows_written} written and {self.quarantined} quarantined (a row was lost or counted twice)"
            )


@dataclass(frozen=True)
class QuarantineSummary:
    """A tenant's quarantine over a span of days."""

    tenant_id: str
    rows_read: int
    quarantined: int
    by_reason: dict[str, int]

    @property
    def share(self) -> float:
        return self.quarantined / self.rows_read if self.rows_read else 0.0


def _row(day: IngestionDay) -> dict:
    return {
        "tenant_id": day.tenant_id,
        "asset": day.asset,
        "day": day.day,
        "rows_read": day.rows_read,
        "rows_written": day.rows_written,
        "quarantined": day.quarantined,
        "by_reason": dict(sorted(day.by_reason.items())),
        "updated_at": datetime.now(UTC),
    }


class QuarantineLedger(Bindable):
    def record(self, *days: IngestionDay) -> None:
        """Replace these partitions' rows, in one transaction (a run records its partitions at once)."""
        if not days:
            return
        with self.engine.begin() as conn:
            for day in days:
                key = (D.c.tenant_id == day.tenant_id, D.c.asset == day.asset, D.c.day == day.day)
                conn.execute(D.delete().where(*key))
            conn.execute(D.insert(), [_row(day) for day in days])

    def replace(self, tenant_id: str, asset: str, days: list[IngestionDay]) -> None:
        """Every row of a tenant's asset at once, in one transaction: a history sweep's days (a re-sweep may cover
        other days than the last one, whose rows must not linger)."""
        validate_tenant_id(tenant_id)
        if any((day.tenant_id, day.asset) != (tenant_id, asset) for day in days):
            raise ValueError(f"tenant {tenant_id} {asset}: every day replaced must be of this tenant and asset")
        with self.engine.begin() as conn:
            conn.execute(D.delete().where(D.c.tenant_id == tenant_id, D.c.asset == asset))
            if days:
                conn.execute(D.insert(), [_row(day) for day in days])

    def summaries(self, first: date, last: date | None = None) -> dict[str, QuarantineSummary]:
        """Every tenant's totals over [first, last] (all assets), for the fleet views."""
        query = sa.select(D.c.tenant_id, D.c.rows_read, D.c.by_reason).where(D.c.day >= first)
        if last is not None:
            query = query.where(D.c.day <= last)
        read: Counter[str] = Counter()
        reasons: dict[str, Counter[str]] = {}
        for row in self._rows(query):
            read[row["tenant_id"]] += row["rows_read"]
            reasons.setdefault(row["tenant_id"], Counter()).update(row["by_reason"] or {})
        return {
            tenant_id: QuarantineSummary(
                tenant_id, read[tenant_id], sum(reasons[tenant_id].values()), dict(sorted(reasons[tenant_id].items()))
            )
            for tenant_id in sorted(read)
        }

    def since(self, first: date) -> list[IngestionDay]:
        """Every tenant's raw partitions from `first` on, in one query: the fleet's quarantine view and its alert."""
        query = sa.select(D).where(D.c.day >= first).order_by(D.c.tenant_id, D.c.day, D.c.asset)
        return [
            IngestionDay(row["tenant_id"], row["asset"], row["day"], row["rows_read"], row["rows_written"],
                         row["by_reason"] or {})
            for row in self._rows(query)
        ]  # fmt: skip

    def days(self, tenant_id: str, first: date | None = None) -> list[dict]:
        validate_tenant_id(tenant_id)
        query = sa.select(D).where(D.c.tenant_id == tenant_id).order_by(D.c.day, D.c.asset)
        if first is not None:
            query = query.where(D.c.day >= first)
        return self._rows(query)

    def release(self, tenant_id: str, order_id: str, reason: str, released_by: str, note: str | None = None) -> bool:
        """Let a quarantined order through from the next run on; False when it was released already."""
        validate_tenant_id(tenant_id)
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(R.c.order_id).where(R.c.tenant_id == tenant_id, R.c.order_id == order_id)
            ).first()
            if exists:
                return False
            conn.execute(
                R.insert().values(
                    tenant_id=tenant_id,
                    order_id=order_id,
                    reason=reason,
                    released_by=released_by,
                    note=note,
                    released_at=datetime.now(UTC),
                )
            )
        return True

    def released(self, tenant_id: str) -> frozenset[str]:
        validate_tenant_id(tenant_id)
        return frozenset(self._rows_scalars(sa.select(R.c.order_id).where(R.c.tenant_id == tenant_id)))

    def releases(self, tenant_id: str) -> list[dict]:
        validate_tenant_id(tenant_id)
        return self._rows(sa.select(R).where(R.c.tenant_id == tenant_id).order_by(R.c.released_at))

    def forget(self, tenant_id: str) -> None:
        """Remove a tenant's rows (tenant removal with --purge)."""
        validate_tenant_id(tenant_id)
        with self.engine.begin() as conn:
            conn.execute(D.delete().where(D.c.tenant_id == tenant_id))
            conn.execute(R.delete().where(R.c.tenant_id == tenant_id))

    def _rows_scalars(self, query) -> list:
        with self._connect() as conn:
            return list(conn.execute(query).scalars())
