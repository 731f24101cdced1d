from datetime import UTC, datetime, timedelta

from mlops_assets.core.sources.shopify import ShopApiError
from mlops_assets.core.tenants.retries import Failure, FailureKind, RetryPolicy, RetryState, failure_kind

T0 = datetime(2026, 3, 1, 11, tzinfo=UTC)
POLICY = RetryPolicy()


def _failures(*minutes_after, kind=FailureKind.TRANSIENT):
    return [Failure(T0 + timedelta(minutes=m), kind, "HTTP 503") for m in minutes_after]


def test_a_rejected_token_or_a_missing_shop_is_permanent_a_server_storm_is_not():
    assert failure_kind(ShopApiError("tenant a: 401", 401)) is FailureKind.PERMANENT
    assert failure_kind(ShopApiError("tenant a: 404", 404)) is FailureKind.PERMANENT
    assert failure_kind(ShopApiError("tenant a: still failing after 8 attempts (HTTP 503)")) is FailureKind.TRANSIENT
    assert failure_kind(ShopApiError("tenant a: 400", 400)) is FailureKind.TRANSIENT
    assert failure_kind(ValueError("gate")) is FailureKind.TRANSIENT


def test_transient_failures_back_off_then_need_attention_after_the_cap():
    failures = _failures(0)
    waiting = POLICY.decide(failures, None, T0 + timedelta(minutes=9))
    assert waiting.state is RetryState.WAITING and waiting.next_retry == T0 + timedelta(minutes=10)
    due = POLICY.decide(failures, None, T0 + timedelta(minutes=10))
    assert (due.state, due.attempt) == (RetryState.RETRY, 2)
    second = POLICY.decide(_failures(0, 11), None, T0 + timedelta(minutes=30))
    assert second.state is RetryState.WAITING and second.next_retry == T0 + timedelta(minutes=41)
    ends, failures = 0, []
    for delay in POLICY.delays:
        failures.append(Failure(T0 + timedelta(minutes=ends), FailureKind.TRANSIENT, "HTTP 503"))
        ends += delay.total_seconds() / 60 + 1
    assert POLICY.decide(failures, None, T0 + timedelta(days=3)).attempt == POLICY.cap + 1
    failures.append(Failure(T0 + timedelta(minutes=ends), FailureKind.TRANSIENT, "HTTP 503"))
    capped = POLICY.decide(failures, None, T0 + timedelta(days=30))
    assert capped.state is RetryState.NEEDS_ATTENTION and capped.failures == POLICY.cap + 1
    assert "needs attention" in capped.note("acme", "daily cycle") and "mlops tenants retry acme" in capped.note(
        "acme", "daily cycle"
    )


def test_a_permanent_failure_waits_for_the_tenant_to_change():
    failures = _failures(0, kind=FailureKind.PERMANENT)
    held = POLICY.decide(failures, T0 - timedelta(days=1), T0 + timedelta(days=10))
    assert held.state is RetryState.PERMANENT and held.next_retry is None
    changed = POLICY.decide(failures, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    assert (changed.state, changed.attempt, changed.failures) == (RetryState.RETRY, 2, 0)


def test_a_canceled_attempt_is_retried_after_the_shortest_delay_and_is_no_failure():
    canceled = _failures(0, kind=FailureKind.CANCELED)
    waiting = POLICY.decide(canceled, None, T0 + timedelta(minutes=5))
    assert (waiting.state, waiting.failures, waiting.next_retry) == (RetryState.WAITING, 0, T0 + POLICY.delays[0])
    assert waiting.note("acme", "daily cycle") == "acme: daily cycle was canceled; next retry at 2026-03-01 11:10 UTC"
    assert (POLICY.decide(canceled, None, T0 + POLICY.delays[0]).state, waiting.attempt) == (RetryState.RETRY, 2)
    # After two failures the third attempt, canceled, moves neither the backoff nor the cap along.
    mixed = [*_failures(0, 20), *_failures(200, kind=FailureKind.CANCELED)]
    after_cancel = POLICY.decide(mixed, None, T0 + timedelta(minutes=205))
    assert (after_cancel.failures, after_cancel.attempt) == (2, 4)
    assert after_cancel.next_retry == T0 + timedelta(minutes=200) + POLICY.delays[0]
    cancels = _failures(*range(0, 600, 60), kind=FailureKind.CANCELED)
    assert POLICY.decide(cancels, None, T0 + timedelta(days=1)).state is RetryState.RETRY, "never needs attention"
