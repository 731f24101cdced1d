"""A tenant's state at a glance, decided from facts that thin code gathers elsewhere.

The registry says whether a tenant is paused, the warehouse which day it was last predicted for, the
Dagster instance how far its onboarding got and which runs touching it failed. One pure function turns
those facts into one of `STATES`, so `mlops status`, `mlops tenants list`, the health sensor and its
webhook events agree, and the rules can be tested without an instance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mlops_assets.core.monitoring.events import OperatorEvent

STATES = ("onboarding", "healthy", "stale", "failing", "needs_attention", "paused")
UNHEALTHY = ("stale", "failing", "needs_attention")
# Day D's predictions are due by the end of D plus a day and a half: the daily run of D starts after D
# ends in the tenant's timezone and gets half a day's grace, so a tenant does not turn stale at every
# midnight while its run is still to come.
FRESH_FOR = timedelta(days=1.5)


@dataclass(frozen=True)
class Freshness:
    as_of: date | None  # the latest predicted day
    stale: bool
    since: date | None  # the first day without predictions, when stale


def freshness(latest_day: date | None, zone: ZoneInfo, now: datetime) -> Freshness:
    """Whether a tenant's newest predictions are older than the rule of `FRESH_FOR` allows."""
    if latest_day is None:
        return Freshness(None, True, None)
    day_ends = datetime.combine(latest_day + timedelta(days=1), time(), tzinfo=zone)
    stale = now >= day_ends + FRESH_FOR
    return Freshness(latest_day, stale, latest_day + timedelta(days=1) if stale else None)


@dataclass(frozen=True)
class RunFailure:
    """A failed run that touched the tenant: its stage tag, when it ended and the error it failed with."""

    run_id: str
    stage: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class TenantFacts:
    tenant_id: str
    status: str  # the registry's: active or paused
    zone: ZoneInfo
    onboarded: bool  # a production decision exists, so the daily cycle scores it
    onboarding_step: str | None  # history, days or model: the step running or next, while not onboarded
    latest_day: date | None  # the newest day in the warehouse's prediction batches
    failures: tuple[RunFailure, ...] = ()  # failed runs touching it since its last successful one, newest first
    running: bool = False  # a run touching it is queued or in progress
    # The seam for automatic retries: the retry policy fills these; gathered facts leave them empty.
    next_retry: datetime | None = None
    retries_exhausted: bool = False


@dataclass(frozen=True)
class TenantState:
    tenant_id: str
    state: str  # one of STATES
    summary: str  # what the operator reads, e.g. "stale since 2026-11-27 (no run has predicted it since)"
    as_of: date | None = None
    since: str | None = None  # a day (stale) or the time of the first failure (failing)
    step: str | None = None
    reason: str | None = None
    attempts: int = 0
    next_retry: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def public_view(self) -> dict:
        return {
            "tenant_id": self.tenant_id, "state": self.state, "summary": self.summary,
            "as_of": self.as_of.isoformat() if self.as_of else None, "since": self.since, "step": self.step,
            "reason": self.reason, "attempts": self.attempts,
            "next_retry": self.next_retry.isoformat() if self.next_retry else None,
        }  # fmt: skip


def _failing(facts: TenantFacts, fresh: Freshness) -> TenantState:
    newest, first = facts.failures[0], facts.failures[-1]
    reason = f"{newest.stage} run failed: {newest.reason}"
    if not facts.onboarded:
        reason = f"onboarding step {facts.onboarding_step or newest.stage}: {reason}"
    since = first.at.strftime("%Y-%m-%d %H:%M %Z").strip()
    attempts = len(facts.failures)
    state = "needs_attention" if facts.retries_exhausted else "failing"
    retry = f", next retry {facts.next_retry:%Y-%m-%d %H:%M}" if facts.next_retry and state == "failing" else ""
    summary = f"{state.replace('_', ' ')} ({reason}; attempts {attempts}, since {since}{retry})"
    return TenantState(
        facts.tenant_id, state, summary, fresh.as_of, since, facts.onboarding_step, reason, attempts,
        facts.next_retry if state == "failing" else None,
    )  # fmt: skip


def tenant_state(facts: TenantFacts, now: datetime) -> TenantState:
    """The one state an operator needs first: paused, failing (or needs attention), onboarding, stale, healthy."""
    fresh = freshness(facts.latest_day, facts.zone, now)
    if facts.status == "paused":
        summary = "paused (`mlops tenants resume` to schedule it again)"
        return TenantState(facts.tenant_id, "paused", summary, fresh.as_of)
    if facts.failures:
        return _failing(facts, fresh)
    if not facts.onboarded:
        step = facts.onboarding_step or "history"
        doing = "running" if facts.running else "waiting for the onboarding sensor"
        return TenantState(facts.tenant_id, "onboarding", f"onboarding (step {step}, {doing})", fresh.as_of, step=step)
    if fresh.stale:
        why = "a run is in progress" if facts.running else "no run has predicted it since; is the daily schedule on?"
        since = fresh.since.isoformat() if fresh.since else None
        label = f"stale since {since}" if since else "stale: no predictions yet"
        return TenantState(facts.tenant_id, "stale", f"{label} ({why})", fresh.as_of, since, reason=why)
    return TenantState(facts.tenant_id, "healthy", f"healthy (predicted through {fresh.as_of})", fresh.as_of)


def health_events(previous: dict[str, str], states: list[TenantState], day: date) -> list[OperatorEvent]:
    """The webhook events of state changes: `stale` when a tenant enters an unhealthy state (or moves to
    another one), `recovered` when an unhealthy tenant turns healthy. An unchanged state sends nothing."""
    events = []
    for state in states:
        before = previous.get(state.tenant_id)
        if state.state == before:
            continue
        if state.state in UNHEALTHY:
            events.append(OperatorEvent("stale", state.tenant_id, day.isoformat(), state.summary, state.public_view()))
        elif state.healthy and before in UNHEALTHY:
            message = f"recovered from {before.replace('_', ' ')}: {state.summary}"
            events.append(OperatorEvent("recovered", state.tenant_id, day.isoformat(), message, state.public_view()))
    return events


@dataclass(frozen=True)
class AlertMemory:
    """What the health sensor alerted on last (its cursor): each tenant's state, and the tenants with a quarantine
    spike; an event goes out only when either changes."""

    states: dict[str, str]
    spiking: frozenset[str] = frozenset()

    @classmethod
    def loads(cls, cursor: str | None) -> AlertMemory:
        stored = json.loads(cursor) if cursor else {}
        if not isinstance(stored.get("states"), dict):  # a cursor from before quarantine alerts: the states alone
            return cls(stored)
        return cls(stored["states"], frozenset(stored.get("spiking", ())))

    def dumps(self) -> str:
        return json.dumps({"states": self.states, "spiking": sorted(self.spiking)}, sort_keys=True)
