"""Daily batch scores: the tenant's production model applied to a customer feature snapshot.

Each row carries what the dashboard and the API need without touching MLflow: the probability of
an order within the tenant's horizon, rank and percentile, the three features that moved the score
most (LightGBM's per-feature contributions), every customer value target of the same version
(expected orders and revenue in the horizon, CLV over 365 days, churn probability, the next order's
date, the spend tier) with the churn-risk band, and the lineage of the score (model name and
version, the snapshot's data digest, the Dagster run).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.targets import spend_tiers
from mlops_assets.core.ml.value_model import VALUE_COLUMNS, VALUE_NUMBERS, ValueModel, predates_quality
from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.warehouse.engine import PREDICTION_COLUMNS

if TYPE_CHECKING:  # MLflow loads only when a model does, never when the code location does
    from mlops_assets.core.ml.tracking import ModelRegistry

HISTOGRAM_BINS = 20
MODEL_CARD = "model_card"
TOP_REASONS = 3
# The frame's columns: the warehouse's, and the targets of issue 16 until its migration adds them.
SCORED_COLUMNS = [*PREDICTION_COLUMNS, *(c for c in [*VALUE_COLUMNS, "spend_tier"] if c not in PREDICTION_COLUMNS)]
AMOUNTS = ("expected_orders", "expected_revenue", "clv_365d")


class NoProductionModel(LookupError):
    pass


@dataclass(frozen=True)
class RiskBands:
    """Churn risk from `churn_probability` (no order in the next 365 days).

    Absolute thresholds (not quantiles), so the band counts move when customers' behaviour does:
    `high` from 70%, `medium` from 40%, `low` below. Settable per deployment. The band used to come
    from the probability of ordering within the horizon, which called most of a shop "high risk"
    (59% on the demo) because a short horizon is missed by loyal customers too.
    """

    high_from: float = 0.7
    medium_from: float = 0.4

    def __post_init__(self):
        if not 0 < self.medium_from < self.high_from < 1:
            raise ValueError(
                f"risk bands need 0 < medium_from ({self.medium_from}) < high_from ({self.high_from}) < 1 "
                "(fix: the policy's medium_churn_from and high_churn_from)"
            )

    def of(self, churn_probabilities: np.ndarray) -> np.ndarray:
        churn = np.asarray(churn_probabilities, float)
        return np.where(churn >= self.high_from, "high", np.where(churn >= self.medium_from, "medium", "low"))


@dataclass
class ServedModel:
    """A tenant's production model as loaded once per run, with its explanation method."""

    tenant_id: str
    name: str
    version: str
    kind: str
    metrics: dict[str, float]
    cutoff: str | None
    predict: Callable[[pd.DataFrame], np.ndarray]
    contributions: Callable[[pd.DataFrame], np.ndarray] | None = field(default=None, repr=False)
    horizon_days: int = 30
    value: ValueModel | None = field(default=None, repr=False)  # None: registered before the targets

    def values(self, features: pd.DataFrame, day: date) -> pd.DataFrame:
        """Every value target; a version without a value model gets the day's own baseline, flagged."""
        model = self.value or ValueModel.fitted_at_scoring(features, self.horizon_days)
        return model.predict(features, day)

    def card(self) -> dict:
        keep = ("holdout_auc", "baseline_auc", "holdout_pr_auc", "holdout_brier", "holdout_lift_top_decile")
        return {
            "model_name": self.name,
            "model_version": self.version,
            "model_kind": self.kind,
            "model_metrics": {k: self.metrics[k] for k in keep if np.isfinite(self.metrics.get(k, np.nan))},
            "target_quality": self.value.quality if self.value else predates_quality(),
        }


def _linear_contributions(baseline) -> Callable[[pd.DataFrame], np.ndarray]:
    """Recency/frequency logistic terms, centred on the day's customers (the average customer is 0)."""
    from mlops_assets.core.ml.baselines import RF_INPUTS, rf_design

    positions = [FEATURES.index(name) for name in RF_INPUTS]
    coefficients = np.asarray(baseline.recency_frequency.coefficients)

    def contributions(features: pd.DataFrame) -> np.ndarray:
        terms = rf_design(features) * coefficients
        out = np.zeros((len(features), len(FEATURES)))
        out[:, positions] = terms - terms.mean(axis=0)
        return out

    return contributions


_LOADED: OrderedDict[tuple[str, str, str], ServedModel] = OrderedDict()
LOADED_MODELS_KEPT = 64


def load_served_model(registry: ModelRegistry, tenant_id: str, version: str | None = None) -> ServedModel:
    """A registered version ready to score; by default the one `production` points at.

    Registered versions never change, so a process keeps the last few it loaded: the predictions and
    drift steps of one run, and realized performance's replaced version, load each model once.
    """
    from mlops_assets.core.ml.tracking import PRODUCTION

    current = registry.alias_version(tenant_id, PRODUCTION) if version is None else registry.version(tenant_id, version)
    if current is None:
        raise NoProductionModel(
            f"tenant {tenant_id} has no `production` model to score with "
            f"(fix: `mlops train --tenant {tenant_id}`, or materialize its production_model)"
        )
    key = (registry.tracking_uri, tenant_id, current.version)
    if key not in _LOADED:
        _LOADED[key] = _load(registry, tenant_id, current)
        while len(_LOADED) > LOADED_MODELS_KEPT:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    return _LOADED[key]


def _load(registry: ModelRegistry, tenant_id: str, current) -> ServedModel:
    from mlops_assets.core.ml.tracking import model_name

    cutoff = current.tags.get("cutoff")
    pyfunc = registry.load(tenant_id, current.version)
    kind = current.tags.get("model_kind", "lightgbm")
    run = registry.run(current.run_id)
    metrics = dict(run.data.metrics)
    targets = {
        "horizon_days": int(run.data.params.get("plan_horizon_days", 30)),
        "value": registry.value_model(current.run_id),
    }
    if kind == "lightgbm":
        booster = pyfunc.get_raw_model()

        def predict(features):
            return booster.predict(features[FEATURES].to_numpy(float))

        def contributions(features):
            return booster.predict(features[FEATURES].to_numpy(float), pred_contrib=True)[:, : len(FEATURES)]

        return ServedModel(
            tenant_id, model_name(tenant_id), current.version, kind, metrics, cutoff, predict, contributions, **targets
        )
    baseline = pyfunc.unwrap_python_model().baseline
    explain = _linear_contributions(baseline) if baseline.kind == "recency_frequency" else None
    return ServedModel(
        tenant_id,
        model_name(tenant_id),
        current.version,
        f"fallback:{baseline.kind}",
        metrics,
        cutoff,
        lambda features: np.asarray(pyfunc.predict(features[FEATURES]), float),
        explain,
        **targets,
    )


def top_reasons(contributions: np.ndarray | None, features: pd.DataFrame) -> list[str]:
    """Per customer, a JSON list of the features that moved the score most: [feature, log-odds, value]."""
    if contributions is None or not len(features):
        return ["[]"] * len(features)
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
    values = features[FEATURES].to_numpy(float)
    rows = np.arange(len(features))[:, None]
    picked, effect, value = order.tolist(), contributions[rows, order].round(4).tolist(), values[rows, order].tolist()
    return [
        json.dumps(
            [[FEATURES[i], e, None if v != v else round(v, 4)] for i, e, v in zip(idx, eff, val, strict=True) if e]
        )
        for idx, eff, val in zip(picked, effect, value, strict=True)
    ]


def score_snapshot(
    model: ServedModel,
    features: pd.DataFrame,
    as_of: date,
    feature_version: str,
    run_id: str,
    created_at: datetime,
    bands: RiskBands | None = None,
) -> pd.DataFrame:
    """One row per customer of the snapshot, ranked (1 = most likely to order again), with every target."""
    bands = bands or RiskBands()
    customers = features["customer_id"].astype(str).to_numpy()
    probabilities = np.asarray(model.predict(features), float) if len(features) else np.array([])
    order = np.lexsort((customers, -probabilities))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    percentile = pd.Series(probabilities).rank(pct=True, method="max").to_numpy() * 100
    contributions = model.contributions(features) if model.contributions and len(features) else None
    values = model.values(features, as_of)
    next_order = values["expected_next_order_date"]
    scored = pd.DataFrame(
        {
            "tenant_id": validate_tenant_id(model.tenant_id),
            "customer_id": customers,
            "as_of_date": as_of,
            "repurchase_probability": probabilities,
            **{name: values[name].to_numpy(float) for name in VALUE_NUMBERS},
            "expected_next_order_date": next_order.dt.date.where(next_order.notna(), None).to_numpy(object),
            "spend_tier": spend_tiers(values["clv_365d"]).astype(object).to_numpy(),
            "risk_band": bands.of(values["churn_probability"]),
            "rank": rank,
            "percentile": percentile.round(3),
            "model_name": model.name,
            "model_version": model.version,
            "feature_version": feature_version,
            "run_id": run_id,
            "created_at": created_at,
            "top_reasons": top_reasons(contributions, features),
        },
        columns=SCORED_COLUMNS,
    )
    scored.attrs[MODEL_CARD] = model.card()
    return scored


BANDS = ("high", "medium", "low")  # churn-risk bands and spend tiers alike


def batch_summary(predictions: pd.DataFrame) -> dict:
    """What the dashboard's overview shows for one tenant-day, precomputed once at write time.

    The model card travels with the frame (`attrs`), so the warehouse IO manager can store the
    holdout metrics and the targets' quality beside the rows without a second look-up in MLflow.
    """
    card = predictions.attrs.get(MODEL_CARD) or {
        "model_name": str(predictions["model_name"].iloc[0]) if len(predictions) else "",
        "model_version": str(predictions["model_version"].iloc[0]) if len(predictions) else "",
        "model_kind": "unknown",
        "model_metrics": {},
    }
    probabilities = predictions["repurchase_probability"].to_numpy(float)
    counts, _ = np.histogram(probabilities, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    bands = predictions["risk_band"].value_counts()
    return {
        "customers": len(predictions),
        "mean_probability": float(probabilities.mean()) if len(probabilities) else 0.0,
        "band_counts": {band: int(bands.get(band, 0)) for band in BANDS},
        "histogram": counts.tolist(),
        **{key: card[key] for key in ("model_name", "model_version", "model_kind", "model_metrics")},
        "targets": targets_summary(predictions, card.get("target_quality") or {}),
    }


def targets_summary(predictions: pd.DataFrame, quality: dict) -> dict:
    """Issue 16's targets of a day at a glance, so the overview never scans the rows: predicted revenue
    in the horizon and the year (None when no row holds it), customers per spend tier (None when no
    row has a tier), and the model card's `target_quality` (JSON-safe: a non-finite metric is None)."""

    def total(name: str) -> float | None:
        values = predictions[name].to_numpy(float) if name in predictions else np.array([])
        return float(np.nansum(values)) if np.isfinite(values).any() else None

    tiers = predictions["spend_tier"].dropna() if "spend_tier" in predictions else pd.Series([], dtype=object)
    return {
        "expected_revenue_total": total("expected_revenue"),
        "clv_365d_total": total("clv_365d"),
        "tier_counts": {tier: int((tiers == tier).sum()) for tier in BANDS} if len(tiers) else None,
        "quality": _json_safe(quality),
    }


def _json_safe(value):
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


def prediction_problems(predictions: pd.DataFrame, expected_customers: int) -> dict[str, str]:
    """The predictions gates, by check name; an empty dict means every gate passed."""
    problems = {}
    probabilities = predictions[["repurchase_probability", "churn_probability"]]
    amounts = predictions[list(AMOUNTS)]
    if len(predictions) != expected_customers or predictions["customer_id"].duplicated().any():
        problems["row_count_matches_snapshot"] = (
            f"{len(predictions)} rows ({predictions['customer_id'].nunique()} customers) for "
            f"{expected_customers} customers in the snapshot"
        )
    missing = pd.concat([probabilities, amounts], axis=1).isna().sum()
    if missing.any():
        problems["no_nan"] = ", ".join(f"{n} NaN in {column}" for column, n in missing.items() if n)
    if ((probabilities < 0) | (probabilities > 1)).any().any():
        problems["probabilities_in_range"] = "repurchase or churn probabilities outside [0, 1]"
    broken = (~np.isfinite(amounts.fillna(0.0)) | (amounts < 0)).sum()
    if broken.any():
        problems["amounts_in_range"] = ", ".join(f"{n} infinite or negative {c}" for c, n in broken.items() if n)
    if predictions["model_version"].isna().any() or (predictions["model_version"] == "").any():
        problems["model_recorded"] = "rows without a model version"
    return problems
