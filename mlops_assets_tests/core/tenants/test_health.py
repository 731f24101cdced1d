"""The tenant state rules, as a pure function of gathered facts."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from mlops_assets.core.tenants.health import RunFailure, TenantFacts, freshness, health_events, tenant_state

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
BERLIN, AUCKLAND = ZoneInfo("Europe/Berlin"), ZoneInfo("Pacific/Auckland")


def facts(**changes) -> TenantFacts:
    given = {"tenant_id": "acme", "status": "active", "zone": BERLIN, "onboarded": True, "onboarding_step": None,
             "latest_day": date(2026, 11, 29)}  # fmt: skip
    return TenantFacts(**{**given, **changes})


def failure(hour: int, reason: str = "raw_orders: ShopApiError: tenant acme: 401 (fix the token)") -> RunFailure:
    return RunFailure(f"run-{hour}", "daily", datetime(2026, 11, 30, hour, tzinfo=UTC), reason)


@pytest.mark.parametrize(
    "latest, zone, now, stale",
    [
        (date(2026, 11, 29), BERLIN, NOW, False),  # yesterday's predictions
        (date(2026, 11, 28), BERLIN, datetime(2026, 11, 30, 10, tzinfo=UTC), False),  # before noon: the run's grace
        (date(2026, 11, 28), BERLIN, datetime(2026, 11, 30, 11, 1, tzinfo=UTC), True),  # 12:01 in Berlin
        (date(2026, 11, 29), AUCKLAND, datetime(2026, 11, 30, 23, 1, tzinfo=UTC), True),  # Dec 1st 12:01 there
        (date(2026, 11, 29), BERLIN, datetime(2026, 11, 30, 23, 1, tzinfo=UTC), False),  # still Nov 30th in Berlin
        (None, BERLIN, NOW, True),
    ],
)
def test_freshness_allows_a_day_and_a_half_in_the_tenants_timezone(latest, zone, now, stale):
    fresh = freshness(latest, zone, now)
    assert fresh.stale is stale and fresh.as_of == latest
    assert fresh.since == (date.fromordinal(latest.toordinal() + 1) if stale and latest else None)


def test_each_state_and_its_summary():
    assert tenant_state(facts(), NOW).summary == "healthy (predicted through 2026-11-29)"
    paused = tenant_state(facts(status="paused", failures=(failure(3),)), NOW)
    assert paused.state == "paused" and not paused.healthy
    onboarding = tenant_state(facts(onboarded=False, onboarding_step="days", latest_day=None, running=True), NOW)
    assert (onboarding.state, onboarding.step) == ("onboarding", "days") and "running" in onboarding.summary
    stale = tenant_state(facts(latest_day=date(2026, 11, 25)), NOW)
    assert stale.state == "stale" and stale.since == "2026-11-26"
    assert stale.summary.startswith("stale since 2026-11-26 (no run has predicted it since")
    assert "in progress" in tenant_state(facts(latest_day=date(2026, 11, 25), running=True), NOW).summary


def test_failing_counts_attempts_since_the_last_success_and_names_the_cause():
    state = tenant_state(facts(latest_day=date(2026, 11, 25), failures=(failure(9), failure(4), failure(2))), NOW)
    assert (state.state, state.attempts, state.since) == ("failing", 3, "2026-11-30 02:00 UTC")
    assert state.reason == "daily run failed: raw_orders: ShopApiError: tenant acme: 401 (fix the token)"
    assert state.summary == f"failing ({state.reason}; attempts 3, since 2026-11-30 02:00 UTC)"
    stuck = tenant_state(facts(onboarded=False, onboarding_step="history", failures=(failure(1),)), NOW)
    assert stuck.state == "failing" and stuck.reason.startswith("onboarding step history: daily run failed")


def test_the_retry_seam_shows_the_next_retry_then_needs_attention():
    retrying = tenant_state(facts(failures=(failure(9),), next_retry=datetime(2026, 11, 30, 16, tzinfo=UTC)), NOW)
    assert retrying.state == "failing" and retrying.summary.endswith(", next retry 2026-11-30 16:00)")
    exhausted = tenant_state(facts(failures=(failure(9),), retries_exhausted=True), NOW)
    assert exhausted.state == "needs_attention" and exhausted.next_retry is None
    assert exhausted.summary.startswith("needs attention (daily run failed")


def test_events_only_on_a_change_of_state():
    day = NOW.date()
    stale = tenant_state(facts(latest_day=date(2026, 11, 25)), NOW)
    failing = tenant_state(facts(failures=(failure(9),)), NOW)
    healthy = tenant_state(facts(), NOW)
    first = health_events({}, [stale, tenant_state(facts(tenant_id="fine"), NOW)], day)
    assert [(e.kind, e.tenant_id) for e in first] == [("stale", "acme")] and "stale since" in first[0].message
    assert health_events({"acme": "stale"}, [stale], day) == []
    assert [e.kind for e in health_events({"acme": "stale"}, [failing], day)] == ["stale"]
    recovered = health_events({"acme": "failing"}, [healthy], day)
    assert [e.kind for e in recovered] == ["recovered"] and recovered[0].details["state"] == "healthy"
    assert health_events({"acme": "onboarding"}, [healthy], day) == []
    assert health_events({"acme": "healthy"}, [tenant_state(facts(status="paused"), NOW)], day) == []
