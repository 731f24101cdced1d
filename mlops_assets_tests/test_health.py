"""Fleet health on a real Dagster instance and warehouse: `mlops status`, the STATE and quarantine of
`mlops tenants list`, and the health sensor's webhook events (once per change of state or quarantine spike)."""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.warehouse.engine import PREDICTION_COLUMNS
from mlops_assets.core.warehouse.prediction_store import write_partition
from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay, QuarantineLedger
from mlops_assets_tests.helpers import WebhookReceiver, mlops

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)


def onboard(tenant_id: str) -> None:
    """The fact the onboarding sensor waits for: a production decision of the tenant."""
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("production_model", partition=f"{YESTERDAY - timedelta(days=7)}|{tenant_id}")
        )


def predicted(warehouse_url: str, tenant_id: str, day: date) -> None:
    summary = {"customers": 0, "mean_probability": 0.0, "band_counts": {"high": 0, "medium": 0, "low": 0},
               "histogram": [], "model_name": f"repurchase-{tenant_id}", "model_version": "1",
               "model_kind": "lightgbm", "model_metrics": {}}  # fmt: skip
    write_partition(warehouse_url, tenant_id, day, pd.DataFrame(columns=PREDICTION_COLUMNS), summary, "run-x")


def add_file_tenant(home, tenant_id: str) -> None:
    added = mlops("tenants", "add", tenant_id, "--source", "file", "--path", str(home / f"{tenant_id}-missing.csv"))
    assert added.exit_code == 0, added.output


def test_status_shows_each_state_and_alerts_by_exit_code(mlops_home):
    warehouse = f"sqlite:///{mlops_home / 'warehouse.db'}"
    for tenant_id in ("broken", "fine", "newbie", "sleepy", "stalled"):
        add_file_tenant(mlops_home, tenant_id)
    assert mlops("tenants", "pause", "sleepy").exit_code == 0
    for tenant_id in ("broken", "fine", "stalled"):
        onboard(tenant_id)
    predicted(warehouse, "fine", YESTERDAY)
    predicted(warehouse, "stalled", YESTERDAY - timedelta(days=4))
    assert mlops("ingest", "--tenant", "broken").exit_code == 2  # its export is missing: the run fails
    ledger = QuarantineLedger(warehouse)
    ledger.record(IngestionDay("fine", "raw_orders", YESTERDAY, 500, 488, {"extreme_outlier": 10, "invalid_record": 2}))
    ledger.record(IngestionDay("stalled", "raw_orders", YESTERDAY - timedelta(days=4), 100, 60, {"invalid_record": 40}))

    result = mlops("status", "--json")
    assert result.exit_code == 1, result.output
    states = {row["tenant_id"]: row for row in map(json.loads, result.output.splitlines())}
    assert {tenant_id: row["state"] for tenant_id, row in states.items()} == {
        "broken": "failing", "fine": "healthy", "newbie": "onboarding", "sleepy": "paused", "stalled": "stale",
    }  # fmt: skip
    assert states["newbie"]["step"] == "history" and states["fine"]["as_of"] == YESTERDAY.isoformat()
    assert states["stalled"]["since"] == (YESTERDAY - timedelta(days=3)).isoformat()
    broken = states["broken"]
    assert broken["attempts"] == 1 and "broken-missing.csv" in broken["reason"], broken
    # The tenant's own cause, as the run's verdict records it per tenant.
    assert broken["reason"].startswith(
        f"ingestion run failed: raw_customers {YESTERDAY.isoformat()}|broken: tenant broken"
    ), broken
    assert states["fine"]["quarantine"]["summary"] == (
        "12 quarantined in 7 days (2.4% of 500): 10 extreme_outlier, 2 invalid_record"
    )
    assert states["newbie"]["quarantine"] == {
        "days": 7, "rows_read": 0, "quarantined": 0, "by_reason": {}, "summary": "nothing ingested in 7 days",
        "spike": None,
    }  # fmt: skip
    spike = states["stalled"]["quarantine"]["spike"]
    assert spike["share"] == 0.4 and spike["day"] == (YESTERDAY - timedelta(days=4)).isoformat(), spike
    table = mlops("status").output
    assert "1 of 5 tenants healthy; quarantine spikes: stalled" in table, table
    assert "quarantine spike on" in table.split("stalled")[2], "the spike is in the tenant's detail"

    listed = [json.loads(line) for line in mlops("tenants", "list", "--json").output.splitlines()]
    assert [(row["tenant_id"], row["status"], row["state"]) for row in listed][2:4] == [
        ("newbie", "active", "onboarding"), ("sleepy", "paused", "paused"),
    ]  # fmt: skip
    assert listed[1]["quarantine"]["by_reason"] == {"extreme_outlier": 10, "invalid_record": 2}
    assert "state" in mlops("tenants", "list").output.splitlines()[1]

    for tenant_id in ("broken", "newbie", "stalled"):
        assert mlops("tenants", "remove", tenant_id).exit_code == 0
    assert mlops("status").exit_code == 0  # healthy and paused tenants only


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def stale_acme(mlops_home, webhook):
    """A stale tenant, and `tick(cursor)`: one evaluation of the health sensor posting to the webhook receiver."""
    from mlops_assets.automation.health import fleet_health_sensor
    from mlops_assets.resources import TenantRegistryResource, WebhookResource

    warehouse = f"sqlite:///{mlops_home / 'warehouse.db'}"
    add_file_tenant(mlops_home, "acme")
    onboard("acme")
    predicted(warehouse, "acme", YESTERDAY - timedelta(days=3))
    resources = {
        "tenants": TenantRegistryResource(warehouse_url=warehouse),
        "webhook": WebhookResource(url=webhook.url),
    }

    def tick(cursor):
        with dg.DagsterInstance.get() as instance:
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            return fleet_health_sensor(context).cursor

    return warehouse, tick


def test_the_health_sensor_alerts_once_per_state_change_and_quarantine_spike(stale_acme, webhook):
    warehouse, tick = stale_acme
    cursor = tick(None)
    assert json.loads(cursor) == {"states": {"acme": "stale"}, "spiking": []}
    assert [(e["kind"], e["tenant_id"]) for e in webhook.events] == [("stale", "acme")]
    assert tick(cursor) == cursor and len(webhook.events) == 1  # unchanged: quiet
    predicted(warehouse, "acme", YESTERDAY)
    cursor = tick(cursor)
    assert [e["kind"] for e in webhook.events] == ["stale", "recovered"]
    assert json.loads(cursor)["states"] == {"acme": "healthy"}
    tick(cursor)
    assert len(webhook.events) == 2

    ledger, usual = QuarantineLedger(warehouse), {"invalid_record": 1}
    for days_ago in range(2, 12):
        ledger.record(IngestionDay("acme", "raw_orders", YESTERDAY - timedelta(days=days_ago), 200, 199, usual))
    ledger.record(IngestionDay("acme", "raw_orders", YESTERDAY, 200, 150, {"extreme_outlier": 45, "invalid_record": 5}))
    cursor = tick(cursor)
    assert [e["kind"] for e in webhook.events][2:] == ["quarantine_spike"] and json.loads(cursor)["spiking"] == ["acme"]
    spike = webhook.events[2]
    assert f"quarantine spike on {YESTERDAY}: 50 of 200 records (25.0%, usual 0.5%)" in spike["message"], spike
    assert spike["details"]["spike"]["by_reason"] == {"extreme_outlier": 45, "invalid_record": 5}
    assert tick(cursor) == cursor and len(webhook.events) == 3  # the spike lasts: quiet
    ledger.record(IngestionDay("acme", "raw_orders", YESTERDAY, 200, 199, usual))  # the day ingested again, clean
    cursor = tick(cursor)
    assert [e["kind"] for e in webhook.events][3:] == ["quarantine_normal"] and json.loads(cursor)["spiking"] == []


def test_a_cursor_from_before_quarantine_alerts_is_still_remembered(stale_acme, webhook):
    _, tick = stale_acme
    assert json.loads(tick('{"acme": "stale"}'))["states"] == {"acme": "stale"}
    assert webhook.events == []
