"""LightGBM fit, holdout metrics and plots.

`deterministic=True, force_row_wise=True` and a fixed seed make the model bit-identical across
runs and thread counts, which `mlops reproduce` relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from mlops_assets.core.ml.features import FEATURES

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.03,
    "num_leaves": 7,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 20260101,
    "verbose": -1,
}
# Below this many training rows one thread is fastest: OpenMP's threads spin on a busy machine (300
# rounds on 15k rows took 25 s with 2 threads beside other runs, 1.4 s with one). Models are bit-identical
# across thread counts (deterministic=True), so this changes time, never the model.
SINGLE_THREAD_ROWS = 500_000
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50


@dataclass
class FittedModel:
    booster: lgb.Booster
    params: dict[str, object]
    best_iteration: int

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(features[FEATURES].to_numpy(float), num_iteration=self.best_iteration)


def fit_lightgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    params: dict | None = None,
    label: str = "label",
    weight: np.ndarray | None = None,
) -> FittedModel:
    """Early stopping on `valid`; `params` override the defaults (the value model's objectives), `label`
    names the column to learn; `weight` weighs the training rows (recent snapshots after a drift, a
    pool's tenants), never the validation rows, so early stopping judges the plain population."""
    params = {**DEFAULT_PARAMS, "num_threads": 1 if len(train) < SINGLE_THREAD_ROWS else 0, **(params or {})}
    train_set = lgb.Dataset(
        train[FEATURES].to_numpy(float),
        train[label].to_numpy(float),
        weight=weight,
        feature_name=FEATURES,
        free_raw_data=False,
    )
    valid_set = lgb.Dataset(valid[FEATURES].to_numpy(float), valid[label].to_numpy(float), reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    return FittedModel(booster, params, booster.best_iteration or booster.current_iteration())


def holdout_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "holdout") -> dict[str, float]:
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
    order = np.argsort(-p, kind="stable")
    top = order[: max(1, len(p) // 10)]
    base_rate = float(y.mean()) if len(y) else float("nan")
    precision_top = float(y[top].mean()) if len(y) else float("nan")
    both_classes = 0 < y.sum() < len(y)
    return {
        f"{prefix}_auc": float(roc_auc_score(y, p)) if both_classes else float("nan"),
        f"{prefix}_pr_auc": float(average_precision_score(y, p)) if both_classes else float("nan"),
        f"{prefix}_brier": float(brier_score_loss(y, p)),
        f"{prefix}_log_loss": float(log_loss(y, p, labels=[0, 1])),
        f"{prefix}_precision_top_decile": precision_top,
        f"{prefix}_lift_top_decile": precision_top / base_rate if base_rate > 0 else float("nan"),
        f"{prefix}_base_rate": base_rate,
    }


def calibration_figure(y: np.ndarray, p: np.ndarray, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axis.plot(predicted, observed, marker="o", label="model")
    axis.set(xlabel="predicted probability", ylabel="observed share", title=title)
    axis.legend()
    figure.tight_layout()
    return figure


def importance_figure(model: FittedModel, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gain = pd.Series(model.booster.feature_importance("gain"), index=FEATURES).sort_values()
    figure, axis = plt.subplots(figsize=(6, 7))
    gain.plot.barh(ax=axis)
    axis.set(xlabel="total gain", title=title)
    figure.tight_layout()
    return figure
