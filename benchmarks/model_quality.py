"""Model quality per target on synthetic shops and on CDNOW: what serves against BG/NBD and the oracle.

Every figure comes from the product's own code on one time-based holdout per target: the training
set (`training_data.build_training_set`), the repurchase candidate (`candidates.fit_model`) and the
customer value model (`value_model.fit_value_model`), whose `target_quality` says per target what
serves (learned or flagged baseline), its ranking metric and BG/NBD (+ Gamma-Gamma)'s on the same
rows. H targets are judged on the holdout snapshot (c - H), 365-day targets on the year holdout
(c - 365; churn on the customer half `value_model` judges it on). The oracle scores the same rows:
`ground_truth` (the generator's latent rate, dropout and order value: an upper bound) for amounts,
and for probabilities both `p_observed` (Bayes-optimal from observable data: the reachable ceiling)
and `p_true` (latent). Repurchase serves what the promotion gates serve: the candidate when it beats
the better baseline, else that baseline.

CDNOW (the 23,570-customer master log lifetimes ships): the product trains with data through
1997-09-30 (H = 91) and what serves is judged on what each customer did in the next 91 days; a
second training with data through 1997-12-30 shows what its own plan judges on those same rows.

    .venv/bin/python benchmarks/model_quality.py --sizes 500 5000 50000 --cdnow
"""

from __future__ import annotations

import argparse
import importlib.resources
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlops_assets.core.lake.history import ORDER_COLUMNS
from mlops_assets.core.ml.baselines import baseline_predictions
from mlops_assets.core.ml.candidates import fit_model
from mlops_assets.core.ml.evaluation import amount_metrics, probability_metrics
from mlops_assets.core.ml.training_data import YEAR_HOLDOUT, TrainingPlan, build_training_set
from mlops_assets.core.ml.value_model import customer_half, fit_value_model
from mlops_assets.core.sources.files import load_normalized
from mlops_assets.core.tenants.registry import Tenant, file_settings
from mlops_assets.sim.demo_shops import CDNOW_COLUMNS
from mlops_assets.sim.oracle import CLV_DAYS, ground_truth, oracle
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)
RANKED = ("repurchase_probability", "churn_probability", "expected_orders", "expected_revenue", "clv_365d")
CDNOW_CUTOFF, CDNOW_HORIZON = date(1997, 9, 30), 91


def _rank(actual, predicted, probability: bool) -> float:
    if probability:
        return probability_metrics(actual, predicted)["auc"]
    return amount_metrics(actual, predicted)["normalized_gini"]


def _served_repurchase(built) -> tuple[str, float, float, np.ndarray]:
    """(served kind, served AUC, candidate AUC, candidate holdout probabilities), as the gates decide."""
    kind, _, probabilities = fit_model(built)
    holdout = built.split("holdout")
    y = holdout["label"].to_numpy()
    baselines = baseline_predictions(pd.concat([built.split("train"), built.split("valid")]), holdout)
    best_name, best = max(((n, _rank(y, p, True)) for n, p in baselines.items()), key=lambda item: item[1])
    candidate = _rank(y, probabilities, True)
    if kind == "lightgbm" and candidate >= best:
        return "lightgbm", candidate, candidate, probabilities
    return f"baseline ({best_name})", best, candidate, probabilities


def _oracle_scores(shop: SyntheticShop, day: date, horizon: int) -> pd.DataFrame:
    """Every target's oracle for each customer known at the end of `day`, latent and observable."""
    truth = ground_truth(shop, day, horizon)
    h, year = oracle(shop, day, horizon), oracle(shop, day, CLV_DAYS)
    scores = pd.DataFrame(
        {
            "customer_id": truth["customer_id"].astype(str),
            "expected_orders": truth["expected_orders_h"],
            "expected_revenue": truth["expected_spend_h"],
            "clv_365d": truth["expected_spend_365d"],
            "repurchase_probability": h["p_true"].to_numpy(),
            "repurchase_probability_observable": h["p_observed"].to_numpy(),
            "churn_probability": 1 - year["p_true"].to_numpy(),
            "churn_probability_observable": 1 - year["p_observed"].to_numpy(),
        }
    )
    return scores


def evaluate(customers: int, seed: int, history_days: int, train_snapshots: int) -> list[dict]:
    shop = SyntheticShop(
        ShopSpec(f"quality-{customers}", customers=customers, seed=seed, end=END, history_days=history_days)
    )
    started = time.perf_counter()
    plan = TrainingPlan(END, train_snapshots=train_snapshots)
    built = build_training_set(shop.raw_orders(), plan, shop.spec.timezone, END)
    served_kind, served_auc, candidate_auc, probabilities = _served_repurchase(built)
    quality = fit_value_model(built, "lightgbm" if served_kind == "lightgbm" else "fallback", probabilities).quality
    seconds = time.perf_counter() - started
    holdout, year = built.split("holdout"), built.split(YEAR_HOLDOUT)
    judged = {
        "repurchase_probability": (holdout, plan.holdout_day, "repurchased"),
        "expected_orders": (holdout, plan.holdout_day, "orders"),
        "expected_revenue": (holdout, plan.holdout_day, "revenue"),
        "clv_365d": (year, plan.year_holdout_day, "revenue_365d"),
        "churn_probability": (year.loc[~customer_half(year)], plan.year_holdout_day, "churned"),
    }
    oracles = {day: _oracle_scores(shop, day, plan.horizon_days) for day in (plan.holdout_day, plan.year_holdout_day)
               if day >= shop.spec.start + timedelta(days=1)}  # fmt: skip
    rows = []
    for target in RANKED:
        entry = quality[target]
        frame, day, label = judged[target]
        probability = entry["metric"] == "auc"
        row = {"customers": customers, "target": target, "metric": entry["metric"], "judged rows": len(frame)}
        if target == "repurchase_probability":
            row.update({"served is": served_kind, "served": served_auc, "learned": candidate_auc})
        else:
            learned = entry["holdout"] if entry["served"] == "lightgbm" else _learned_from(entry["flag"])
            row.update({"served is": entry["served"], "served": entry["holdout"], "learned": learned})
        row["BG/NBD"] = entry["baseline"]
        if len(frame) and day in oracles:
            scores = frame[["customer_id"]].astype(str).merge(oracles[day], on="customer_id", validate="one_to_one")
            actual = frame[label].to_numpy(float)
            row["oracle (latent)"] = _rank(actual, scores[target], probability)
            observable = f"{target}_observable"
            row["oracle (observable)"] = _rank(actual, scores[observable], True) if observable in scores else np.nan
            if not probability:
                row["bias served"] = entry["extra"].get("aggregate_bias", np.nan)
                row["bias BG/NBD"] = entry["extra"].get("baseline_aggregate_bias", np.nan)
                row["bias oracle"] = amount_metrics(actual, scores[target])["aggregate_bias"]
        row["flag"] = entry["flag"][:90]
        row["seconds"] = seconds
        rows.append(row)
    return rows


def _learned_from(flag: str) -> float:
    """The learned model's metric a losing target's flag reports ("... (gini 0.61 < 0.63)"), else NaN."""
    if "(" not in flag or "<" not in flag:
        return np.nan
    return float(flag.rsplit("(", 1)[1].split()[1])


def cdnow_history() -> pd.DataFrame:
    path = str(importlib.resources.files("lifetimes") / "datasets" / "CDNOW_master.txt")
    source = Tenant("cdnow", "CDNOW", "file", {**file_settings(path, "csv", CDNOW_COLUMNS), "delimiter": "whitespace"},
                    "UTC", "USD").source  # fmt: skip
    normalized = load_normalized(source, "UTC", "USD", "cdnow")
    orders = normalized.loc[normalized["_error"].isna(), ORDER_COLUMNS].reset_index(drop=True)
    stamps = ["created_at", "updated_at", "cancelled_at"]  # UTC instants, as the lake stores them
    return orders.assign(**{column: pd.to_datetime(orders[column], utc=True) for column in stamps})


def evaluate_cdnow() -> tuple[list[dict], dict]:
    """What serves when trained through the cutoff, judged on the 91 days after it; beside it what the
    product's own holdout says when trained 91 days later (its holdout is then those same rows)."""
    history = cdnow_history()
    through = pd.Timestamp(CDNOW_CUTOFF + timedelta(days=1), tz="UTC")
    early = build_training_set(history.loc[history["created_at"] < through], TrainingPlan(CDNOW_CUTOFF, CDNOW_HORIZON),
                               "UTC", CDNOW_CUTOFF)  # fmt: skip
    late_cutoff = CDNOW_CUTOFF + timedelta(days=CDNOW_HORIZON)
    late = build_training_set(history, TrainingPlan(late_cutoff, CDNOW_HORIZON), "UTC", late_cutoff)
    rows = late.split("holdout")  # the snapshot at the cutoff, labelled with the 91 days after it
    assert late.plan.holdout_day == CDNOW_CUTOFF
    kind, model, _ = fit_model(early)
    value = fit_value_model(early, kind, model.predict(early.split("holdout")) if len(early.split("holdout")) else [])
    predicted = value.predict(rows, CDNOW_CUTOFF)
    baseline = value.baseline.predict(rows, CDNOW_CUTOFF, CDNOW_HORIZON)
    late_kind, late_auc, late_candidate, late_probabilities = _served_repurchase(late)
    late_quality = fit_value_model(
        late, "lightgbm" if late_kind == "lightgbm" else "fallback", late_probabilities
    ).quality
    served = {"repurchase_probability": model.predict(rows), **{c: predicted[c].to_numpy() for c in predicted}}
    labels = {"repurchase_probability": "repurchased", "expected_orders": "orders", "expected_revenue": "revenue"}
    table = []
    for target, label in labels.items():
        actual, probability = rows[label].to_numpy(float), target == "repurchase_probability"
        entry = value.quality[target]
        row = {
            "target": target,
            "served (through 09-30)": (kind if kind == "lightgbm" else f"fallback ({model.kind})")
            if probability
            else entry["served"],
            "served": _rank(actual, served[target], probability),
            "BG/NBD": _rank(actual, baseline[target], probability),
        }
        if not probability:
            row["bias served"] = amount_metrics(actual, served[target])["aggregate_bias"]
            row["bias BG/NBD"] = amount_metrics(actual, baseline[target])["aggregate_bias"]
        late_entry = late_quality[target]
        row["served (through 12-30)"] = late_kind if probability else late_entry["served"]
        row["its holdout"] = late_auc if probability else late_entry["holdout"]
        row["learned"] = (
            late_candidate
            if probability
            else (late_entry["holdout"] if late_entry["served"] == "lightgbm" else _learned_from(late_entry["flag"]))
        )
        row["BG/NBD (its holdout)"] = late_entry["baseline"]
        if not probability:
            row["bias (its holdout)"] = late_entry["extra"].get("aggregate_bias", np.nan)
        table.append(row)
    facts = {
        "customers": history["customer_id"].nunique(),
        "judged rows": len(rows),
        "through 09-30 splits": early.summary()
        | {"snapshots": sorted(str(d) for d in early.frame["snapshot"].dt.date.unique())},
        "through 09-30 validation": early.validation,
        "through 09-30 holdout": str(early.plan.holdout_day),
        "through 09-30 cold start": early.cold_start_reasons,
        "through 09-30 flags": {t: e["flag"] for t, e in value.quality.items()},
        "through 12-30 splits": late.summary(),
        "through 12-30 flags": {t: e["flag"] for t, e in late_quality.items()},
    }
    return table, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[500, 5000, 50000])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--history-days", type=int, default=730)
    parser.add_argument("--train-snapshots", type=int, default=TrainingPlan.train_snapshots)
    parser.add_argument("--cdnow", action="store_true", help="also the CDNOW master log")
    args = parser.parse_args()
    rows = [row for size in args.sizes for row in evaluate(size, args.seed, args.history_days, args.train_snapshots)]
    if rows:
        table = pd.DataFrame(rows)
        print(table.to_markdown(index=False, floatfmt=".4f"))
        table["served - BG/NBD"] = table["served"] - table["BG/NBD"]
        table["gap to oracle"] = table["oracle (observable)"].fillna(table["oracle (latent)"]) - table["served"]
        big = table[table["customers"] >= 5000]
        print(
            "\nserved below BG/NBD:", table.loc[table["served - BG/NBD"] < 0, ["customers", "target"]].values.tolist()
        )
        print("5000+: gap to the oracle (observable for probabilities, latent for amounts) per target:")
        print(big.groupby("target")["gap to oracle"].max().to_string(float_format="%.4f"))
    if args.cdnow:
        table, facts = evaluate_cdnow()
        print("\nCDNOW master log, judged on the 91 days after 1997-09-30\n")
        print(pd.DataFrame(table).to_markdown(index=False, floatfmt=".4f"))
        for key, value in facts.items():
            print(f"- {key}: {value}")


if __name__ == "__main__":
    main()
