"""The operator's CLI, run as a user would: in-process for registry commands, as processes for servers."""

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import requests

from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay, QuarantineLedger
from mlops_assets.sim.shops import ShopSpec, SyntheticShop, transaction_export
from mlops_assets_tests.helpers import customer_orders, free_port, mlops, wait_until


def partitions(home):
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    with dg.DagsterInstance.get() as instance:
        return sorted(instance.get_dynamic_partitions("tenants"))


def test_tenants_add_list_remove(mlops_home, monkeypatch):
    monkeypatch.setenv("ACME_TOKEN", "shpat_do_not_print")
    added = mlops(
        "tenants",
        "add",
        "acme",
        "--source",
        "shopify",
        "--shop-url",
        "https://acme.myshopify.com",
        "--token-env",
        "ACME_TOKEN",
        "--timezone",
        "Europe/Berlin",
        "--currency",
        "eur",
        "--horizon-days",
        "45",
    )
    assert added.exit_code == 0, added.output
    assert partitions(mlops_home) == ["acme"]
    listed = json.loads(mlops("tenants", "list", "--json").output)
    assert listed["source_settings"]["token_env"] == "ACME_TOKEN" and listed["currency"] == "EUR"
    assert "shpat_do_not_print" not in mlops("tenants", "list").output + mlops("tenants", "list", "--json").output
    tuned = mlops("tenants", "monitoring", "acme", "cooldown_days=3", "auc_floor=0.55")
    assert tuned.exit_code == 0 and json.loads(mlops("tenants", "list", "--json").output)["monitoring"] == {
        "cooldown_days": 3, "auc_floor": 0.55
    }  # fmt: skip
    refused = mlops("tenants", "monitoring", "acme", "cooldown=3")
    assert refused.exit_code == 2 and "tenant acme: unknown monitoring setting 'cooldown'" in refused.output
    assert "tenant" not in mlops("tenants", "monitoring", "acme", "--reset").output.split("cooldown_days")[1][:40]
    assert mlops("tenants", "pause", "acme").exit_code == 0
    assert json.loads(mlops("tenants", "list", "--json").output)["status"] == "paused"
    assert mlops("tenants", "remove", "acme").exit_code == 0
    assert partitions(mlops_home) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["a|b", "--source", "file", "--path", "x.csv"], "invalid tenant id"),
        (["acme", "--source", "shopify", "--shop-url", "https://a.myshopify.com"], "--token-env"),
        (["acme", "--source", "ftp"], "--source"),
        (["acme", "--source", "file", "--path", "x.csv", "--timezone", "Moon/Base"], "timezone"),
        (["acme", "--source", "file", "--path", "x.csv", "--column", "timestamp"], "FIELD=COLUMN"),
    ],
)
def test_bad_input_exits_2_with_a_fix(mlops_home, args, message):
    result = mlops("tenants", "add", *args)
    assert result.exit_code == 2 and message in result.output


def test_ingest_a_file_tenant_then_purge(mlops_home):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    shop = SyntheticShop(ShopSpec("umbrella", customers=300, seed=3, end=yesterday, history_days=60))
    export = mlops_home / "umbrella.csv"
    mlops_home.mkdir(exist_ok=True)
    transaction_export(shop).to_csv(export, index=False)
    assert mlops("tenants", "add", "umbrella", "--source", "file", "--path", str(export)).exit_code == 0
    first = (yesterday - timedelta(days=2)).isoformat()
    result = mlops("ingest", "--from", first, "--to", yesterday.isoformat())
    assert result.exit_code == 0, result.output
    lake_dir = mlops_home / "lake" / "raw_orders" / "tenant=umbrella"
    assert sorted(p.name for p in lake_dir.iterdir()) == [
        f"date={(yesterday - timedelta(days=k)).isoformat()}" for k in (2, 1, 0)
    ]
    assert "raw_orders.currency_matches_tenant" in result.output
    warehouse = f"sqlite:///{mlops_home / 'warehouse.db'}"
    ledger = QuarantineLedger(warehouse)
    ledger.record(IngestionDay("umbrella", "raw_orders", yesterday, 5, 4, {"extreme_outlier": 1}))
    ledger.release("umbrella", "1001", "extreme_outlier", "ops")
    held = len(customer_orders(warehouse, "umbrella"))
    assert held > 0, "the ingested days' orders are in the warehouse"
    purged = mlops("tenants", "remove", "umbrella", "--purge")
    assert purged.exit_code == 0 and not lake_dir.exists()
    assert f"its {held} customer orders" in purged.output and customer_orders(warehouse, "umbrella") == {}
    assert ledger.days("umbrella") == [] and ledger.releases("umbrella") == [], "the ledger forgot the tenant"


def test_shop_emulator_serves_until_sigterm(mlops_home):
    port = free_port()
    env = {**os.environ, "MLOPS_EMULATOR_TOKEN": "shpat_cli_test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_assets.cli",
            "shop-emulator",
            "--port",
            str(port),
            "--shop",
            "tiny:150:1",
            "--error-rate",
            "0.0",
            "--end-date",
            "2026-06-30",
            "--scenario",
            "currency_switch@2026-06-01",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/shops/tiny/admin/api/2025-01/customers.json"

    def answers():
        try:
            return requests.get(url, headers={"X-Shopify-Access-Token": "shpat_cli_test"}, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        assert wait_until(answers, timeout=60), process.stdout.read1().decode() if process.poll() is not None else ""
        assert requests.get(url, headers={"X-Shopify-Access-Token": "wrong"}, timeout=2).status_code == 401
        orders = url.replace("customers.json", "orders.json")
        for bound, currency in (("created_at_max", "USD"), ("created_at_min", "JPY")):
            page = requests.get(
                orders,
                params={"status": "any", "limit": 250, bound: "2026-06-01T00:00:00Z"},
                headers={"X-Shopify-Access-Token": "shpat_cli_test"},
                timeout=5,
            ).json()["orders"]
            assert page and {order["currency"] for order in page} == {currency}, "the scenario switched the currency"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0
    unknown = mlops("shop-emulator", "--scenario", "meteor_strike")
    assert unknown.exit_code == 2 and "fix: one of channel_flip" in unknown.output


def test_demo_reset_never_deletes_a_store_outside_mlops_home(mlops_home, monkeypatch, tmp_path):
    """`mlops demo --reset` deletes local state only; a warehouse configured elsewhere makes it refuse."""
    (mlops_home / "lake").mkdir()
    elsewhere = tmp_path / "shared-warehouse.db"
    monkeypatch.setenv("MLOPS_WAREHOUSE_URL", f"sqlite:///{elsewhere}")
    refused = mlops("demo", "--reset", "--port", str(free_port()))
    assert refused.exit_code == 2
    assert "MLOPS_WAREHOUSE_URL points elsewhere" in " ".join(refused.output.split())
    assert (mlops_home / "lake").exists(), "nothing was deleted"


def test_db_upgrade_creates_then_keeps_the_warehouse_schema(mlops_home):
    from mlops_assets.core.warehouse.schema import head_revision

    first = mlops("db", "upgrade")
    assert first.exit_code == 0 and f"empty -> {head_revision()}" in first.output
    again = mlops("db", "upgrade")
    assert again.exit_code == 0 and f"already at revision {head_revision()}" in again.output


def test_a_blocked_tenant_is_named_with_its_gate_and_fix_without_a_stack_trace(mlops_home):
    """An export whose job flipped every amount's sign: no row is a usable order (and none is a refund of one),
    so the tenant is blocked, onboarding and daily ingestion alike, and the CLI says which gate and what to do."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    shop = SyntheticShop(ShopSpec("flipped", customers=200, seed=5, end=yesterday, history_days=60))
    export = transaction_export(shop)
    export["amount"] = -export["amount"].abs() - 1
    path = mlops_home / "flipped.csv"
    mlops_home.mkdir(exist_ok=True)
    export.to_csv(path, index=False)
    assert mlops("tenants", "add", "flipped", "--source", "file", "--path", str(path)).exit_code == 0
    for command, blocked in (
        (("backfill", "flipped", "--from", yesterday.isoformat()), "raw_orders_history flipped blocked by gate"),
        (("ingest", "--tenant", "flipped", "--resource", "orders"), f"raw_orders {yesterday}|flipped blocked by gate"),
    ):
        result = mlops(*command)
        output = " ".join(result.output.split())
        assert result.exit_code == 2, output
        assert "tenant flipped is blocked:" in output and blocked in output, output
        assert "(fix:" in output.split(blocked)[1], output
        assert "Stack Trace" not in output and "Traceback" not in output, output
