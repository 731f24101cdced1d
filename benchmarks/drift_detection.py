"""Drift detection delay and false alarm rate of the monitoring defaults, over several seeds.

For each seed: a shop without drift and the same shop with a drift event (purchase rate x0.4, order
values x10). Every day of the period is compared with the reference a weekly retrain would have kept
(the snapshot of the last Saturday cutoff; on the drift shop the reference stays pre-drift until the
alarm). Scores come from the BG/NBD feature (a model stand-in; what a model would score moves with it).
Features here see every order from the day it is placed; the emulator-driven pipeline sees an order on
the day of its last update, see docs/benchmarks.md.

    .venv/bin/python benchmarks/drift_detection.py --seeds 1 2 3 --days 60 --customers 2000
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

from tqdm import tqdm

from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.core.monitoring.drift import PREDICTION, measure_drift
from mlops_assets.core.monitoring.thresholds import MonitoringThresholds
from mlops_assets.sim.scenarios import LevelShift
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)


def snapshot(shop: SyntheticShop, day: date):
    frame = feature_snapshot(shop.raw_orders(), day, "UTC", horizon_days=30)
    frame[PREDICTION] = frame["bgnbd_probability"].fillna(0.0)
    return frame


def calm_alarms(seed: int, days: int, customers: int, thresholds: MonitoringThresholds) -> tuple[int, int]:
    shop = SyntheticShop(ShopSpec(f"calm{seed}", customers=customers, seed=seed, end=END, history_days=500))
    checked = alarms = 0
    reference = None
    for offset in range(days):
        day = END - timedelta(days=days - 1 - offset)
        if reference is None or day.isoweekday() == 6:
            reference = snapshot(shop, day)
            continue
        checked += 1
        alarms += bool(measure_drift(reference, snapshot(shop, day), thresholds).problems(thresholds))
    return checked, alarms


def detection_delay(seed: int, customers: int, thresholds: MonitoringThresholds, horizon: int = 14) -> int | None:
    drift_day = END - timedelta(days=horizon + 1)
    drift = LevelShift(drift_day, rate_factor=0.4, value_factor=10.0)
    shop = SyntheticShop(
        ShopSpec(f"shift{seed}", customers=customers, seed=seed, end=END, history_days=500, scenario=drift)
    )
    reference = snapshot(shop, drift_day - timedelta(days=(drift_day.isoweekday() + 1) % 7 or 7))
    for delay in range(horizon + 1):
        current = snapshot(shop, drift_day + timedelta(days=delay))
        if measure_drift(reference, current, thresholds).problems(thresholds):
            return delay
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    thresholds = MonitoringThresholds()
    started = time.perf_counter()
    rows = []
    for seed in tqdm(args.seeds, desc="seeds"):
        checked, alarms = calm_alarms(seed, args.days, args.customers, thresholds)
        rows.append((seed, checked, alarms, detection_delay(seed, args.customers, thresholds)))
    print(f"defaults: {thresholds}")
    print("| seed | days checked (no drift) | false alarms | detection delay (days after the event) |")
    print("|---|---|---|---|")
    for seed, checked, alarms, delay in rows:
        print(f"| {seed} | {checked} | {alarms} | {delay if delay is not None else 'not within 14 days'} |")
    total_checked, total_alarms = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"false alarm rate {total_alarms}/{total_checked} = {total_alarms / total_checked:.3f} per checked day")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
