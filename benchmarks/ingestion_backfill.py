"""A 30-day backfill of one shop through Dagster, fault-free and against a faulty, rate-limited shop.

Prints: rows of both runs (must be identical, file by file), 429s met and handled, and the request
rate sustained against the leaky bucket as a ratio of what the bucket allows in the same time:
admitted / (capacity + leak * elapsed). The fault-free run, on an unthrottled emulator in the same
process, is the baseline for wall time.

    .venv/bin/python benchmarks/ingestion_backfill.py --customers 5000 --days 30 --error-rate 0.1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from mlops_assets.core.lake import files as lake
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, shopify_settings
from mlops_assets.definitions import defs
from mlops_assets.ingestion import raw_asset
from mlops_assets.io_managers import LakeIOManager
from mlops_assets.partitions import TENANTS, TenantDayPartitions
from mlops_assets.resources import LakeResource, ShopApiResource, TenantRegistryResource
from mlops_assets.sim.shop_emulator import EmulatedShop, Faults, LeakyBucket, ShopApiEmulator
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

TOKEN = "shpat_benchmark"


def backfill(
    shop, work: Path, label: str, faults: Faults, bucket: tuple[int, float], page_limit: int, days: list[date], assets
):
    emulator = ShopApiEmulator({"bench": EmulatedShop(shop, TOKEN, LeakyBucket(*bucket))}, faults=faults).start()
    try:
        warehouse = f"sqlite:///{work / f'{label}.db'}"
        TenantRegistry(warehouse).upsert(
            Tenant(
                "bench",
                "Bench",
                "shopify",
                shopify_settings(emulator.shop_url("bench"), "BENCH_TOKEN"),
                shop.spec.timezone,
                shop.spec.currency,
            )
        )
        lake_url = str(work / label)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(TENANTS, ["bench"])
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            instance=instance,
            resources={
                "lake": LakeResource(url=lake_url),
                "lake_io_manager": LakeIOManager(url=lake_url),
                "tenants": TenantRegistryResource(warehouse_url=warehouse),
                "shop_api": ShopApiResource(
                    page_limit=page_limit, bucket_capacity=bucket[0], leak_per_s=bucket[1], max_failures=12
                ),
            },
            tags={
                ASSET_PARTITION_RANGE_START_TAG: f"{days[0].isoformat()}|bench",
                ASSET_PARTITION_RANGE_END_TAG: f"{days[-1].isoformat()}|bench",
            },
        )
        elapsed = time.perf_counter() - started
        statuses = [status for _, status in emulator.request_log]
    finally:
        emulator.stop()
    meta = [
        {k: v.value for k, v in e.event_specific_data.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    ]
    root = lake.lake_root(lake_url)
    digests = {str(p.relative_to(root.path)): lake.file_digest(p) for p in root.rglob("*.parquet")}
    return {
        "success": result.success,
        "elapsed": elapsed,
        "rows": sum(m["rows"] for m in meta),
        "requests": len(statuses),
        "admitted": sum(1 for s in statuses if s != 429),
        "429": statuses.count(429),
        "5xx": sum(1 for s in statuses if s >= 500),
        "dropped": statuses.count(0),
        "retries": sum(m["api_retries"] for m in meta),
        "digests": digests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument(
        "--page-limit",
        type=int,
        default=10,
        help="small pages make the backfill long enough to meet the bucket's steady state",
    )
    parser.add_argument("--capacity", type=int, default=40)
    parser.add_argument("--leak", type=float, default=2.0)
    args = parser.parse_args()

    os.environ["BENCH_TOKEN"] = TOKEN
    partitions = TenantDayPartitions.of(defs())
    assets = [raw_asset(resource, partitions) for resource in ("orders", "customers")]
    last = partitions.last_day
    days = [last - timedelta(days=k) for k in range(args.days - 1, -1, -1)]
    shop = SyntheticShop(
        ShopSpec("bench", customers=args.customers, seed=11, end=last, history_days=400, timezone="America/Chicago")
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clean = backfill(shop, work, "clean", Faults(), (10_000, 10_000.0), args.page_limit, days, assets)
        faulty = backfill(
            shop,
            work,
            "faulty",
            Faults(server_error_rate=args.error_rate, seed=5),
            (args.capacity, args.leak),
            args.page_limit,
            days,
            assets,
        )
    allowed = args.capacity + args.leak * faulty["elapsed"]
    print(
        f"shop: {args.customers} customers, {args.days} days, page limit {args.page_limit}; "
        f"bucket {args.capacity} / {args.leak:g} per s; {args.error_rate:.0%} 5xx"
    )
    print("| run | ok | rows | files | requests | 429 | 5xx | retries | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, run in (("fault-free, unthrottled (baseline)", clean), ("10% 5xx, 40/2 bucket", faulty)):
        print(
            f"| {label} | {run['success']} | {run['rows']} | {len(run['digests'])} | {run['requests']} | {run['429']} "
            f"| {run['5xx']} | {run['retries']} | {run['elapsed']:.1f} |"
        )
    print(f"identical files (sha256 of every partition): {clean['digests'] == faulty['digests']}")
    print(
        f"admitted requests / bucket allowance over the run: {faulty['admitted']} / {allowed:.0f} = "
        f"{faulty['admitted'] / allowed:.2f}"
    )
    print(
        f"sustained rate after the burst: {(faulty['admitted'] - args.capacity) / faulty['elapsed']:.2f} req/s "
        f"= {(faulty['admitted'] - args.capacity) / faulty['elapsed'] / args.leak:.2f} x the leak rate"
    )
    print(f"wall time ratio faulty/baseline: {faulty['elapsed'] / clean['elapsed']:.1f}x")


if __name__ == "__main__":
    main()
