"""The daily cycle for N tenants through Dagster beside the same work done by the bare `core` functions.

Setup (not timed): N synthetic shops of a realistic spread of sizes (most small, a few large) behind the
emulator on loopback, registered as Shopify tenants; history, the window's days and a model per tenant in
batched runs; predictions H days back so realized performance has something to evaluate. Then one day:

- Dagster: the daily schedule's requests (`automation.cycle_requests`) executed in-process: ingest,
  features, predictions, drift report, realized performance, with the IO managers, checks and metadata;
- bare: the same stages per tenant in one Python loop of `core` calls writing the same lake files and
  warehouse rows (no Dagster, no checks, no metadata).

    MLOPS_PARTITION_WINDOW_DAYS=14 .venv/bin/python benchmarks/daily_cycle.py --tenants 10
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

HORIZON = 7


def sizes(count: int, seed: int = 0) -> list[int]:
    """Most shops small, a few large: lognormal around 600 customers, clipped to [200, 5000]."""
    return np.clip(np.random.default_rng(seed).lognormal(np.log(600), 0.8, count), 200, 5000).astype(int).tolist()


def bare_day(settings, tenant_ids: list[str], day, shop_api) -> None:
    """The daily cycle's work as plain core calls, one tenant after another."""
    import pyarrow as pa

    from mlops_assets.core import lake
    from mlops_assets.core.features import customer_features, labels
    from mlops_assets.core.history import history_files, read_orders
    from mlops_assets.core.ingest import ingest_day, store_quarantine
    from mlops_assets.core.model_registry import ModelRegistry
    from mlops_assets.core.monitoring import (
        PREDICTION,
        MonitoringThresholds,
        drift_report_html,
        measure_drift,
        realized_metrics,
    )
    from mlops_assets.core.prediction_store import read_partition, refresh_statistics, write_partition
    from mlops_assets.core.predictions import batch_summary, load_served_model, score_snapshot
    from mlops_assets.core.registry import TenantRegistry
    from mlops_assets.core.shop_records import SCHEMAS
    from mlops_assets.monitoring import _report_path, reference_snapshot

    root = lake.lake_root(settings.lake_url)
    registry, models = (
        TenantRegistry(settings.warehouse_url),
        ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri),
    )
    thresholds = MonitoringThresholds()
    for tenant_id in tenant_ids:
        tenant = registry.get(tenant_id)
        with shop_api.client(tenant) as client:
            for resource_name in ("orders", "customers"):
                ingested = ingest_day(tenant, resource_name, day, client)
                store_quarantine(root, resource_name, tenant_id, day, ingested)
                path = lake.partition_path(root, f"raw_{resource_name}", tenant_id, day)
                lake.write_frame(path, ingested.frame, SCHEMAS[resource_name])
        history = read_orders(history_files(root, tenant_id, through=day))
        features = customer_features(history, day, tenant.timezone, tenant.horizon_days)
        features_path = lake.partition_path(root, "customer_features", tenant_id, day)
        lake.write_frame(features_path, features, pa.Schema.from_pandas(features, preserve_index=False))
        model = load_served_model(models, tenant_id)
        scored = score_snapshot(model, features, day, lake.file_digest(features_path), "bare", time_now())
        write_partition(settings.warehouse_url, tenant_id, day, scored, batch_summary(scored), "bare")
        reference = reference_snapshot(root, tenant_id, model.cutoff)
        reference[PREDICTION] = model.predict(reference)
        current = features.merge(scored[["customer_id", PREDICTION]], on="customer_id")
        if measure_drift(reference, current, thresholds).problems(thresholds):
            html = drift_report_html(reference, current, thresholds)
            lake.write_atomic(_report_path(root, tenant_id, day), html.encode())
        earlier = day - timedelta(days=tenant.horizon_days)
        served = read_partition(settings.warehouse_url, tenant_id, earlier)
        outcome = served["customer_id"].isin(labels(history, earlier, tenant.timezone, tenant.horizon_days).index)
        realized_metrics(served["repurchase_probability"].to_numpy(float), outcome.to_numpy())
    refresh_statistics(settings.warehouse_url)


def time_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="daily-cycle-"))
    os.environ.update({"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "BENCH_TOKEN": "shpat_bench"})
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    from tqdm import tqdm

    from mlops_assets import cli
    from mlops_assets.automation import (
        Automation,
        cycle_requests,
        materialize_tenant_days,
        materialize_tenants,
        sync_tenant_partitions,
    )
    from mlops_assets.core.predictions import _LOADED
    from mlops_assets.core.registry import Tenant, shopify_settings
    from mlops_assets.core.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator
    from mlops_assets.core.synthetic import ShopSpec, SyntheticShop
    from mlops_assets.definitions import build_defs
    from mlops_assets.partitions import daily_partitions
    from mlops_assets.resources import ShopApiResource
    from mlops_assets.settings import Settings

    settings = Settings.from_env()
    last = date.fromisoformat(daily_partitions.get_last_partition_key())
    first = daily_partitions.start.date()
    names = [f"shop-{k:04d}" for k in range(args.tenants)]
    shops = {
        name: EmulatedShop(
            SyntheticShop(ShopSpec(name, customers=size, seed=k, end=last, history_days=420)),
            "shpat_bench", LeakyBucket(4000, 10000.0), as_of_request=True,
        )
        for k, (name, size) in enumerate(tqdm(list(zip(names, sizes(args.tenants), strict=True)), desc="shops"))
    }  # fmt: skip
    emulator = ShopApiEmulator(shops).start()
    registry = cli.registry()
    for name in names:
        registry.add(
            Tenant(
                name, name, "shopify", shopify_settings(emulator.shop_url(name), "BENCH_TOKEN"), horizon_days=HORIZON
            )
        )
    defs = build_defs(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    keys = cli._keys
    with cli.instance() as instance:
        sync_tenant_partitions(instance, registry)
        started = time.perf_counter()
        materialize_tenants(job, instance, names, keys(["raw_orders_history", "raw_customers_history"]), "WARNING")
        materialize_tenant_days(
            job, instance, names, first, last - timedelta(days=1), keys(["raw_orders", "raw_customers"]),
            days_per_run=31, console_log_level="WARNING",
        )  # fmt: skip
        cutoff = last - timedelta(days=1)
        setup_runs = materialize_tenant_days(
            job, instance, names, cutoff, cutoff,
            keys(["customer_features", "training_set", "candidate_model", "production_model"]),
            console_log_level="WARNING",
        )  # fmt: skip
        earlier = last - timedelta(days=HORIZON)
        setup_runs += materialize_tenant_days(
            job, instance, names, earlier, earlier, keys(["customer_features", "predictions"]),
            console_log_level="WARNING",
        )  # fmt: skip
        assert all(result.success for result in setup_runs), "setup failed"
        print(f"setup {time.perf_counter() - started:.0f} s")

        automation = Automation(defs, instance, registry)
        requests = cycle_requests("daily", instance, registry, last)
        import evidently  # noqa: F401 - warm imports, so neither side pays them inside the timing
        import matplotlib.pyplot  # noqa: F401

        cpu, wall = cpu_seconds(), time.perf_counter()
        results = automation.execute(requests)
        dagster_wall, dagster_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        assert results and all(result.success for result in results), automation.failures()

        _LOADED.clear()  # the bare loop loads each tenant's model itself, as the run did
        cpu, wall = cpu_seconds(), time.perf_counter()
        bare_day(settings, names, last, ShopApiResource(bucket_capacity=4000, leak_per_s=10000.0))
        bare_wall, bare_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    emulator.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    customers = sum(shop.shop.spec.customers for shop in shops.values())
    print("| tenants | customers | runs | Dagster wall s | Dagster CPU s | bare wall s | bare CPU s | ratio (wall) |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.tenants} | {customers} | {len(results)} | {dagster_wall:.1f} | {dagster_cpu:.1f} | {bare_wall:.1f} | "
        f"{bare_cpu:.1f} | {dagster_wall / bare_wall:.2f} |"
    )
    print(f"peak RSS of this process {peak:.0f} MiB; state under {home}")


if __name__ == "__main__":
    main()
