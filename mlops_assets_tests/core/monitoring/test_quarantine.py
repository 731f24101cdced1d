"""A tenant's quarantine at a glance and the spike rule, as pure functions of the ledger's rows."""

from datetime import date, timedelta

import pytest

from mlops_assets.core.monitoring.quarantine import (
    RECENT_DAYS,
    fleet_quarantine,
    quarantine_events,
    quarantine_spike,
    reasons_text,
)
from mlops_assets.core.tenants.health import AlertMemory
from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay

TODAY = date(2026, 11, 30)
LATEST = TODAY - timedelta(days=1)


def day(offset: int, read: int, by_reason: dict | None = None, asset="raw_orders", tenant="acme") -> IngestionDay:
    """A raw partition `offset` days before LATEST."""
    by_reason = by_reason or {}
    return IngestionDay(tenant, asset, LATEST - timedelta(days=offset), read, read - sum(by_reason.values()), by_reason)


def usual(share_in_1000: int, days: int = 28) -> list[IngestionDay]:
    """`days` days of 1000 records before LATEST, `share_in_1000` of each quarantined as invalid_record."""
    return [day(k, 1000, {"invalid_record": share_in_1000} if share_in_1000 else {}) for k in range(1, days + 1)]


@pytest.mark.parametrize(
    ("history", "latest", "spike"),
    [
        (usual(0), day(0, 200, {"extreme_outlier": 12}), True),  # 6% against a clean usual: above the 5% floor
        (usual(0), day(0, 200, {"extreme_outlier": 9}), False),  # 4.5%: at most the floor
        (usual(0), day(0, 100, {"extreme_outlier": 9}), False),  # 9%, but 9 records: too few to mean much
        (usual(20), day(0, 200, {"invalid_record": 19}), False),  # 9.5% against a usual 2%: under 5x
        (usual(20), day(0, 200, {"invalid_record": 21}), True),  # 10.5% > 5 x 2%
        ([], day(0, 40, {"invalid_record": 10}), True),  # a new tenant is held to the floor alone
        (usual(0), day(0, 200, {"invalid_record": 40}, asset="raw_orders_history"), False),  # a sweep is no day
    ],
)
def test_a_spike_is_a_latest_day_far_above_the_tenants_usual_share(history, latest, spike):
    found = quarantine_spike("acme", [*history, latest])
    assert (found is not None) is spike
    if spike:
        assert found.day == LATEST and found.quarantined == latest.quarantined and found.rows_read == latest.rows_read


def test_the_latest_day_sums_both_daily_assets_and_only_the_usual_window_counts():
    old_dirty = day(40, 1000, {"invalid_record": 900})  # before the 28 usual days: not part of the usual share
    customers = day(0, 50, {"invalid_record": 4}, "raw_customers")
    rows = [*usual(0), old_dirty, day(0, 150, {"extreme_outlier": 8}), customers]
    spike = quarantine_spike("acme", rows)
    assert (spike.quarantined, spike.rows_read, spike.usual_share) == (12, 200, 0.0)
    assert spike.summary == (
        f"quarantine spike on {LATEST}: 12 of 200 records (6.0%, usual 0.0%): 8 extreme_outlier, 4 invalid_record"
    )


def test_the_fleet_view_counts_the_recent_days_by_reason_for_every_listed_tenant():
    rows = [
        day(0, 500, {"extreme_outlier": 10, "invalid_record": 2}),
        day(RECENT_DAYS, 400, {"invalid_record": 7}),  # eight days ago: not counted, part of the usual share
        day(0, 300, tenant="globex"),
        day(0, 50, {"invalid_record": 1}, tenant="gone"),  # not listed (removed from the registry)
    ]
    views = fleet_quarantine(rows, ["acme", "globex", "newbie"], TODAY)
    assert sorted(views) == ["acme", "globex", "newbie"]
    acme = views["acme"]
    assert acme.summary == "12 quarantined in 7 days (2.4% of 500): 10 extreme_outlier, 2 invalid_record"
    assert acme.short == "12 (10 extreme_outlier, 2 invalid_record)" and acme.spike is None
    assert views["globex"].summary == "none of 300 records quarantined in 7 days" and views["globex"].short == "0"
    assert views["newbie"].summary == "nothing ingested in 7 days" and views["newbie"].short == "-"
    assert acme.public_view()["by_reason"] == {"extreme_outlier": 10, "invalid_record": 2}


def test_a_spike_older_than_the_recent_days_is_no_longer_shown():
    rows = [day(RECENT_DAYS + 1, 100, {"extreme_outlier": 50})]
    assert quarantine_spike("acme", rows) is not None
    assert fleet_quarantine(rows, ["acme"], TODAY)["acme"].spike is None


def test_events_go_out_when_a_spike_starts_and_when_it_ends_never_while_it_lasts():
    spiking = fleet_quarantine([*usual(0), day(0, 100, {"extreme_outlier": 30})], ["acme"], TODAY)
    calm = fleet_quarantine([*usual(0), day(0, 100)], ["acme"], TODAY)
    (started,) = quarantine_events(set(), spiking, TODAY)
    assert (started.kind, started.tenant_id) == ("quarantine_spike", "acme")
    assert "30 of 100 records (30.0%, usual 0.0%)" in started.message
    assert "`mlops quarantine list acme`" in started.message
    assert started.details["spike"]["by_reason"] == {"extreme_outlier": 30}
    assert quarantine_events({"acme"}, spiking, TODAY) == []
    (ended,) = quarantine_events({"acme"}, calm, TODAY)
    assert ended.kind == "quarantine_normal" and "none of" in ended.message
    assert quarantine_events(set(), calm, TODAY) == []


def test_reasons_read_largest_first():
    assert reasons_text({"invalid_record": 2, "extreme_outlier": 10, "future_timestamp": 2}) == (
        "10 extreme_outlier, 2 future_timestamp, 2 invalid_record"
    )


def test_the_health_sensors_memory_reads_its_cursor_from_before_quarantine_alerts():
    assert AlertMemory.loads(None) == AlertMemory({})
    assert AlertMemory.loads('{"acme": "stale", "states": "healthy"}') == AlertMemory(
        {"acme": "stale", "states": "healthy"}
    ), "a tenant may be called 'states'"
    memory = AlertMemory({"acme": "healthy"}, frozenset({"acme"}))
    assert AlertMemory.loads(memory.dumps()) == memory
