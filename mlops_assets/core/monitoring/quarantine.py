"""A tenant's quarantine at a glance, and the alert when it jumps.

The facts are the quarantine ledger's rows (`core.warehouse.quarantine_ledger`: one query for the fleet); the
rules are pure, so `mlops status`, `mlops tenants list` and the health sensor's webhook agree and are tested
without a warehouse. The alert compares a tenant with itself: a shop whose export always carries 3% of
unreadable rows is not news, the day it jumps to 30% is.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from mlops_assets.core.monitoring.events import OperatorEvent
from mlops_assets.core.sources.ingest import RAW_ASSETS
from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay, QuarantineSummary

RECENT_DAYS = 7  # what the operator's views count; a spike older than this is no longer shown
USUAL_DAYS = 28  # a tenant's usual share: these days before its latest
SPIKE_FLOOR = 0.05  # a day's share at or below this is never a spike (the `quarantine_share` gate's line)
SPIKE_FACTOR = 5.0  # above the floor, it must also exceed this many times the usual share
SPIKE_MIN_RECORDS = 10  # and count this many records: three bad rows of a ten-order day are noise
LEDGER_DAYS = RECENT_DAYS + USUAL_DAYS  # how far back the fleet's ledger rows are read
DAILY_ASSETS = frozenset(RAW_ASSETS.values())  # a history sweep is a one-off, not a day to compare


def reasons_text(by_reason: Mapping[str, int]) -> str:
    """'10 extreme_outlier, 2 invalid_record': the largest first."""
    return ", ".join(f"{count} {reason}" for reason, count in sorted(by_reason.items(), key=lambda i: (-i[1], i[0])))


def _total(tenant_id: str, days: Iterable[IngestionDay]) -> QuarantineSummary:
    read, reasons = 0, Counter()
    for day in days:
        read += day.rows_read
        reasons.update(day.by_reason)
    return QuarantineSummary(tenant_id, read, sum(reasons.values()), dict(sorted(reasons.items())))


@dataclass(frozen=True)
class QuarantineSpike:
    day: date
    quarantined: int
    rows_read: int
    usual_share: float
    by_reason: dict[str, int]

    @property
    def share(self) -> float:
        return self.quarantined / self.rows_read

    @property
    def summary(self) -> str:
        return (
            f"quarantine spike on {self.day}: {self.quarantined} of {self.rows_read} records ({self.share:.1%}, "
            f"usual {self.usual_share:.1%}): {reasons_text(self.by_reason)}"
        )


def quarantine_spike(tenant_id: str, days: Iterable[IngestionDay]) -> QuarantineSpike | None:
    """The rule: on the tenant's latest day of daily partitions, a share above max(SPIKE_FLOOR, SPIKE_FACTOR x its
    share over the USUAL_DAYS before), with at least SPIKE_MIN_RECORDS quarantined. A tenant without usual days
    is held to the floor alone."""
    daily = [day for day in days if day.asset in DAILY_ASSETS]
    if not daily:
        return None
    latest = max(day.day for day in daily)
    last = _total(tenant_id, (day for day in daily if day.day == latest))
    usual = _total(tenant_id, (d for d in daily if latest - timedelta(days=USUAL_DAYS) <= d.day < latest))
    if last.quarantined < SPIKE_MIN_RECORDS or last.share <= max(SPIKE_FLOOR, SPIKE_FACTOR * usual.share):
        return None
    return QuarantineSpike(latest, last.quarantined, last.rows_read, usual.share, last.by_reason)


@dataclass(frozen=True)
class TenantQuarantine:
    """What the operator's views show of a tenant's quarantine: the last RECENT_DAYS' counts and a spike."""

    recent: QuarantineSummary
    spike: QuarantineSpike | None = None

    @property
    def summary(self) -> str:
        """e.g. '12 quarantined in 7 days (1.4% of 850): 10 extreme_outlier, 2 invalid_record'."""
        recent = self.recent
        if not recent.rows_read:
            return f"nothing ingested in {RECENT_DAYS} days"
        if not recent.quarantined:
            return f"none of {recent.rows_read} records quarantined in {RECENT_DAYS} days"
        return (
            f"{recent.quarantined} quarantined in {RECENT_DAYS} days ({recent.share:.1%} of {recent.rows_read}): "
            f"{reasons_text(recent.by_reason)}"
        )

    @property
    def short(self) -> str:
        """For a table cell: '12 (10 extreme_outlier, 2 invalid_record)', '0', or '-' with nothing ingested."""
        recent = self.recent
        if not recent.rows_read:
            return "-"
        counts = f"{recent.quarantined} ({reasons_text(recent.by_reason)})" if recent.quarantined else "0"
        return f"{counts} SPIKE" if self.spike else counts

    def public_view(self) -> dict:
        spike = self.spike
        return {
            "days": RECENT_DAYS, "rows_read": self.recent.rows_read, "quarantined": self.recent.quarantined,
            "by_reason": self.recent.by_reason, "summary": self.summary,
            "spike": None if spike is None else {
                "day": spike.day.isoformat(), "quarantined": spike.quarantined, "rows_read": spike.rows_read,
                "share": round(spike.share, 4), "usual_share": round(spike.usual_share, 4),
                "by_reason": spike.by_reason, "summary": spike.summary,
            },
        }  # fmt: skip


def fleet_quarantine(
    rows: Iterable[IngestionDay], tenant_ids: Iterable[str], today: date
) -> dict[str, TenantQuarantine]:
    """Each tenant's quarantine from the ledger's rows of the last LEDGER_DAYS; a spike counts while it is recent."""
    by_tenant: dict[str, list[IngestionDay]] = defaultdict(list)
    for row in rows:
        by_tenant[row.tenant_id].append(row)
    first = today - timedelta(days=RECENT_DAYS)
    views = {}
    for tenant_id in tenant_ids:
        days = by_tenant.get(tenant_id, [])
        spike = quarantine_spike(tenant_id, days)
        recent = _total(tenant_id, (day for day in days if day.day >= first))
        views[tenant_id] = TenantQuarantine(recent, spike if spike and spike.day >= first else None)
    return views


def quarantine_events(
    previous_spiking: Collection[str], quarantines: Mapping[str, TenantQuarantine], day: date
) -> list[OperatorEvent]:
    """`quarantine_spike` when a tenant's spike starts, `quarantine_normal` when it ends; nothing while it lasts."""
    events = []
    for tenant_id, view in sorted(quarantines.items()):
        fix = f"(fix: `mlops quarantine list {tenant_id}` shows the records, their reasons and fixes)"
        if view.spike and tenant_id not in previous_spiking:
            message = f"{view.spike.summary} {fix}"
            events.append(OperatorEvent("quarantine_spike", tenant_id, day.isoformat(), message, view.public_view()))
        elif not view.spike and tenant_id in previous_spiking:
            message = f"quarantine back to its usual share: {view.summary}"
            events.append(OperatorEvent("quarantine_normal", tenant_id, day.isoformat(), message, view.public_view()))
    return events
