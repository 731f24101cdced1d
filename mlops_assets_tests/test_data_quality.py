"""Issue 20 end to end: dirty data onboards with every bad row accounted for and no outlier in training.

A file tenant's export holds 4,000 ordinary orders and the dirt real exports carry; a Shopify tenant is
served by the emulator with malformed records and fat-finger orders. Both onboard (history sweep, the
window's days, features) through Dagster, the lake, the quarantine and the warehouse's ledger.
"""

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.lake import files as lake
from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, file_settings, shopify_settings
from mlops_assets.core.warehouse.quarantine_ledger import QuarantineLedger
from mlops_assets.definitions import defs
from mlops_assets.features import build_assets as feature_assets
from mlops_assets.ingestion import build_assets as ingestion_assets
from mlops_assets.io_managers import LakeIOManager
from mlops_assets.isolation import run_verdict
from mlops_assets.partitions import TENANTS, TenantDayPartitions
from mlops_assets.resources import LakeResource, ShopApiResource, TenantRegistryResource
from mlops_assets.sim.shop_emulator import Faults
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

PARTITIONS = TenantDayPartitions.of(defs())
RAW, RAW_CUSTOMERS, HISTORY, HISTORY_CUSTOMERS = ingestion_assets(PARTITIONS)
FEATURES = feature_assets(PARTITIONS)[0]
FIRST, LAST = PARTITIONS.first_day, PARTITIONS.last_day
ZONE = "Europe/Berlin"
FAT, REFUNDED = "O-FAT", "O-R1"


def _dirty_export(path) -> int:
    """4,000 ordinary orders over 400 days and the issue's dirt; returns the number of data rows."""
    rng = np.random.default_rng(20)
    n = 4000
    start = datetime.combine(LAST - timedelta(days=400), datetime.min.time())
    stamps = [start + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 400 * 24 * 60, n))]
    ordinary = pd.DataFrame(
        {
            "order_id": [f"O-{k:05d}" for k in range(n)],
            "customer_id": [f"C-{k:04d}" for k in rng.integers(0, 800, n)],
            "timestamp": [s.strftime("%Y-%m-%d %H:%M:%S") for s in stamps],
            "amount": np.round(np.exp(rng.normal(np.log(25), 0.6, n)), 2).astype(str),
        }
    )
    day = (LAST - timedelta(days=200)).isoformat()
    refund_day, future = (LAST - timedelta(days=197)).isoformat(), (LAST + timedelta(days=5 * 365)).isoformat()
    dirt = [
        f"O-FAT-1,C-FAT,{day} 09:00:00,20.00", f"O-FAT-2,C-FAT,{day} 10:00:00,30.00",
        f"O-FAT-3,C-FAT,{day} 11:00:00,40.00", f"{FAT},C-FAT,{day} 12:00:00,99999999",
        f"{REFUNDED},C-REFUND,{day} 13:00:00,80.00", f"R-1,C-REFUND,{refund_day} 10:00:00,-50",
        f"R-2,C-NOBODY,{refund_day} 11:00:00,-30", f"O-FUTURE,C-0001,{future} 10:00:00,25.00",
        "O-NODATE,C-0002,not a date,25.00", f"O-TEXT,C-0003,{day} 14:00:00,12,50 EUR",
        f"O-NOCUST,,{day} 15:00:00,25.00", "O-SHORT,C-0004",
    ]  # fmt: skip
    text = ordinary.to_csv(index=False) + "\n".join(dirt) + "\n"
    path.write_text(text.replace("12,50 EUR", '"12,50 EUR"'))
    return n + len(dirt)


def _resources(warehouse_url, lake_url):
    config = {"url": lake_url, "s3_endpoint_url": None}
    return {
        "lake": LakeResource(**config),
        "lake_io_manager": LakeIOManager(**config),
        "tenants": TenantRegistryResource(warehouse_url=warehouse_url),
        "shop_api": ShopApiResource(leak_per_s=1000.0, page_limit=250),
    }


def _materializations(result) -> dict[tuple[str, str], dict]:
    return {
        (m.asset_key.path[-1], m.partition): {k: v.value for k, v in m.metadata.items()}
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }


def _onboard(instance, resources, tenant_id, history=True) -> dict[tuple[str, str], dict]:
    """The onboarding sensor's steps: history sweep, the window's days, features of the last day."""
    found = {}
    if history:
        swept = dg.materialize([HISTORY, HISTORY_CUSTOMERS], instance=instance, resources=resources,
                               partition_key=tenant_id)  # fmt: skip
        assert swept.success
        found.update(_materializations(swept))
    days = dg.materialize(
        [RAW, RAW_CUSTOMERS, run_verdict([RAW.key, RAW_CUSTOMERS.key])],
        instance=instance,
        resources=resources,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{FIRST.isoformat()}|{tenant_id}",
            ASSET_PARTITION_RANGE_END_TAG: f"{LAST.isoformat()}|{tenant_id}",
        },
    )
    features = dg.materialize([FEATURES], instance=instance, resources=resources,
                              partition_key=f"{LAST.isoformat()}|{tenant_id}")  # fmt: skip
    assert days.success and features.success
    return {**found, **_materializations(days)}


def _checks(result_events, asset) -> dict:
    return {e.check_name: e for e in result_events if e.asset_key.path[-1] == asset}


def _assert_balanced(found: dict, ledger: QuarantineLedger, tenant_id: str):
    """Every partition's metadata balances and the ledger holds the same counts."""
    by_day = {(row["asset"], row["day"]): row for row in ledger.days(tenant_id)}
    for (asset, key), meta in found.items():
        assert meta["rows_read"] == meta["rows"] + meta["quarantined"], (asset, key, meta)
        assert sum(meta["quarantined_by_reason"].values()) == meta["quarantined"]
        if asset.endswith("_history"):
            rows = [row for (a, _), row in by_day.items() if a == asset]
        else:
            rows = [by_day[(asset, datetime.strptime(key.split("|")[0], "%Y-%m-%d").date())]]
        assert sum(row["rows_read"] for row in rows) == meta["rows_read"], (asset, key)
        assert sum(row["quarantined"] for row in rows) == meta["quarantined"], (asset, key)


@pytest.fixture
def file_tenant(tmp_path):
    export = tmp_path / "export.csv"
    rows = _dirty_export(export)
    warehouse_url, lake_url = f"sqlite:///{tmp_path / 'w.db'}", str(tmp_path / "lake")
    TenantRegistry(warehouse_url).upsert(Tenant("dirty", "Dirty", "file", file_settings(str(export)), ZONE, "EUR"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["dirty"])
    return {"rows": rows, "instance": instance, "resources": _resources(warehouse_url, lake_url),
            "ledger": QuarantineLedger(warehouse_url), "root": lake.lake_root(lake_url)}  # fmt: skip


def _features(root, tenant_id):
    return lake.read_frame(lake.partition_path(root, "customer_features", tenant_id, LAST)).set_index("customer_id")


def test_a_dirty_export_onboards_with_every_row_accounted_for_and_no_outlier_in_features(file_tenant):
    root, ledger = file_tenant["root"], file_tenant["ledger"]
    found = _onboard(file_tenant["instance"], file_tenant["resources"], "dirty")

    orders = read_orders(history_files(root, "dirty"))
    assert FAT not in set(orders["order_id"]) and (orders["total_price"] >= 0).all()
    refunded = orders[orders["order_id"] == REFUNDED].sort_values("updated_at")
    assert list(refunded["total_refunded"]) == [0.0, 50.0], "the refund is a new version of the customer's order"
    features = _features(root, "dirty")
    assert features.loc["C-FAT", "monetary_total"] == pytest.approx(90.0), "the fat-finger order reached no feature"
    assert features.loc["C-REFUND", "monetary_total"] == pytest.approx(30.0)
    assert features["monetary_max"].max() < 1000

    sweep = found[("raw_orders_history", "dirty")]
    quarantine = lake.read_frame(lake.tenant_dir(root / lake.QUARANTINE, "raw_orders_history", "dirty") / "sweep"
                                 / lake.PART_FILE).set_index("record_id")  # fmt: skip
    assert quarantine.loc[FAT, "reason"] == "extreme_outlier" and "fix" in quarantine.loc[FAT, "error"]
    assert quarantine.loc["R-2", "reason"] == "unmatched_refund"
    assert quarantine.loc["O-FUTURE", "reason"] == "future_timestamp"
    assert sweep["quarantined_by_reason"] == {
        "extreme_outlier": 1, "future_timestamp": 1, "invalid_record": 2, "unmatched_refund": 1,
        "unreadable_timestamp": 2,
    }  # fmt: skip
    assert sweep["out_of_window"] == 3
    _assert_balanced(found, ledger, "dirty")
    order_partitions = [meta for (asset, _), meta in found.items() if asset in ("raw_orders", "raw_orders_history")]
    assert sum(meta["rows_read"] + meta["superseded"] for meta in order_partitions) == file_tenant["rows"]
    ledger_rows = [row for row in ledger.days("dirty") if row["asset"] in ("raw_orders", "raw_orders_history")]
    assert sum(row["rows_read"] for row in ledger_rows) == file_tenant["rows"], "nothing silently dropped"


def test_a_released_order_is_kept_on_the_next_run_and_reaches_features(file_tenant):
    root, ledger = file_tenant["root"], file_tenant["ledger"]
    _onboard(file_tenant["instance"], file_tenant["resources"], "dirty")
    assert ledger.release("dirty", FAT, "extreme_outlier", "ops@example.com", "confirmed with the shop")
    found = _onboard(file_tenant["instance"], file_tenant["resources"], "dirty")
    assert FAT in set(read_orders(history_files(root, "dirty"))["order_id"])
    assert _features(root, "dirty").loc["C-FAT", "monetary_total"] == pytest.approx(99_999_999 + 90.0)
    assert "extreme_outlier" not in found[("raw_orders_history", "dirty")]["quarantined_by_reason"]
    _assert_balanced(found, ledger, "dirty")


def test_a_shopify_tenant_with_malformed_and_fat_finger_orders_onboards(tmp_path, emulator_factory, monkeypatch):
    shop = SyntheticShop(ShopSpec("acme", customers=600, seed=5, end=LAST, history_days=150, timezone=ZONE,
                                  currency="EUR"))  # fmt: skip
    faults = Faults(malformed_record_rate=0.02, outlier_order_rate=0.01, seed=11)
    emulator = emulator_factory({"acme": shop}, faults=faults, bucket=(400, 1000.0))
    monkeypatch.setenv("SHOP_TOKEN", "shpat_test_token")
    warehouse_url, lake_url = f"sqlite:///{tmp_path / 'w.db'}", str(tmp_path / "lake")
    settings = shopify_settings(emulator.shop_url("acme"), "SHOP_TOKEN")
    TenantRegistry(warehouse_url).upsert(Tenant("acme", "Acme", "shopify", settings, ZONE, "EUR"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["acme"])
    found = _onboard(instance, _resources(warehouse_url, lake_url), "acme")

    ids = shop.orders["order_id"].astype(int)
    fat = {str(i) for i in ids if faults.picks("outlier", 0.01, i) and not faults.picks("malformed", 0.02, i)}
    assert len(fat) >= 5
    root = lake.lake_root(lake_url)
    stored = set(read_orders(history_files(root, "acme"))["order_id"])
    assert not fat & stored and len(stored) > 800
    quarantined = pd.concat([
        lake.read_frame(path) for path in (root / lake.QUARANTINE).rglob(lake.PART_FILE) if "raw_orders" in str(path)
    ])  # fmt: skip
    assert set(quarantined.loc[quarantined["reason"] == "extreme_outlier", "record_id"]) == fat
    assert (quarantined.loc[quarantined["reason"] != "extreme_outlier", "reason"] == "invalid_record").all()
    assert _features(root, "acme")["monetary_max"].max() < 1000
    _assert_balanced(found, QuarantineLedger(warehouse_url), "acme")
    for (asset, _), meta in found.items():
        if asset.startswith("raw_orders"):
            assert meta["rows_read"] + meta["superseded"] == meta["api_records"], "every record the API returned"
