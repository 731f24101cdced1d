"""How good each target's predictions are: metrics, a quality grade, and calibration kept only when it helps.

- probabilities (repurchase, churn): AUC for ranking, Brier and reliability by decile for calibration;
- amounts (orders, revenue, CLV): normalized Gini and Spearman for ranking, MAE for error, and the
  aggregate bias sum(predicted) / sum(actual) (1 is unbiased), which a shop's revenue forecast lives on;
- the next-order date: the share of customers who ordered by their predicted date (the date is a
  median, so 0.5 is right) and the mean error in days of those who did order.

Grades (Poor / Fair / Good / Excellent) come from the ranking metric on the holdout: AUC below 0.6,
0.7, 0.8, or normalized Gini below 0.2, 0.4, 0.6. The AUC cut-offs are the common rule of thumb
(Hosmer & Lemeshow: 0.7 acceptable, 0.8 excellent) moved down one step, since churn and repurchase
from transactions alone rarely pass 0.9; the Gini cut-offs are the same ones, because on a yes/no
label normalized Gini = 2 AUC - 1 (tested). The date target has no grade of its own: it reads the
same curve as `repurchase_probability`, and shows its coverage instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GRADES = ("Poor", "Fair", "Good", "Excellent")
GRADE_THRESHOLDS = {"auc": (0.6, 0.7, 0.8), "normalized_gini": (0.2, 0.4, 0.6)}
GRADED_BY = {"probability": "auc", "amount": "normalized_gini"}


def _binary(labels) -> np.ndarray:
    return np.asarray(labels, float).astype(int)


def probability_metrics(labels, probabilities) -> dict[str, float]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y, p = _binary(labels), np.asarray(probabilities, float)
    both_classes = 0 < y.sum() < len(y)
    return {
        "auc": float(roc_auc_score(y, p)) if both_classes else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_predicted": float(p.mean()) if len(p) else float("nan"),
    }


def reliability_by_decile(labels, probabilities) -> pd.DataFrame:
    """Mean predicted against mean observed per decile of the predictions (ties share a decile): the
    observed share for a yes/no label, the observed mean for an amount."""
    frame = pd.DataFrame({"label": np.asarray(labels, float), "predicted": np.asarray(probabilities, float)})
    frame["decile"] = np.minimum((frame["predicted"].rank(method="min", pct=True) * 10).astype(int), 9) + 1
    return (
        frame.groupby("decile")
        .agg(mean_predicted=("predicted", "mean"), observed=("label", "mean"), customers=("label", "size"))
        .reset_index()
    )


def _gini(actual: np.ndarray, score: np.ndarray) -> float:
    """Area between the Lorenz curve of `actual` ordered by `score` (descending) and the diagonal.

    Customers with equal scores form one segment of the curve, so the order of ties never matters.
    """
    groups = pd.DataFrame({"actual": actual, "score": score}).groupby("score", sort=True)["actual"].agg(["sum", "size"])
    groups = groups.iloc[::-1]
    captured = np.concatenate([[0.0], np.cumsum(groups["sum"].to_numpy()) / actual.sum()])
    population = groups["size"].to_numpy() / len(actual)
    return float((population * (captured[1:] + captured[:-1]) / 2).sum() - 0.5)


def normalized_gini(actual, predicted) -> float:
    """Gini of the predictions over the Gini of a perfect ordering (1 perfect, 0 random); NaN
    when the actuals cannot be ordered (all equal, or none positive)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    if len(actual) == 0 or actual.sum() <= 0:
        return float("nan")
    best = _gini(actual, actual)
    return _gini(actual, predicted) / best if best > 0 else float("nan")


def amount_metrics(actual, predicted) -> dict[str, float]:
    from scipy.stats import spearmanr

    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    constant = len(actual) < 2 or np.ptp(actual) == 0 or np.ptp(predicted) == 0
    return {
        "normalized_gini": normalized_gini(actual, predicted),
        "spearman": float("nan") if constant else float(spearmanr(actual, predicted).statistic),
        "mae": float(np.abs(actual - predicted).mean()) if len(actual) else float("nan"),
        "aggregate_bias": float(predicted.sum() / actual.sum()) if actual.sum() > 0 else float("nan"),
    }


def next_order_metrics(days_to_next_order, observed_days, predicted_days) -> dict[str, float]:
    """On customers with a predicted date inside the observed future: who ordered by it (0.5 is
    right for a median) and how many days off the date was for those who ordered at all."""
    actual, predicted = np.asarray(days_to_next_order, float), np.asarray(predicted_days, float)
    judged = np.isfinite(predicted) & (predicted <= np.asarray(observed_days, float))
    by_date = np.nan_to_num(actual, nan=np.inf) <= np.ceil(predicted)
    ordered = judged & np.isfinite(actual)
    return {
        "ordered_by_date": float(by_date[judged].mean()) if judged.any() else float("nan"),
        "date_mae_days": float(np.abs(actual - predicted)[ordered].mean()) if ordered.any() else float("nan"),
        "dated_share": float(np.isfinite(predicted).mean()) if len(predicted) else float("nan"),
    }


def grade(kind: str, metrics: dict[str, float]) -> str | None:
    """Poor / Fair / Good / Excellent from the target kind's ranking metric; None when it is not graded
    or the metric could not be computed (say a holdout with one class)."""
    metric = GRADED_BY.get(kind)
    value = metrics.get(metric, float("nan")) if metric else float("nan")
    if not np.isfinite(value):
        return None
    return GRADES[int(np.searchsorted(GRADE_THRESHOLDS[metric], value, side="right"))]


@dataclass
class Calibrator:
    """A probability map fitted on a calibration split, with the holdout Brier it earned its place on."""

    method: str  # "isotonic" or "platt"
    model: object
    holdout_brier_before: float
    holdout_brier_after: float

    def predict(self, probabilities) -> np.ndarray:
        p = np.asarray(probabilities, float)
        if self.method == "isotonic":
            return self.model.predict(p)
        return self.model.predict_proba(_logit(p))[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).reshape(-1, 1)


def choose_calibration(calibration_labels, calibration_scores, holdout_labels, holdout_scores) -> Calibrator | None:
    """Isotonic regression and Platt scaling (a logistic fit on the score's logit), each fitted on the
    calibration split; the one with the lower holdout Brier is kept if it beats the raw scores' there
    without lowering their holdout AUC, else None (serve the scores as they are). None too when the
    calibration split has one class.

    The AUC condition: isotonic steps turn distinct scores into ties, and on a 500-customer shop the kept
    isotonic map cost churn 0.024 AUC against its own baseline (benchmarks/model_quality.py); Platt is
    monotone and never does."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss

    y_fit, p_fit = _binary(calibration_labels), np.asarray(calibration_scores, float)
    y_hold, p_hold = _binary(holdout_labels), np.asarray(holdout_scores, float)
    if not 0 < y_fit.sum() < len(y_fit) or len(y_hold) == 0:
        return None
    before = float(brier_score_loss(y_hold, p_hold))
    fitted = {
        "isotonic": IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p_fit, y_fit),
        "platt": LogisticRegression(C=np.inf).fit(_logit(p_fit), y_fit),
    }
    auc_before = probability_metrics(y_hold, p_hold)["auc"]
    candidates = []
    for method, model in fitted.items():
        candidate = Calibrator(method, model, before, float("nan"))
        calibrated = candidate.predict(p_hold)
        candidate.holdout_brier_after = float(brier_score_loss(y_hold, calibrated))
        if not probability_metrics(y_hold, calibrated)["auc"] < auc_before - 1e-9:  # NaN AUC: one class, keep
            candidates.append(candidate)
    best = min(candidates, key=lambda candidate: candidate.holdout_brier_after, default=None)
    return best if best is not None and best.holdout_brier_after < before else None
