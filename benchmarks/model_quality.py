"""Model quality on synthetic shops against the oracle and the baselines, on one time-based holdout.

For each shop size: the LightGBM candidate, the recency/frequency and BG/NBD baselines, what the
promotion gates would serve (the candidate if it beats the better baseline, else the flagged
best-baseline fallback), and two oracles: `p_observed` (Bayes-optimal from observable data with the
generator's true prior: the reachable ceiling) and `p_true` (knows each customer's latent rate and
dropout: an upper bound no model reaches).

    .venv/bin/python benchmarks/model_quality.py --sizes 500 5000 50000
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import pandas as pd
from sklearn.metrics import roc_auc_score

from mlops_assets.core.ml.baselines import baseline_predictions
from mlops_assets.core.ml.models import fit_lightgbm
from mlops_assets.core.ml.training_data import TrainingPlan, build_training_set
from mlops_assets.sim.oracle import oracle as shop_oracle
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)


def evaluate(customers: int, seed: int) -> dict:
    shop = SyntheticShop(ShopSpec(f"quality-{customers}", customers=customers, seed=seed, end=END, history_days=730))
    started = time.perf_counter()
    built = build_training_set(shop.raw_orders(), TrainingPlan(END), shop.spec.timezone, END)
    train, valid, holdout = built.split("train"), built.split("valid"), built.split("holdout")
    model = fit_lightgbm(train, valid)
    y = holdout["label"].to_numpy()
    model_auc = roc_auc_score(y, model.predict(holdout))
    baselines = {k: roc_auc_score(y, v) for k, v in baseline_predictions(pd.concat([train, valid]), holdout).items()}
    best_baseline = max(baselines.values())
    served = model_auc if model_auc >= best_baseline else best_baseline
    oracle = shop_oracle(shop, built.plan.holdout_day, built.plan.horizon_days)
    oracle["customer_id"] = oracle["customer_id"].astype(str)
    joined = holdout.merge(oracle, on="customer_id", validate="one_to_one")
    assert (joined["label"].astype(bool) == joined["ordered"]).all(), "labels must equal what customers did"
    observed = roc_auc_score(joined["label"], joined["p_observed"])
    return {
        "customers": customers,
        "holdout rows": len(holdout),
        "positives": int(y.sum()),
        "LightGBM": model_auc,
        "recency/frequency": baselines["recency_frequency"],
        "BG/NBD": baselines.get("bgnbd", float("nan")),
        "served": served,
        "served is": "LightGBM" if model_auc >= best_baseline else "fallback",
        "oracle (observable)": observed,
        "oracle (latent)": roc_auc_score(joined["label"], joined["p_true"]),
        "gap to observable oracle": observed - served,
        "served - best baseline": served - best_baseline,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rows = [evaluate(size, args.seed) for size in args.sizes]
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".4f"))
    big = table[table["customers"] >= 5000]
    print(
        f"\nshops of 5000+: largest gap to the observable oracle {big['gap to observable oracle'].max():.4f} "
        f"(target <= 0.03); served below the best baseline: {(table['served - best baseline'] < 0).any()}"
    )


if __name__ == "__main__":
    main()
