"""Per-tenant failure isolation inside one batched run (issue 15), over real components: the shop emulator
over HTTP, a Dagster instance, the lake, an MLflow registry and the warehouse.

One run covers several tenants; one has a revoked token, one a day whose orders were all keyed in as
negative amounts (a bad order is quarantined; a day of them is unusable), one a production model whose
artifact is missing. The healthy tenants are written; each failing tenant-day is
FAILED with its cause; after the fault is fixed a re-run completes it, equal to a clean run.
"""

import copy
from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pytest

from mlops_assets.automation.attempts import RunFailures
from mlops_assets.automation.health import fleet_states
from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.lake import files as lake
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, shopify_settings
from mlops_assets.core.tenants.retries import FailureKind
from mlops_assets.definitions import defs
from mlops_assets.features import build_assets as feature_assets
from mlops_assets.ingestion import raw_asset
from mlops_assets.io_managers import LakeIOManager, WarehouseIOManager
from mlops_assets.isolation import run_verdict
from mlops_assets.partitions import TENANTS, TenantDayPartitions
from mlops_assets.predictions import build_assets as prediction_assets
from mlops_assets.resources import (
    LakeResource,
    ModelPolicyResource,
    ModelRegistryResource,
    ShopApiResource,
    TenantRegistryResource,
)
from mlops_assets.sim.shops import ShopSpec, SyntheticShop
from mlops_assets_tests.helpers import SERVED_TENANT, TEST_END, lake_digests, write_history

PARTITIONS = TenantDayPartitions.of(defs())
LAST = PARTITIONS.last_day
DAYS = [LAST - timedelta(days=1), LAST]
TENANT_IDS = ["acme", "globex", "initech"]  # acme: revoked token; globex: a day of negative amounts; initech: fine
INGESTED = [raw_asset(resource, PARTITIONS) for resource in ("orders", "customers")]
FEATURES = feature_assets(PARTITIONS)
# The served model's snapshot is of TEST_END: a window that holds it.
SERVED_WINDOW = TenantDayPartitions.for_window(7, today=TEST_END + timedelta(days=1))


def _keys(tenants, days):
    return [f"{day.isoformat()}|{tenant}" for day in days for tenant in tenants]


def _status(instance, asset, keys, partitions=PARTITIONS) -> dict[str, str]:
    found = instance.get_status_by_partition(dg.AssetKey(asset), keys, partitions.tenant_day)
    return {key: status.value for key, status in found.items()}


def _verdict_failure(result) -> str:
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "run_verdict", failure.step_key
    return failure.step_failure_data.user_failure_data.description


@pytest.fixture(scope="module")
def shops():
    def shop(tenant_id, seed):
        return SyntheticShop(ShopSpec(tenant_id, customers=300, seed=seed, end=LAST, history_days=90))

    return {tenant_id: shop(tenant_id, seed) for seed, tenant_id in enumerate(TENANT_IDS, start=1)}


def _fat_fingered(shop: SyntheticShop) -> SyntheticShop:
    """The shop with every order of the last day keyed in with a negative amount."""
    broken = copy.deepcopy(shop)
    day_orders = broken.orders.index[broken.orders["updated_at"].dt.date == LAST]
    assert len(day_orders) >= 10, "fewer would be record faults, quarantined without blocking"
    broken.orders.loc[day_orders, "total_price"] = -broken.orders.loc[day_orders, "total_price"]
    return broken


def _ingest(instance, warehouse_url, lake_url, assets, tenants=TENANT_IDS):
    """One run over the rectangle of tenants x DAYS, as a single-run backfill executes it."""
    config = {"url": lake_url, "s3_endpoint_url": None}
    return dg.materialize(
        [*assets, run_verdict(asset.key for asset in assets)],
        instance=instance,
        resources={
            "lake": LakeResource(**config),
            "lake_io_manager": LakeIOManager(**config),
            "tenants": TenantRegistryResource(warehouse_url=warehouse_url),
            "shop_api": ShopApiResource(leak_per_s=1000.0, page_limit=100),
        },
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{DAYS[0].isoformat()}|{tenants[0]}",
            ASSET_PARTITION_RANGE_END_TAG: f"{DAYS[-1].isoformat()}|{tenants[-1]}",
        },
        raise_on_error=False,
    )


def _register(warehouse_url, urls: dict[str, str]):
    registry = TenantRegistry(warehouse_url)
    for tenant_id, url in urls.items():
        token_env = "ACME_TOKEN" if tenant_id == "acme" else "SHOP_TOKEN"
        registry.upsert(Tenant(tenant_id, tenant_id.title(), "shopify", shopify_settings(url, token_env)))


def _lake(tmp_path, name, shops):
    url = str(tmp_path / name)
    for tenant_id, shop in shops.items():
        write_history(lake.lake_root(url), tenant_id, shop)
    return url


def test_a_revoked_token_and_a_failed_gate_fail_only_their_tenant_days_and_heal_after_the_fix(
    tmp_path, shops, emulator_factory, monkeypatch
):
    monkeypatch.setenv("SHOP_TOKEN", "shpat_test_token")
    monkeypatch.setenv("ACME_TOKEN", "shpat_revoked")
    faulty = emulator_factory({**shops, "globex": _fat_fingered(shops["globex"])}, bucket=(400, 1000.0))
    fixed = emulator_factory(shops, bucket=(400, 1000.0))
    warehouse_url, lake_url = f"sqlite:///{tmp_path / 'w.db'}", _lake(tmp_path, "lake", shops)
    _register(warehouse_url, {tenant_id: faulty.shop_url(tenant_id) for tenant_id in TENANT_IDS})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, TENANT_IDS)
    assets = [*INGESTED, *FEATURES]

    result = _ingest(instance, warehouse_url, lake_url, assets)
    assert not result.success
    healthy, acme = _keys(["initech"], DAYS), _keys(["acme"], DAYS)
    globex_fine, globex_broken = f"{DAYS[0].isoformat()}|globex", f"{LAST.isoformat()}|globex"
    for asset in ("raw_orders", "raw_customers", "customer_features"):
        status = _status(instance, asset, _keys(TENANT_IDS, DAYS))
        assert {status[key] for key in healthy + [globex_fine]} == {"MATERIALIZED"}, (asset, status)
        assert {status[key] for key in acme} == {"FAILED"}, (asset, status)
    assert _status(instance, "raw_orders", [globex_broken]) == {globex_broken: "FAILED"}
    assert _status(instance, "raw_customers", [globex_broken]) == {globex_broken: "MATERIALIZED"}
    assert _status(instance, "customer_features", [globex_broken]) == {globex_broken: "FAILED"}
    assert not (lake.lake_root(lake_url) / "raw_orders" / "tenant=acme").exists()

    reason = _verdict_failure(result)
    assert reason.startswith(f"3 tenant-days failed ({acme[0]}, {acme[1]}, {globex_broken}); raw_customers {acme[0]}")
    assert f"raw_orders {acme[0]}: tenant acme" in reason and "401" in reason, reason
    assert (
        f"raw_orders {globex_broken}: tenant globex {globex_broken}: blocking gate failed: usable_partition" in reason
    )
    assert "negative_amount: a negative amount that is not a refund (fix: check the order in the shop)" in reason
    assert reason.endswith("; 3 downstream partitions skipped"), reason
    assert "initech" not in reason
    # The cause is on the partition itself, where the UI shows a tenant-day's events.
    observed = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_orders"), asset_partitions=[acme[0]]), limit=1
    ).records[0]
    assert "401" in observed.asset_observation.metadata["failure"].value
    skipped = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("customer_features"), asset_partitions=[globex_broken]), limit=1
    ).records[0]
    assert "upstream `raw_orders` failed" in skipped.asset_observation.metadata["failure"].value
    failures, run = RunFailures(instance), instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))[0]
    assert failures.of(run, "acme").kind is FailureKind.PERMANENT
    assert failures.of(run, "globex").kind is FailureKind.TRANSIENT
    # Fleet health names the failing tenants only; the healthy one is not failing for sharing their run.
    states = {state.tenant_id: state for state in fleet_states(instance, TenantRegistry(warehouse_url), warehouse_url)}
    assert states["acme"].state == "needs_attention" and "401" in states["acme"].reason, states["acme"]  # permanent
    assert states["globex"].state == "failing" and states["globex"].next_retry is not None, states["globex"]
    # Each names its own cause, not the first one of the run's verdict.
    assert "usable_partition" in states["globex"].reason and "401" not in states["globex"].reason, states
    assert states["initech"].state not in ("failing", "needs_attention"), states["initech"]

    # The fix: a new token for acme, globex's order corrected at the source; a re-run completes both.
    monkeypatch.setenv("ACME_TOKEN", "shpat_test_token")
    _register(warehouse_url, {tenant_id: fixed.shop_url(tenant_id) for tenant_id in TENANT_IDS})
    assert _ingest(instance, warehouse_url, lake_url, assets).success
    for asset in ("raw_orders", "raw_customers", "customer_features"):
        assert set(_status(instance, asset, _keys(TENANT_IDS, DAYS)).values()) == {"MATERIALIZED"}

    clean_url = _lake(tmp_path, "clean", shops)
    clean = dg.DagsterInstance.ephemeral()
    clean.add_dynamic_partitions(TENANTS, TENANT_IDS)
    assert _ingest(clean, warehouse_url, clean_url, assets).success

    def stored(url):  # the lake's data; `_compacted/` is a read cache, checked against the files it covers
        return {k: v for k, v in lake_digests({"url": url, "s3_endpoint_url": None}).items() if "_compacted" not in k}

    healed = stored(lake_url)
    assert healed == stored(clean_url)
    assert any("customer_features/tenant=acme" in path for path in healed)


def _serve(served, tenant_id, source=None) -> str:
    """`tenant_id` served by a copy of the served tenant's production model (or a version at `source`)."""
    from mlops_assets.core.ml.tracking import PRODUCTION, model_name

    registry = served["registry"]
    model = registry.client.get_model_version_by_alias(model_name(SERVED_TENANT), PRODUCTION)
    if not registry.client.search_registered_models(f"name = '{model_name(tenant_id)}'"):
        registry.client.create_registered_model(model_name(tenant_id))
    version = registry.client.create_model_version(model_name(tenant_id), source or model.source, model.run_id)
    registry.set_alias(tenant_id, PRODUCTION, version.version)
    return version.version


def _snapshot_file(lake_url, tenant_id):
    return lake.partition_path(lake.lake_root(lake_url), "customer_features", tenant_id, TEST_END)


def _write_snapshot(served, lake_url, tenant_id):
    snapshot = served["snapshot"]
    lake.write_frame(
        _snapshot_file(lake_url, tenant_id), snapshot, pa.Schema.from_pandas(snapshot, preserve_index=False)
    )


def _predict(served, instance, lake_url, warehouse_url, tenant_ids):
    """One predictions run over `tenant_ids` x TEST_END (their snapshots read from the lake), with its verdict."""
    registry = served["registry"]
    features, predictions = feature_assets(SERVED_WINDOW)[0], prediction_assets(SERVED_WINDOW)[0]
    verdict = run_verdict([features.key, predictions.key])
    config = {"url": lake_url, "s3_endpoint_url": None}
    return dg.materialize(
        [features, predictions, verdict],
        selection=dg.AssetSelection.assets(predictions) | dg.AssetSelection.checks(*verdict.check_keys),
        instance=instance,
        resources={
            "lake_io_manager": LakeIOManager(**config),
            "warehouse_io_manager": WarehouseIOManager(warehouse_url=warehouse_url),
            "lake": LakeResource(**config),
            "tenants": TenantRegistryResource(warehouse_url=warehouse_url),
            "models": ModelRegistryResource(tracking_uri=registry.tracking_uri, artifact_uri=registry.artifact_uri),
            "policy": ModelPolicyResource(),
        },
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{TEST_END.isoformat()}|{tenant_ids[0]}",
            ASSET_PARTITION_RANGE_END_TAG: f"{TEST_END.isoformat()}|{tenant_ids[-1]}",
        },
        raise_on_error=False,
    )


def _instance(tenant_ids):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, tenant_ids)
    return instance


def _sorted_predictions(warehouse_url, tenant_id):
    from mlops_assets.core.warehouse.prediction_store import read_partition

    columns = ["customer_id", "repurchase_probability", "risk_band"]
    frame = read_partition(warehouse_url, tenant_id, TEST_END)[columns]
    return frame.sort_values("customer_id", ignore_index=True)


def test_a_model_that_fails_to_load_fails_its_tenant_while_the_others_are_predicted(served, tmp_path):
    from mlops_assets.core.warehouse.prediction_store import read_partition

    broken = "isobroken"
    missing = _serve(served, broken, source=f"{tmp_path.as_uri()}/gone")
    lake_url, warehouse_url = str(tmp_path / "lake"), f"sqlite:///{tmp_path / 'w.db'}"
    for tenant_id in (SERVED_TENANT, broken):
        _write_snapshot(served, lake_url, tenant_id)
    tenant_ids = [SERVED_TENANT, broken]
    instance = _instance(tenant_ids)

    result = _predict(served, instance, lake_url, warehouse_url, tenant_ids)
    assert not result.success
    keys = _keys(tenant_ids, [TEST_END])
    assert _status(instance, "predictions", keys, SERVED_WINDOW) == {keys[0]: "MATERIALIZED", keys[1]: "FAILED"}
    assert len(read_partition(warehouse_url, SERVED_TENANT, TEST_END)) == len(served["snapshot"])
    assert read_partition(warehouse_url, broken, TEST_END).empty
    reason = _verdict_failure(result)
    assert f"predictions {keys[1]}: tenant {broken}: the production model v{missing} could not be loaded" in reason
    assert f"mlops models rollback {broken}" in reason

    _serve(served, broken)
    assert _predict(served, instance, lake_url, warehouse_url, tenant_ids).success
    assert _status(instance, "predictions", keys, SERVED_WINDOW) == {key: "MATERIALIZED" for key in keys}
    assert _sorted_predictions(warehouse_url, broken).equals(_sorted_predictions(warehouse_url, SERVED_TENANT))


def test_an_input_that_cannot_be_read_fails_only_its_tenant_day(served, tmp_path):
    """One tenant's snapshot file is corrupt, another's is gone: the third tenant of the run is predicted."""
    corrupt, gone = "isocorrupt", "isogone"
    for tenant_id in (corrupt, gone):
        _serve(served, tenant_id)
    lake_url, warehouse_url = str(tmp_path / "lake"), f"sqlite:///{tmp_path / 'w.db'}"
    tenant_ids = [SERVED_TENANT, corrupt, gone]
    for tenant_id in tenant_ids:
        _write_snapshot(served, lake_url, tenant_id)
    corrupt_file = _snapshot_file(lake_url, corrupt)
    corrupt_file.write_bytes(corrupt_file.read_bytes()[:100])  # truncated at rest
    _snapshot_file(lake_url, gone).unlink()
    instance = _instance(tenant_ids)

    result = _predict(served, instance, lake_url, warehouse_url, tenant_ids)
    assert not result.success
    healthy, *broken = _keys(tenant_ids, [TEST_END])
    assert _status(instance, "predictions", [healthy, *broken], SERVED_WINDOW) == {
        healthy: "MATERIALIZED", broken[0]: "FAILED", broken[1]: "FAILED",
    }  # fmt: skip
    assert len(_sorted_predictions(warehouse_url, SERVED_TENANT)) == len(served["snapshot"])
    reason = _verdict_failure(result)
    assert reason.startswith(f"2 tenant-days failed ({broken[0]}, {broken[1]}); "), reason
    unreadable = f"predictions {broken[0]}: tenant {corrupt} {broken[0]}: input `customer_features` could not be read"
    assert f"{unreadable} (UnreadableFile: {corrupt_file} is not a readable Parquet file" in reason, reason
    assert f"predictions {broken[1]}: tenant {gone} {broken[1]}: input `customer_features` could not be read" in reason
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{_snapshot_file(lake_url, gone)}'" in reason
    assert f"`mlops backfill {gone} --from {TEST_END}`" in reason
    # The cause is on the failed partition, where its downstream steps and the healing sensor read it.
    observed = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("predictions"), asset_partitions=[broken[0]]), limit=1
    ).records[0]
    assert "not a readable Parquet file" in observed.asset_observation.metadata["failure"].value
    run = instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))[0]
    assert RunFailures(instance).failed_tenants(run) == {corrupt, gone}

    for tenant_id in (corrupt, gone):
        _write_snapshot(served, lake_url, tenant_id)
    assert _predict(served, instance, lake_url, warehouse_url, tenant_ids).success
    for tenant_id in (corrupt, gone):
        assert _sorted_predictions(warehouse_url, tenant_id).equals(_sorted_predictions(warehouse_url, SERVED_TENANT))


def test_a_runaway_tenant_does_not_change_the_others_snapshots(tmp_path, shops):
    """A shop that suddenly has 10x the orders shares a run with two others: their feature snapshots are the
    files a run without it writes, and the run completes (the step holds one tenant-day at a time:
    test_batching.py)."""
    runaway = SyntheticShop(ShopSpec("globex", customers=3000, seed=2, end=LAST, history_days=90))
    assert len(runaway.raw_orders()) >= 8 * len(shops["globex"].raw_orders())

    def snapshots(name, batch):
        lake_url, warehouse_url = _lake(tmp_path, name, batch), f"sqlite:///{tmp_path / name}.db"
        _register(warehouse_url, {tenant_id: "http://127.0.0.1:9/unused" for tenant_id in batch})
        instance = _instance(list(batch))
        assert _ingest(instance, warehouse_url, lake_url, FEATURES, tenants=list(batch)).success
        found = lake_digests({"url": lake_url, "s3_endpoint_url": None})
        return {path: digest for path, digest in found.items() if path.startswith("/customer_features/")}

    alone = snapshots("alone", {tenant_id: shops[tenant_id] for tenant_id in ("acme", "initech")})
    beside = snapshots("beside", {"acme": shops["acme"], "globex": runaway, "initech": shops["initech"]})
    assert len(alone) == 4
    assert {path: digest for path, digest in beside.items() if "tenant=globex" not in path} == alone
