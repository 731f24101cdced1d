"""Fleet health on a real Dagster instance and warehouse: `mlops status`, the STATE of `mlops tenants list`, and
the health sensor's webhook events (once per state change)."""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.warehouse.engine import PREDICTION_COLUMNS
from mlops_assets.core.warehouse.prediction_store import write_partition
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
    assert "1 of 5 tenants healthy" in mlops("status").output

    listed = [json.loads(line) for line in mlops("tenants", "list", "--json").output.splitlines()]
    assert [(row["tenant_id"], row["status"], row["state"]) for row in listed][2:4] == [
        ("newbie", "active", "onboarding"), ("sleepy", "paused", "paused"),
    ]  # fmt: skip
    assert "state" in mlops("tenants", "list").output.splitlines()[1]

    for tenant_id in ("broken", "newbie", "stalled"):
        assert mlops("tenants", "remove", tenant_id).exit_code == 0
    assert mlops("status").exit_code == 0  # healthy and paused tenants only


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


def test_the_health_sensor_alerts_once_per_state_change(mlops_home, webhook):
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

    cursor = tick(None)
    assert json.loads(cursor) == {"acme": "stale"}
    assert [(e["kind"], e["tenant_id"]) for e in webhook.events] == [("stale", "acme")]
    assert tick(cursor) == cursor and len(webhook.events) == 1  # unchanged: quiet
    predicted(warehouse, "acme", YESTERDAY)
    cursor = tick(cursor)
    assert [e["kind"] for e in webhook.events] == ["stale", "recovered"] and json.loads(cursor) == {"acme": "healthy"}
    tick(cursor)
    assert len(webhook.events) == 2
