"""The customer value model: every target beside repurchase, fitted on one training set and logged in the
same MLflow run as the repurchase model, so one registered version carries every target.

Per target, what serves and why (`target_quality`, the shape of the model card in docs/architecture.md):

- the baseline is BG/NBD + Gamma-Gamma (`clv.fit_customer_value`); what serves is fitted on the
  `cutoff` snapshot, and what is judged is fitted on the judged snapshot alone (no labels, no leakage);
- `expected_orders` (LightGBM, Poisson) and `expected_revenue` (Tweedie) learn on `train`, stop early
  on `valid` and serve only if their normalized Gini on `holdout` is at least the baseline's;
- `churn_probability` (binary) and `clv_365d` (Tweedie) need 365-day labels that end before the
  `year_holdout` snapshot (c - 365) begins, so training snapshots from c - 730 back, with early stopping
  on a customer half of them: a plan or history that does not reach so far serves the flagged baseline.
  Churn is judged on one customer half of the year holdout; the other half fits a calibration
  (`evaluation.choose_calibration`), kept only when it lowers the judged half's Brier;
- `expected_next_order_date` is BG/NBD's median wait: a learned date would need a model of the
  censored time to the next order, which these objectives do not fit;
- `repurchase_probability` is the repurchase model's own quality, measured beside the same baseline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_assets.core.ml.clv import CLV_DAYS, CustomerValueModel, fit_customer_value
from mlops_assets.core.ml.evaluation import (
    GRADED_BY,
    amount_metrics,
    choose_calibration,
    grade,
    next_order_metrics,
    probability_metrics,
    reliability_by_decile,
)
from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.targets import TARGETS, Target
from mlops_assets.core.ml.training_data import CUTOFF, YEAR_HOLDOUT, TrainingSet

if TYPE_CHECKING:  # LightGBM loads when a model is fitted or read, never when the code location loads
    import lightgbm as lgb

BY_NAME = {target.name: target for target in TARGETS}
VALUE_COLUMNS = ["expected_orders", "expected_revenue", "clv_365d", "churn_probability", "expected_next_order_date"]
VALUE_NUMBERS = VALUE_COLUMNS[:-1]
OBJECTIVES = {"expected_orders": "poisson", "expected_revenue": "tweedie", "clv_365d": "tweedie",
              "churn_probability": "binary"}  # fmt: skip
DATE_FLAG = "baseline only: a learned date needs a model of the censored time to the next order"
PREDATES_FLAG = "baseline fitted at scoring: model version predates the targets"
LOST_FLAG = "learned model did not beat BG/NBD on the holdout"


@dataclass
class ValueModel:
    """The served baseline, the learned boosters that beat it, churn's calibration map, and the evidence."""

    horizon_days: int
    baseline: CustomerValueModel
    learned: dict[str, lgb.Booster] = field(default_factory=dict)
    calibration: dict | None = None  # {"method": "isotonic", "x", "y"} or {"method": "platt", "coef", "intercept"}
    quality: dict[str, dict] = field(default_factory=dict)

    def predict(self, snapshot: pd.DataFrame, day: date) -> pd.DataFrame:
        """`VALUE_COLUMNS` per row of `snapshot` (same order); the date is NaT beyond 365 days."""
        rows = snapshot if "customer_id" in snapshot else snapshot.assign(customer_id=np.arange(len(snapshot)))
        predicted = self.baseline.predict(rows, day, self.horizon_days)[VALUE_COLUMNS]
        for name, booster in self.learned.items():
            predicted[name] = booster.predict(rows[FEATURES].to_numpy(float))
        if self.calibration is not None:
            predicted["churn_probability"] = calibrate(self.calibration, predicted["churn_probability"])
        return predicted.reset_index(drop=True)

    def document(self) -> dict:
        """Everything but the boosters, as JSON (the boosters are model strings beside it)."""
        return {
            "horizon_days": self.horizon_days,
            "baseline": {
                "transactions": self.baseline.transactions,
                "spend": self.baseline.spend,
                "fallbacks": self.baseline.fallbacks,
            },
            "learned": sorted(self.learned),
            "calibration": self.calibration,
            "target_quality": self.quality,
        }

    def model_strings(self) -> dict[str, str]:
        return {name: booster.model_to_string() for name, booster in self.learned.items()}

    @classmethod
    def from_document(cls, document: dict, model_strings: dict[str, str]) -> ValueModel:
        import lightgbm as lgb

        baseline = CustomerValueModel(**document["baseline"])
        learned = {name: lgb.Booster(model_str=model_strings[name]) for name in document["learned"]}
        return cls(document["horizon_days"], baseline, learned, document["calibration"], document["target_quality"])

    @classmethod
    def fitted_at_scoring(cls, snapshot: pd.DataFrame, horizon_days: int) -> ValueModel:
        """For versions registered before the targets: the baseline of the day's snapshot, flagged."""
        return cls(horizon_days, fit_customer_value(snapshot, horizon_days), quality=predates_quality())


def calibrate(calibration: dict, probabilities) -> np.ndarray:
    p = np.asarray(probabilities, float)
    if calibration["method"] == "isotonic":  # sklearn's isotonic `predict` with out_of_bounds="clip"
        return np.interp(p, calibration["x"], calibration["y"])
    logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    return 1 / (1 + np.exp(-(calibration["coef"] * logit + calibration["intercept"])))


def _calibration_map(calibrator) -> dict:
    if calibrator.method == "isotonic":
        return {"method": "isotonic", "x": calibrator.model.X_thresholds_.tolist(),
                "y": calibrator.model.y_thresholds_.tolist()}  # fmt: skip
    return {"method": "platt", "coef": float(calibrator.model.coef_[0][0]),
            "intercept": float(calibrator.model.intercept_[0])}  # fmt: skip


def _metric(target: Target) -> str:
    return GRADED_BY.get(target.kind, "coverage")


def unjudged(target: Target, served: str, flag: str) -> dict:
    return {"served": served, "flag": flag, "metric": _metric(target), "holdout": None, "baseline": None,
            "grade": None, "extra": {}, "deciles": [], "baseline_deciles": []}  # fmt: skip


def _finite(value) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _deciles(actual, predicted) -> list[dict]:
    table = reliability_by_decile(actual, predicted)
    return [
        {"decile": int(row.decile), "mean_predicted": float(row.mean_predicted), "observed": float(row.observed)}
        for row in table.itertuples()
    ]


def _metrics(target: Target, actual, predicted) -> dict[str, float]:
    if target.kind == "probability":
        return probability_metrics(actual, predicted)
    return amount_metrics(actual, predicted)


def judged(target: Target, served: str, flag: str, actual, predicted, baseline, extra=None) -> dict:
    """A target's quality entry: the served predictions against the baseline on the same rows."""
    mine, theirs = _metrics(target, actual, predicted), _metrics(target, actual, baseline)
    metric = _metric(target)
    details = {k: v for k, v in mine.items() if k != metric}
    details.update({f"baseline_{k}": v for k, v in theirs.items() if k != metric})
    details.update(extra or {})
    return {
        "served": served,
        "flag": flag,
        "metric": metric,
        "holdout": _finite(mine[metric]),
        "baseline": _finite(theirs[metric]),
        "grade": grade(target.kind, mine),
        "extra": {k: float(v) for k, v in details.items() if v is not None and np.isfinite(v)},
        "deciles": _deciles(actual, predicted),
        "baseline_deciles": _deciles(actual, baseline),
    }


def customer_half(frame: pd.DataFrame) -> np.ndarray:
    """A stable half of the customers (by a hash of the id), the same in every run and process."""
    return np.array([hashlib.sha256(str(c).encode()).digest()[0] % 2 == 0 for c in frame["customer_id"]], bool)


def _baseline_on(snapshot: pd.DataFrame, day: date, horizon_days: int) -> pd.DataFrame:
    """The baseline fitted on this snapshot's rows alone (it needs no labels), predicting them."""
    return fit_customer_value(snapshot, horizon_days).predict(snapshot, day, horizon_days)


def _learn(target: Target, train: pd.DataFrame, valid: pd.DataFrame) -> lgb.Booster:
    import lightgbm as lgb

    from mlops_assets.core.ml.models import fit_lightgbm

    clipped = [frame.assign(**{target.label: frame[target.label].clip(lower=0)}) for frame in (train, valid)]
    fitted = fit_lightgbm(*clipped, {"objective": OBJECTIVES[target.name]}, label=target.label)
    return lgb.Booster(model_str=fitted.booster.model_to_string(num_iteration=fitted.best_iteration))


def _ranking(target: Target, actual, predicted) -> float:
    value = _metrics(target, actual, predicted)[_metric(target)]
    return value if np.isfinite(value) else -np.inf


def _compete(target, train, valid, judged_rows, baseline, *, why_not: str | None):
    """(booster or None, flag, the served predictions on `judged_rows`): learned only if it ranks at least as well."""
    actual = judged_rows[target.label].to_numpy(float)
    if why_not is not None:
        return None, why_not, baseline
    booster = _learn(target, train, valid)
    learned = booster.predict(judged_rows[FEATURES].to_numpy(float))
    mine, theirs = _ranking(target, actual, learned), _ranking(target, actual, baseline)
    if mine >= theirs:
        return booster, "", learned
    return None, f"{LOST_FLAG} ({_metric(target)} {mine:.4f} < {theirs:.4f})", baseline


def _enough(rows: pd.DataFrame, label: str, minimum: int) -> bool:
    values = rows[label].dropna()
    return len(values) >= minimum and values.sum() > 0 and values.nunique() > 1


def fit_value_model(built: TrainingSet, repurchase_kind: str, repurchase_holdout: np.ndarray) -> ValueModel:
    """Every target's model and its evidence from one training set (`repurchase_*`: the repurchase
    model's kind and holdout probabilities, judged here beside the same baseline)."""
    plan = built.plan
    horizon = plan.horizon_days
    model = ValueModel(horizon, fit_customer_value(built.split(CUTOFF), horizon))
    holdout = built.split("holdout")
    base = _baseline_on(holdout, plan.holdout_day, horizon) if len(holdout) else None
    cold = "cold start: " + "; ".join(built.cold_start_reasons) if built.cold_start_reasons else None
    repurchase = BY_NAME["repurchase_probability"]
    served = "lightgbm" if repurchase_kind == "lightgbm" else "baseline"
    if base is not None and _enough(holdout, "label", 1):
        model.quality[repurchase.name] = judged(repurchase, served, cold or "", holdout["label"],
                                                repurchase_holdout, base[repurchase.name])  # fmt: skip
    else:
        model.quality[repurchase.name] = unjudged(repurchase, served, cold or "no holdout with both outcomes")
    for name in ("expected_orders", "expected_revenue"):
        target = BY_NAME[name]
        if base is None or not _enough(holdout, target.label, 1):
            model.quality[name] = unjudged(target, "baseline", cold or "no holdout with orders to judge on")
            continue
        train, valid, _ = learning_rows(built, target)
        booster, flag, served_predictions = _compete(target, train, valid, holdout, base[name].to_numpy(), why_not=cold)
        if booster is not None:
            model.learned[name] = booster
        kind = "lightgbm" if booster is not None else "baseline"
        model.quality[name] = judged(target, kind, flag, holdout[target.label], served_predictions, base[name])
    _fit_year_targets(model, built, cold)
    _judge_next_order_date(model, built, base)
    return model


def learning_rows(built: TrainingSet, target: Target) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(fit rows, early-stopping rows, why there are none): never a judged snapshot's rows, and no label
    window reaching past the day the target is judged on (H targets: the plan's train and validation
    splits; 365-day targets: the training snapshots from c - 730 back, split by customer)."""
    if target.window_days is None:
        return built.split("train"), built.split("valid"), None
    rows, why_not = _year_learning_rows(built)
    half = customer_half(rows)
    return rows[half], rows[~half], why_not


def _year_learning_rows(built: TrainingSet) -> tuple[pd.DataFrame, str | None]:
    """Rows whose 365-day labels end before the year holdout begins, or why there are none."""
    last_day = built.plan.year_holdout_day - timedelta(days=CLV_DAYS)
    fitted = built.frame.loc[built.frame["split"].isin(["train", "valid"])]
    rows = fitted.loc[fitted["snapshot"] <= pd.Timestamp(last_day)]
    if len(rows):
        return rows, None
    needed = (built.plan.cutoff - last_day).days + built.plan.min_tenure_days
    oldest = fitted["snapshot"].min().date() if len(fitted) else "none"
    return rows, (
        f"needs {needed} days of history for a 365-day label before a holdout, and training snapshots from "
        f"{last_day} back (the oldest is {oldest})"
    )


def _fit_year_targets(model: ValueModel, built: TrainingSet, cold: str | None) -> None:
    """churn_probability and clv_365d, judged on the year holdout (c - 365)."""
    year, day, horizon = built.split(YEAR_HOLDOUT), built.plan.year_holdout_day, built.plan.horizon_days
    if not len(year) or not _enough(year, "churned", 1):
        flag = f"no snapshot 365 days before the cutoff ({day}) with both outcomes: needs a year of history"
        for name in ("churn_probability", "clv_365d"):
            model.quality[name] = unjudged(BY_NAME[name], "baseline", cold or flag)
        return
    base = _baseline_on(year, day, horizon)
    clv = BY_NAME["clv_365d"]
    train, valid, why_not = learning_rows(built, clv)
    why_not = cold or why_not
    rows = pd.concat([train, valid])
    if why_not is None and not (_enough(rows, "churned", 50) and _enough(rows, "revenue_365d", 50)):
        why_not = f"{len(rows)} rows with a 365-day label before the year holdout: too few to learn from"
    booster, flag, served = _compete(clv, train, valid, year, base[clv.name].to_numpy(), why_not=why_not)
    if booster is not None:
        model.learned[clv.name] = booster
    model.quality[clv.name] = judged(clv, "lightgbm" if booster else "baseline", flag, year[clv.label], served,
                                     base[clv.name])  # fmt: skip
    _fit_churn(model, year, base, train, valid, why_not)


def _fit_churn(model, year, base, train, valid, why_not) -> None:
    """Judged on one customer half of the year holdout; the other half fits the calibration."""
    churn = BY_NAME["churn_probability"]
    judged_half = ~customer_half(year)
    scored, calibration_rows = year.loc[judged_half], year.loc[~judged_half]
    baseline = base[churn.name].to_numpy()
    booster, flag, served = _compete(churn, train, valid, scored, baseline[judged_half], why_not=why_not)
    if booster is not None:
        model.learned[churn.name] = booster
    fitted_scores = booster.predict(calibration_rows[FEATURES].to_numpy(float)) if booster else baseline[~judged_half]
    calibrator = choose_calibration(calibration_rows["churned"], fitted_scores, scored["churned"], served)
    extra = {}
    if calibrator is not None:
        model.calibration = _calibration_map(calibrator)
        extra = {"brier_before_calibration": calibrator.holdout_brier_before}
        served = calibrate(model.calibration, served)
    extra["calibrated"] = float(calibrator is not None)
    model.quality[churn.name] = judged(churn, "lightgbm" if booster else "baseline", flag, scored["churned"],
                                       served, baseline[judged_half], extra)  # fmt: skip


def _judge_next_order_date(model: ValueModel, built: TrainingSet, holdout_baseline) -> None:
    """Coverage of BG/NBD's median date on the year holdout (a year of observed future), else the holdout."""
    target = BY_NAME["expected_next_order_date"]
    year = built.split(YEAR_HOLDOUT)
    rows, day = (year, built.plan.year_holdout_day) if len(year) else (built.split("holdout"), built.plan.holdout_day)
    if not len(rows):
        model.quality[target.name] = unjudged(target, "baseline", f"{DATE_FLAG}; no snapshot to judge it on")
        return
    base = _baseline_on(rows, day, built.plan.horizon_days) if len(year) else holdout_baseline
    observed = np.full(len(rows), (built.plan.cutoff - day).days)
    found = next_order_metrics(rows[target.label], observed, base["next_order_in_days"])
    entry = unjudged(target, "baseline", DATE_FLAG)
    entry["holdout"] = entry["baseline"] = _finite(found["ordered_by_date"])
    entry["extra"] = {k: v for k, v in found.items() if np.isfinite(v)}
    model.quality[target.name] = entry


def quality_metrics(quality: dict[str, dict]) -> dict[str, float]:
    """MLflow metrics of every target: `<target>_holdout_<metric>`, `<target>_baseline_<metric>`, extras."""
    metrics = {}
    for name, entry in quality.items():
        for side in ("holdout", "baseline"):
            if entry[side] is not None:
                metrics[f"{name}_{side}_{entry['metric']}"] = entry[side]
        metrics.update({f"{name}_{key}": value for key, value in entry["extra"].items()})
    return metrics


def quality_tags(quality: dict[str, dict]) -> dict[str, str]:
    return {f"target_{name}_served": entry["served"] for name, entry in quality.items()}


def value_model_digest(model: ValueModel) -> str:
    """What `mlops reproduce` compares: the document and every booster, byte for byte."""
    content = json.dumps({"document": model.document(), "boosters": model.model_strings()}, sort_keys=True)
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def predates_quality() -> dict[str, dict]:
    """The card of a version registered before the targets: every value target is the day's baseline."""
    return {t.name: unjudged(t, "baseline", PREDATES_FLAG) for t in TARGETS if t.name in VALUE_COLUMNS}
