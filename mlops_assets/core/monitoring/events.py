"""Operator events (drift, retrain, promotion, rollback, onboarding, fleet health, quarantine spikes) and their
delivery to a webhook.

A webhook URL often carries a secret (Slack and Teams put the token in the path), so it is never
logged or put in an error message; a delivery failure is reported, never raised: an alert that
cannot be sent must not fail the run that raised it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlops_assets.core.tenants.ids import validate_tenant_id

KINDS = (
    "drift_detected", "performance_below_floor", "promoted", "refused", "rolled_back", "onboarded",
    "stale", "recovered",  # fleet health: a tenant turned stale, failing or needs attention; it is healthy again
    "quarantine_spike", "quarantine_normal",  # a tenant's quarantine share far above its usual; back to usual
)  # fmt: skip


@dataclass(frozen=True)
class OperatorEvent:
    kind: str
    tenant_id: str
    day: str
    message: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"event kind {self.kind!r} is not one of {KINDS}")
        validate_tenant_id(self.tenant_id)

    def payload(self) -> dict:
        return {**asdict(self), "source": "mlops", "sent_at": datetime.now(UTC).isoformat()}


class _Retryable(Exception):
    pass


@retry(
    retry=retry_if_exception_type(_Retryable),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)
def _post(url: str, payload: dict, timeout: float) -> None:
    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        raise _Retryable(type(exc).__name__) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retryable(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise ValueError(f"HTTP {response.status_code}")


def deliver(event: OperatorEvent, url: str | None, timeout: float = 5.0) -> str:
    """'sent', 'not configured', or why it failed (without the URL)."""
    if not url:
        return "not configured"
    try:
        _post(url, event.payload(), timeout)
    except (_Retryable, ValueError) as exc:
        return f"webhook delivery failed: {exc}"
    return "sent"
