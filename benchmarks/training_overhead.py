"""What tracking and registration cost on top of the bare LightGBM fit, on the same training set.

Bare: `fit_lightgbm` alone. Tracked: `train_candidate`, i.e. the same fit plus holdout metrics,
both baselines, calibration and importance plots, the MLflow run (params, metrics, plots, dataset
input, holdout predictions), the logged model with signature and pinned requirements, and the
registered version. MLflow is imported before timing, as in a running code location.

    .venv/bin/python benchmarks/training_overhead.py --customers 50000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from mlops_assets.core.ml.candidates import train_candidate
from mlops_assets.core.ml.models import fit_lightgbm
from mlops_assets.core.ml.tracking import ModelRegistry
from mlops_assets.core.ml.training_data import TrainingPlan, build_training_set
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    shop = SyntheticShop(ShopSpec("overhead", customers=args.customers, seed=3, end=END, history_days=730))
    built = build_training_set(shop.raw_orders(), TrainingPlan(END), "UTC", END)
    print(f"training set: {built.summary()}")
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(f"sqlite:///{Path(tmp) / 'mlflow.db'}", (Path(tmp) / "artifacts").as_uri())
        registry.experiment_id("overhead")
        bare, tracked = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            fit_lightgbm(built.split("train"), built.split("valid"))
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            train_candidate(
                registry,
                "overhead",
                built,
                data_digest="sha256:benchmark",
                data_through=str(END),
                timezone="UTC",
                training_source=str(Path(tmp) / "training_set.parquet"),
                tags={},
            )
            tracked.append(time.perf_counter() - started)
    best_bare, best_tracked = min(bare), min(tracked)
    print("| customers | training rows | bare fit s | fit + tracking + registration s | ratio |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.customers} | {len(built.frame)} | {best_bare:.2f} | {best_tracked:.2f} | "
        f"{best_tracked / best_bare:.2f} |"
    )
    print(f"target: ratio <= 1.30 -> {'met' if best_tracked / best_bare <= 1.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
