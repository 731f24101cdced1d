"""When failed work of a tenant is tried again: backoff, a cap, and permanent failures that wait for a change.

A transient failure (a shop down for an hour, a server error storm past the client's retry budget, a
dead run worker) heals by itself: the work is retried after 10 min, 30 min, 2 h, 6 h and 24 h. After
the cap it "needs attention". A permanent failure (the shop rejects the tenant's token, or the shop or
API version is gone) is not retried at all: a retry would fail the same way. Both wait until the
tenant's state changes: its registry row's `updated_at` moves (the operator fixed a setting, or ran
`mlops tenants retry`). Failures before that change no longer count, so the next decision retries now.
An attempt an operator canceled is no failure of the tenant's: it is tried again after the shortest delay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    # Not a failure: an operator stopped the attempt (Dagster's CANCELED). It is tried again after the shortest
    # delay and counts neither toward the cap nor as the tenant failing; pausing the tenant stops its work.
    CANCELED = "canceled"


def failure_kind(error: BaseException) -> FailureKind:
    """Permanent when the error says so (`permanent`, e.g. `ShopApiError` on 401/403/404), else transient."""
    return FailureKind.PERMANENT if getattr(error, "permanent", False) else FailureKind.TRANSIENT


@dataclass(frozen=True)
class Failure:
    """One failed attempt of a piece of work: when it ended, its kind and why (the error's message)."""

    ended_at: datetime
    kind: FailureKind = FailureKind.TRANSIENT
    reason: str = ""


class RetryState(StrEnum):
    RETRY = "retry"  # due now
    WAITING = "waiting"  # backoff not over: `next_retry`
    PERMANENT = "permanent"  # held until the tenant changes
    NEEDS_ATTENTION = "needs_attention"  # the cap is reached; held until the tenant changes


@dataclass(frozen=True)
class RetryDecision:
    state: RetryState
    attempt: int  # the number of the next attempt, counting every failure ever (run keys carry it)
    failures: int  # failed attempts since the tenant last changed
    next_retry: datetime | None = None
    reason: str = ""

    def note(self, tenant_id: str, work: str) -> str:
        """What an operator reads: the work, its state, the cause and what to do."""
        why = f": {self.reason}" if self.reason else ""
        fix = f"fix the cause, then `mlops tenants retry {tenant_id}` (or `mlops backfill {tenant_id} --from DAY`)"
        if self.state is RetryState.PERMANENT:
            return f"{tenant_id}: {work} failed permanently{why} (not retried; {fix})"
        if self.state is RetryState.NEEDS_ATTENTION:
            return f"{tenant_id}: {work} needs attention after {self.failures} failed attempts{why} ({fix})"
        if self.state is RetryState.WAITING:
            at = f"{self.next_retry:%Y-%m-%d %H:%M} UTC"
            done = f"failed {self.failures}x{why}" if self.failures else "was canceled"
            return f"{tenant_id}: {work} {done}; next retry at {at}"
        return f"{tenant_id}: {work} retried (attempt {self.attempt}){why}"


BACKOFF = (timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6), timedelta(hours=24))


@dataclass(frozen=True)
class RetryPolicy:
    """Retry i (1-based) of a transient failure waits `delays[i-1]` after the failure; `len(delays)` is the cap."""

    delays: tuple[timedelta, ...] = BACKOFF

    @property
    def cap(self) -> int:
        return len(self.delays)

    def decide(self, failures: list[Failure], changed_at: datetime | None, now: datetime) -> RetryDecision:
        """The next step for work whose attempts all failed or were canceled (`failures`, any order; at least
        one). Every attempt numbers the next one; canceled attempts are not counted as failures."""
        ordered = sorted(failures, key=lambda failure: failure.ended_at)
        attempt = len(ordered) + 1
        counted = [failure for failure in ordered if changed_at is None or failure.ended_at > changed_at]
        if not counted:
            return RetryDecision(RetryState.RETRY, attempt, 0, now, "retried after the tenant changed")
        last = counted[-1]
        failed = len([failure for failure in counted if failure.kind is not FailureKind.CANCELED])
        if last.kind is FailureKind.PERMANENT:
            return RetryDecision(RetryState.PERMANENT, attempt, failed, None, last.reason)
        if failed > self.cap:
            return RetryDecision(RetryState.NEEDS_ATTENTION, attempt, failed, None, last.reason)
        delay = self.delays[0] if last.kind is FailureKind.CANCELED else self.delays[failed - 1]
        due = last.ended_at + delay
        state = RetryState.RETRY if now >= due else RetryState.WAITING
        return RetryDecision(state, attempt, failed, due, last.reason)


DEFAULT_POLICY = RetryPolicy()
