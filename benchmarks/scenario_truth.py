"""How much ranking each drift scenario takes from a model that knows the world as it was, by ground truth.

For each seed and scenario: the shop's true P(an order within H) as of the day before the start, once
by the calm shop's truth (a perfect model frozen at the event: identical history, old behaviour) and
once by the scenario's (the same customers, the new behaviour), both scored on what the scenario's
customers then did in the H days from the start. Their AUC difference is the ceiling of what any
retrain can regain; concept drift should lose clearly, covariate shift and broken data nothing (the
truth does not change; broken data only hurts labels and features made from it). A `LevelShift`
redraws the whole shop (it is the former `DriftScenario`, bit for bit), so it has no calm twin here;
it multiplies every rate by the same factor and reorders no one.

    .venv/bin/python benchmarks/scenario_truth.py --seeds 1 2 3 --customers 5000
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

import numpy as np
from sklearn.metrics import roc_auc_score

from mlops_assets.sim.oracle import oracle
from mlops_assets.sim.scenarios import SCENARIOS, LevelShift
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)
START = END - timedelta(days=120)


def auc_pair(seed: int, customers: int, name: str, horizon: int) -> tuple[float, float]:
    def truth(scenario):
        spec = ShopSpec(f"truth{seed}", customers=customers, seed=seed, end=END, history_days=500, scenario=scenario)
        return oracle(SyntheticShop(spec), START - timedelta(days=1), horizon)

    drifted, calm = truth(SCENARIOS[name](START)), truth(None)
    ordered = drifted["ordered"].to_numpy()
    return roc_auc_score(ordered, calm["p_true"]), roc_auc_score(ordered, drifted["p_true"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--horizon", type=int, default=30)
    args = parser.parse_args()
    print(f"| scenario | frozen truth AUC | scenario truth AUC | AUC lost by freezing (mean over seeds {args.seeds}) |")
    print("|---|---|---|---|")
    for name in SCENARIOS:
        if isinstance(SCENARIOS[name](START), LevelShift):
            print(f"| `{name}` | n/a | n/a | no calm twin (the whole shop is redrawn) |")
            continue
        pairs = np.array([auc_pair(seed, args.customers, name, args.horizon) for seed in args.seeds])
        frozen, current = pairs.mean(axis=0)
        print(f"| `{name}` | {frozen:.3f} | {current:.3f} | {current - frozen:+.3f} |")


if __name__ == "__main__":
    main()
