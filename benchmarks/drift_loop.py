"""The closed loop through Dagster, over several seeds: drift event -> alarm -> automatic retrain -> realized AUC.

Per seed: one 2,000-customer shop (H = 7) behind the emulator in replay mode, onboarded on the first day of
the window; from the third day its purchase rate drops to 0.4x and order values rise 10x. The daemon's
decisions are replayed day by day (`Automation`, weekly retrains off so only the sensors act). Reported:
days from the event to the first alarm, whether the drift retrain was promoted, and on the days whose
predictions came from the retrained version, its realized AUC beside the replaced version's on the same
customers and outcomes (realized_performance scores both while the new one is on probation).

    MLOPS_PARTITION_WINDOW_DAYS=21 .venv/bin/python benchmarks/drift_loop.py --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def run_seed(seed: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"drift-loop-{seed}-"))
    os.environ.update({"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "LOOP_TOKEN": "shpat_loop"})
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    import dagster as dg

    import mlops_assets.cli.common as cli
    from mlops_assets.core.tenants.registry import Tenant, shopify_settings
    from mlops_assets.definitions import defs
    from mlops_assets.partitions import TenantDayPartitions
    from mlops_assets.sim.scenarios import LevelShift
    from mlops_assets.sim.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator
    from mlops_assets.sim.shops import ShopSpec, SyntheticShop

    window = TenantDayPartitions.of(defs())
    first, last = window.first_day, window.last_day
    drift_day, tenant = first + timedelta(days=2), "loop"
    spec = ShopSpec(
        tenant, customers=2000, seed=seed, end=last, history_days=450,
        scenario=LevelShift(drift_day, rate_factor=0.4, value_factor=10.0),
    )  # fmt: skip
    shop = EmulatedShop(SyntheticShop(spec), "shpat_loop", LeakyBucket(400, 1000.0), as_of_request=True)
    with ShopApiEmulator({tenant: shop}) as emulator:
        cli.registry().add(
            Tenant(tenant, tenant, "shopify", shopify_settings(emulator.shop_url(tenant), "LOOP_TOKEN"), horizon_days=7)
        )
        cli.sync_partitions()
        with cli.instance() as instance:
            automation = cli.build_automation([tenant], instance, weekly_retrain=False)
            automation.onboard(first + timedelta(days=1))
            day = first
            while day <= last:
                automation.day(day + timedelta(days=1))
                day += timedelta(days=1)

            def history(asset: str) -> list[tuple[str, dict]]:
                records = instance.fetch_materializations(dg.AssetKey(asset), limit=1000, ascending=True).records
                return [
                    (r.partition_key.split("|")[0], {k: v.value for k, v in r.asset_materialization.metadata.items()})
                    for r in records
                ]

            alarms = sorted(d for d, meta in history("drift_report") if meta["alarms"] != "none")
            decisions = dict(history("production_model"))
            realized = dict(history("realized_performance"))
            drift_runs = instance.get_runs(dg.RunsFilter(tags={"mlops/trigger": "drift"}))
    retrained = sorted(r.tags["dagster/asset_partition_range_start"].split("|")[0] for r in drift_runs)
    paired = [m for m in realized.values() if m.get("status") == "evaluated" and m["predecessor_version"] != "none"]
    before = [m for m in realized.values() if m.get("status") == "evaluated" and m["predecessor_version"] == "none"]
    return {
        "seed": seed,
        "delay": (date.fromisoformat(alarms[0]) - drift_day).days if alarms else None,
        "retrains": len(retrained),
        "promoted": bool(retrained) and bool(decisions[retrained[0]]["promoted"]),
        "paired_days": len(paired),
        "new_auc": sum(m["realized_auc"] for m in paired) / len(paired) if paired else float("nan"),
        "old_auc": sum(m["predecessor_auc"] for m in paired) / len(paired) if paired else float("nan"),
        "before_auc": sum(m["realized_auc"] for m in before) / len(before) if before else float("nan"),
        "failures": automation.failures(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [run_seed(seed) for seed in args.seeds]
    print(
        "| seed | alarm (days after the event) | drift retrains | first promoted | realized AUC, old model's days "
        "| paired days | realized AUC retrained | same days, replaced version |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seed']} | {r['delay']} | {r['retrains']} | {r['promoted']} | {r['before_auc']:.3f} | "
            f"{r['paired_days']} | {r['new_auc']:.3f} | {r['old_auc']:.3f} |"
        )
        if r["failures"]:
            print(f"  failed runs: {r['failures']}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
