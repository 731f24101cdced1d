"""A fleet of N tenants through the weekly retrain and the daily cycle, Dagster beside the bare `core` loop.

Production profile: PostgreSQL for Dagster's storage, the warehouse and MLflow; the lake and MLflow's
artifacts on an S3 endpoint (moto server in its own process on loopback); the shops behind the
Shopify emulator in its own process. Shop sizes follow a realistic spread (most small, a few large;
`--large 100000` adds one big tenant).

Setup (not timed): shops, tenant registry and partitions, each tenant's history file and the window's
day files written straight to the lake, and predictions H days back so realized performance has
something to score. Then four stages, each in a fresh process (so its peak memory is its own):

- weekly, Dagster: the weekly schedule's `retrain` runs (features, training set, candidate, gates and
  promotion, predictions, drift) for every tenant at yesterday's cutoff, in-process runs over
  contiguous tenant ranges, with IO managers, checks, metadata and the event log on PostgreSQL;
- weekly, bare: the same stages per tenant as plain `core` calls in one loop (its own MLflow database,
  so both sides train a tenant's first model);
- daily, Dagster: the daily schedule's runs for today (ingest over HTTP, features, predictions, drift,
  realized performance);
- daily, bare: the same work per tenant as plain `core` calls (no checks, no metadata).

    .venv/bin/python benchmarks/fleet.py --tenants 10
    .venv/bin/python benchmarks/fleet.py --tenants 1000 --large 100000

PostgreSQL: `--pg` (default postgresql://postgres@127.0.0.1:5432/postgres); the script creates and drops
its own databases.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from production import TOKEN_ENV, Deployment, cpu_seconds, peak_rss_mib, start_emulator, start_s3, stop, wait_for_port
from step_memory import PeakSampler, markdown, step_peaks

HORIZON = 7
STAGES = ("weekly-dagster", "weekly-bare", "daily-dagster", "daily-bare")


def sizes(count: int, seed: int = 0) -> list[int]:
    """Most shops small, a few large: lognormal around 600 customers, clipped to [200, 5000]."""
    return np.clip(np.random.default_rng(seed).lognormal(np.log(600), 0.8, count), 200, 5000).astype(int).tolist()


def fleet(count: int, large: int) -> dict[str, int]:
    shops = {f"shop-{k:04d}": size for k, size in enumerate(sizes(count))}
    if large:
        shops["shop-large"] = large
    return shops


def synthetic_shop(seed: int, name: str, customers: int, day: date):
    """The shop the emulator serves for `name` (its seed is its position in the fleet), ending on `day`."""
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    return SyntheticShop(ShopSpec(name, customers=customers, seed=seed, end=day, history_days=420))


# --- setup -------------------------------------------------------------------------------------------


def setup(shops: dict[str, int], day: date) -> None:
    """Tenants, partitions, history and window files, and predictions H days back; nothing here is timed."""
    import pandas as pd
    from tqdm import tqdm

    import mlops_assets.cli.common as cli
    from mlops_assets.automation.decisions import sync_tenant_partitions
    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.ml.scoring import batch_summary
    from mlops_assets.core.sources.ingest import split_by_day
    from mlops_assets.core.sources.records import SCHEMAS, to_frame
    from mlops_assets.core.tenants.registry import Tenant, shopify_settings
    from mlops_assets.core.warehouse.prediction_store import write_partition
    from mlops_assets.partitions import TenantDayPartitions
    from mlops_assets.settings import Settings

    settings = Settings.from_env()
    root = lake.lake_root(settings.lake_url, settings.s3_endpoint_url)
    registry = cli.registry()
    window_start = TenantDayPartitions.from_settings(settings).first_day
    predicted_on = day - timedelta(days=HORIZON)

    def store(item: tuple[int, tuple[str, int]]) -> None:
        seed, (name, customers) = item
        shop = synthetic_shop(seed, name, customers, day)
        for resource_name, frame in (
            ("orders", shop.raw_orders()),
            ("customers", to_frame("customers", shop.customers.astype({"customer_id": str}))),
        ):
            days = split_by_day(frame, shop.spec.timezone)
            older = [days[d] for d in sorted(days) if d < window_start] or [to_frame(resource_name, [])]
            history = lake.history_path(root, f"raw_{resource_name}_history", name, window_start - timedelta(days=1))
            lake.write_frame(history, pd.concat(older, ignore_index=True), SCHEMAS[resource_name])
            for window_day in (window_start + timedelta(days=k) for k in range((day - window_start).days)):
                part = days.get(window_day, to_frame(resource_name, []))
                lake.write_frame(
                    lake.partition_path(root, f"raw_{resource_name}", name, window_day), part, SCHEMAS[resource_name]
                )
        customers_known = shop.customers["customer_id"].astype(str).to_numpy()
        rng = np.random.default_rng(seed)
        scores = rng.beta(1, 4, len(customers_known))
        rank = (-scores).argsort().argsort() + 1
        frame = pd.DataFrame(
            {
                "tenant_id": name,
                "as_of_date": predicted_on,
                "customer_id": customers_known,
                "repurchase_probability": scores,
                "risk_band": np.where(scores < 0.1, "high", np.where(scores < 0.3, "medium", "low")),
                "rank": rank,
                "percentile": 100.0 * (len(rank) - rank + 1) / len(rank),
                "top_reasons": "[]",
                "model_name": f"repurchase-{name}",
                "model_version": "0",
                "feature_version": "setup",
                "run_id": "setup",
                "created_at": datetime.now(UTC),
            }
        )
        frame.attrs["model_metrics"] = {"holdout_auc": 0.8}
        write_partition(settings.warehouse_url, name, predicted_on, frame, batch_summary(frame), "setup")

    emulator_url = os.environ["FLEET_EMULATOR_URL"]
    for name in shops:
        registry.add(
            Tenant(
                name, name, "shopify", shopify_settings(f"{emulator_url}/shops/{name}", TOKEN_ENV), horizon_days=HORIZON
            )
        )
    with cli.instance() as instance:
        sync_tenant_partitions(instance, registry)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(tqdm(pool.map(store, enumerate(shops.items())), total=len(shops), desc="setup: lake and warehouse"))


def donor_models(tenant_ids: list[str], cutoff: date) -> None:
    """Without the weekly stages, a production model per tenant in minutes instead of hours: the first
    tenant's model is trained and promoted for real, and every other tenant gets a copy of that version
    (MLflow's `copy_model_version`), its cutoff snapshot scored and stored as a retrain run leaves it.
    The daily cycle's work per tenant is the same whichever model scores; the weekly retrain is measured
    at 10 and 100 tenants.
    """
    import dagster as dg
    import pyarrow as pa
    from tqdm import tqdm

    import mlops_assets.cli.common as cli
    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.lake.history import history_files, read_orders
    from mlops_assets.core.ml.candidates import promote_candidate, train_candidate
    from mlops_assets.core.ml.features import feature_snapshot
    from mlops_assets.core.ml.promotion import PromotionPolicy
    from mlops_assets.core.ml.scoring import batch_summary, load_served_model, score_snapshot
    from mlops_assets.core.ml.tracking import PRODUCTION, ModelRegistry, model_name
    from mlops_assets.core.ml.training_data import ColdStartThresholds, TrainingPlan, build_training_set
    from mlops_assets.core.tenants.registry import TenantRegistry
    from mlops_assets.core.warehouse.prediction_store import write_partition
    from mlops_assets.partitions import tenant_day_key
    from mlops_assets.settings import Settings

    settings = Settings.from_env()
    root = lake.lake_root(settings.lake_url, settings.s3_endpoint_url)
    registry = TenantRegistry(settings.warehouse_url)
    models = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri, settings.s3_endpoint_url)
    donor, timezone = tenant_ids[0], registry.get(tenant_ids[0]).timezone
    files = history_files(root, donor, through=cutoff)
    built = build_training_set(
        read_orders(files), TrainingPlan(cutoff, HORIZON), timezone, files.through, ColdStartThresholds()
    )
    register = {
        "data_digest": files.digest(), "data_through": str(files.through), "timezone": timezone,
        "training_source": "fleet donor", "tags": {"cutoff": cutoff.isoformat()},
    }  # fmt: skip
    card = train_candidate(models, donor, built, **register)

    def fallback(reason: str):
        built.cold_start_reasons = [reason]
        return train_candidate(models, donor, built, **register)

    promote_candidate(
        models, settings.warehouse_url, donor, card.frame().iloc[0], built.frame, PromotionPolicy(), fallback
    )
    source = models.alias_version(donor, PRODUCTION)
    client = models.client
    with cli.instance() as instance:
        for tenant_id in tqdm(tenant_ids, desc="setup: models"):
            if tenant_id != donor:
                copied = client.copy_model_version(
                    f"models:/{model_name(donor)}/{source.version}", model_name(tenant_id)
                )
                for key, value in source.tags.items():
                    client.set_model_version_tag(model_name(tenant_id), copied.version, key, value)
                models.set_alias(tenant_id, PRODUCTION, copied.version)
            history = read_orders(history_files(root, tenant_id))
            features = feature_snapshot(history, cutoff, timezone, HORIZON)
            path = lake.partition_path(root, "customer_features", tenant_id, cutoff)
            digest = lake.write_frame(path, features, pa.Schema.from_pandas(features, preserve_index=False))["digest"]
            scored = score_snapshot(
                load_served_model(models, tenant_id), features, cutoff, digest, "setup", datetime.now(UTC)
            )
            write_partition(settings.warehouse_url, tenant_id, cutoff, scored, batch_summary(scored), "setup")
            instance.report_runless_asset_event(
                dg.AssetMaterialization("production_model", partition=tenant_day_key(tenant_id, cutoff))
            )


# --- the two sides of each stage -------------------------------------------------------------------------


def execute_request(request) -> bool:
    """One run, in this process, as the daemon's run worker would execute it."""
    import mlops_assets.cli.common as cli
    from mlops_assets.automation.replay import Automation
    from mlops_assets.definitions import build_defs
    from mlops_assets.settings import Settings

    with cli.instance() as instance:
        automation = Automation(build_defs(Settings.from_env()), instance, cli.registry())
        return all(result.success for result in automation.execute([request]))


def execute_requests(requests: list) -> list[bool]:
    """The runs, `FLEET_CONCURRENT_RUNS` at a time in their own processes (the daemon's run coordinator does the
    same); whether each succeeded."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    concurrent = int(os.environ.get("FLEET_CONCURRENT_RUNS", "1"))
    if concurrent == 1:
        return [execute_request(request) for request in requests]
    # spawn, not fork: a forked run would share this process's pooled database connections.
    with ProcessPoolExecutor(concurrent, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(execute_request, requests))


def dagster_stage(cycle: str, tenant_ids: list[str], day: date) -> int:
    """The schedule's runs for `day`; returns how many runs were launched."""
    import mlops_assets.cli.common as cli
    from mlops_assets.automation.batching import tenant_range_request, tenant_ranges
    from mlops_assets.automation.decisions import CYCLES, cycle_requests

    registry = cli.registry()
    with cli.instance() as instance:
        if cycle == "weekly":  # first models: the fleet is not onboarded yet, so the schedule would skip it
            job_name, tags = CYCLES["weekly"]
            requests = [
                tenant_range_request(job_name, day, day, low, high, f"fleet-{low}-{high}", tags)
                for low, high in tenant_ranges(instance, tenant_ids)
            ]
        else:
            requests = cycle_requests("daily", instance, registry, day)
    succeeded = execute_requests(requests)
    if not requests or not all(succeeded):
        raise SystemExit(f"{cycle}: {succeeded.count(False)} of {len(requests)} runs failed")
    return len(requests)


def bare_stage(cycle: str, tenant_ids: list[str], day: date) -> int:
    """The same stages per tenant as plain core calls, one tenant after another."""
    import pyarrow as pa

    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.lake.history import history_files, read_orders
    from mlops_assets.core.ml.candidates import promote_candidate, train_candidate
    from mlops_assets.core.ml.features import feature_snapshot, labels
    from mlops_assets.core.ml.promotion import PromotionPolicy
    from mlops_assets.core.ml.scoring import batch_summary, load_served_model, score_snapshot
    from mlops_assets.core.ml.tracking import ModelRegistry
    from mlops_assets.core.ml.training_data import ColdStartThresholds, TrainingPlan, build_training_set
    from mlops_assets.core.monitoring.drift import PREDICTION, drift_report_html, measure_drift
    from mlops_assets.core.monitoring.performance import realized_metrics
    from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
    from mlops_assets.core.sources.ingest import gate_context, ingest_day, store_quarantine
    from mlops_assets.core.sources.records import SCHEMAS
    from mlops_assets.core.sources.screening import screen
    from mlops_assets.core.tenants.registry import TenantRegistry
    from mlops_assets.core.warehouse.prediction_store import read_partition, refresh_statistics, write_partition
    from mlops_assets.core.warehouse.quarantine_ledger import IngestionDay, QuarantineLedger
    from mlops_assets.monitoring import _report_path, reference_snapshot
    from mlops_assets.resources import ShopApiResource
    from mlops_assets.settings import Settings

    settings = Settings.from_env()
    root = lake.lake_root(settings.lake_url, settings.s3_endpoint_url)
    registry, ledger = TenantRegistry(settings.warehouse_url), QuarantineLedger(settings.warehouse_url)
    models = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri, settings.s3_endpoint_url)
    shop_api, thresholds = ShopApiResource(), MonitoringThresholds()

    def write(asset: str, tenant_id: str, frame) -> str:
        path = lake.partition_path(root, asset, tenant_id, day)
        return lake.write_frame(path, frame, pa.Schema.from_pandas(frame, preserve_index=False))["digest"]

    for tenant_id in tenant_ids:
        tenant = registry.get(tenant_id)
        if cycle == "daily":
            with shop_api.client(tenant) as client:
                for resource_name in ("orders", "customers"):
                    asset = f"raw_{resource_name}"
                    ingested = ingest_day(tenant, resource_name, day, client)
                    ctx = gate_context(root, tenant, resource_name, day, ingested.frame)
                    released = ledger.released(tenant_id) if resource_name == "orders" else frozenset()
                    screened = screen(ingested.frame, ctx, released, ingested.quarantine)
                    store_quarantine(root, asset, tenant_id, day, screened.quarantine)
                    ledger.record(
                        IngestionDay(tenant_id, asset, day, screened.rows_read, len(screened.frame), screened.by_reason)
                    )
                    lake.write_frame(
                        lake.partition_path(root, asset, tenant_id, day), screened.frame, SCHEMAS[resource_name]
                    )
        history = read_orders(history_files(root, tenant_id))
        features = feature_snapshot(history, day, tenant.timezone, tenant.horizon_days)
        digest = write("customer_features", tenant_id, features)
        if cycle == "weekly":
            files = history_files(root, tenant_id, through=day)
            plan = TrainingPlan(day, tenant.horizon_days)
            built = build_training_set(read_orders(files), plan, tenant.timezone, files.through, ColdStartThresholds())
            write("training_set", tenant_id, built.frame)
            register = {
                "data_digest": files.digest(), "data_through": str(files.through), "timezone": tenant.timezone,
                "training_source": "bare", "tags": {"cutoff": day.isoformat()},
            }  # fmt: skip
            card = train_candidate(models, tenant_id, built, **register)

            def fallback(reason: str, built=built, register=register, tenant_id=tenant_id):
                built.cold_start_reasons = [reason]
                return train_candidate(models, tenant_id, built, **register)

            promote_candidate(
                models, settings.warehouse_url, tenant_id, card.frame().iloc[0], built.frame, PromotionPolicy(),
                fallback,
            )  # fmt: skip
        model = load_served_model(models, tenant_id)
        scored = score_snapshot(model, features, day, digest, "bare", datetime.now(UTC))
        write_partition(settings.warehouse_url, tenant_id, day, scored, batch_summary(scored), "bare")
        reference = reference_snapshot(root, tenant_id, model.cutoff)
        reference[PREDICTION] = model.predict(reference)
        current = features.merge(scored[["customer_id", PREDICTION]], on="customer_id")
        if measure_drift(reference, current, thresholds).problems(thresholds):
            html = drift_report_html(reference, current, thresholds)
            lake.write_atomic(_report_path(root, tenant_id, day), html.encode())
        if cycle == "daily":
            earlier = day - timedelta(days=tenant.horizon_days)
            served = read_partition(settings.warehouse_url, tenant_id, earlier)
            outcome = served["customer_id"].isin(labels(history, earlier, tenant.timezone, tenant.horizon_days).index)
            realized_metrics(served["repurchase_probability"].to_numpy(float), outcome.to_numpy())
    refresh_statistics(settings.warehouse_url)
    return 0


def warm_imports() -> None:
    """The heavy imports, before a stage's clock starts (on both sides)."""
    import evidently  # noqa: F401
    import lightgbm  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import mlflow  # noqa: F401

    import mlops_assets.definitions  # noqa: F401


def measured(name: str, work, *args) -> dict:
    """Wall and CPU seconds and peak memory of `work(*args)` (profiled into `FLEET_PROFILE_DIR` when set), with
    what it returned as `result`."""
    warm_imports()
    profiler = cProfile.Profile() if os.environ.get("FLEET_PROFILE_DIR") else None
    sampler = PeakSampler() if os.environ.get("FLEET_STEP_MEMORY") else contextlib.nullcontext()
    cpu, wall, started = cpu_seconds(), time.perf_counter(), time.time()
    with sampler:
        result = profiler.runcall(work, *args) if profiler else work(*args)
    if profiler:
        profiler.dump_stats(Path(os.environ["FLEET_PROFILE_DIR"]) / f"{name}.prof")
    figures = {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, "peak_mib": peak_rss_mib(),
               "result": result}  # fmt: skip
    if isinstance(sampler, PeakSampler):  # its resets of the high-water mark reset `peak_rss_mib` too
        figures["peak_mib"] = max(figures["peak_mib"], sampler.peak_mib)
        if name.endswith("dagster"):
            import mlops_assets.cli.common as cli

            with cli.instance() as instance:
                figures["steps"] = step_peaks(instance, started, sampler)
    return figures


def run_stage(stage: str, tenant_ids: list[str], day: date, report: Path) -> None:
    cycle, side = stage.split("-")
    stage_day = day - timedelta(days=1) if cycle == "weekly" else day
    figures = measured(stage, dagster_stage if side == "dagster" else bare_stage, cycle, tenant_ids, stage_day)
    figures["runs"] = figures.pop("result")
    report.write_text(json.dumps(figures))


# --- orchestration -----------------------------------------------------------------------------------------


def child(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, __file__, *args], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--large", type=int, default=0, help="add one tenant of this many customers")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument(
        "--profile-dir", help="write a cProfile of each stage here (its figures then include the profiler)"
    )
    parser.add_argument("--concurrent-runs", type=int, default=1, help="Dagster runs at a time, each its own process")
    parser.add_argument("--tenants-per-run", type=int, default=250)
    parser.add_argument(
        "--step-memory", action="store_true", help="sample each Dagster step's peak resident memory (step_memory.py)"
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shops = fleet(args.tenants, args.large)
    if args.phase == "setup":
        return setup(shops, date.fromisoformat(args.day))
    if args.phase == "models":
        return donor_models(sorted(shops), date.fromisoformat(args.day) - timedelta(days=1))
    if args.phase:
        return run_stage(args.phase, sorted(shops), date.fromisoformat(args.day), Path(args.report))

    day = datetime.now(UTC).date() - timedelta(days=1)
    s3, s3_port = start_s3()
    home = Path(tempfile.mkdtemp(prefix="fleet-"))
    emulator, emulator_port = start_emulator(shops, day, home / "emulator.log")
    deployment = Deployment(args.pg, f"fleet{os.getpid()}", home, s3_port, f"http://127.0.0.1:{emulator_port}")
    env = deployment.create().env()
    env["FLEET_CONCURRENT_RUNS"] = str(args.concurrent_runs)
    env["MLOPS_TENANTS_PER_RUN"] = str(args.tenants_per_run)
    if args.step_memory:
        env["FLEET_STEP_MEMORY"] = "1"
    if args.profile_dir:
        env["FLEET_PROFILE_DIR"] = str(Path(args.profile_dir).resolve())
    try:
        started = time.perf_counter()
        child(env, "--tenants", str(args.tenants), "--large", str(args.large), "--phase", "setup", "--day", str(day))
        if not {"weekly-dagster", "weekly-bare"} & set(args.stages):
            child(
                env, "--tenants", str(args.tenants), "--large", str(args.large), "--phase", "models", "--day", str(day)
            )
        wait_for_port(emulator_port, emulator, "shop emulator")
        print(f"setup {time.perf_counter() - started:.0f} s")
        results = {}
        for stage in args.stages:
            trains = "weekly-bare" in args.stages  # else both sides score with the donor models
            side_env = {**env, **deployment.mlflow_env("bare")} if stage.endswith("bare") and trains else env
            report = home / f"{stage}.json"
            child(
                side_env, "--tenants", str(args.tenants), "--large", str(args.large), "--phase", stage,
                "--day", str(day), "--report", str(report),
            )  # fmt: skip
            results[stage] = json.loads(report.read_text())
            steps = results[stage].pop("steps", None)
            print(stage, results[stage], flush=True)
            if steps:
                print(markdown(stage, steps), flush=True)
    finally:
        stop(emulator, s3)
    customers = sum(shops.values())
    print(
        "| tenants | customers | stage | runs | Dagster wall s | Dagster CPU s | Dagster peak MiB | bare wall s | "
        "bare CPU s | bare peak MiB | ratio (wall) |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cycle in ("weekly", "daily"):
        ours, bare = results.get(f"{cycle}-dagster"), results.get(f"{cycle}-bare")
        if ours and bare:
            print(
                f"| {len(shops)} | {customers:,} | {cycle} | {ours['runs']} | {ours['wall_s']:.1f} | "
                f"{ours['cpu_s']:.1f} | {ours['peak_mib']:.0f} | {bare['wall_s']:.1f} | {bare['cpu_s']:.1f} | "
                f"{bare['peak_mib']:.0f} | **{ours['wall_s'] / bare['wall_s']:.2f}** |"
            )
    deployment.drop()


if __name__ == "__main__":
    main()
