"""Train, track and register one tenant's candidate; gate and promote it; roll back.

The Dagster assets and the `mlops models` commands both call these, so a human promoting or rolling
back goes through the same checks and the same promotion log as the pipeline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.core.ml.baselines import BaselineModel, baseline_predictions
from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.models import calibration_figure, fit_lightgbm, holdout_metrics, importance_figure
from mlops_assets.core.ml.promotion import (
    PromotionLog,
    PromotionPolicy,
    serving_problems,
    serving_report,
    staging_decision,
)
from mlops_assets.core.ml.tracking import PRODUCTION, STAGING, ModelRegistry, model_name
from mlops_assets.core.ml.training_data import TrainingSet, holdout_sample, placeholder_sample
from mlops_assets.core.ml.value_model import fit_value_model, quality_metrics, quality_tags, value_model_digest


@dataclass
class CandidateCard:
    tenant_id: str
    cutoff: str
    model_name: str
    version: str
    run_id: str
    kind: str
    holdout_auc: float
    baseline_auc: float
    baseline_name: str
    cold_start_reasons: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def metrics_finite(self) -> bool:
        if self.kind == "fallback":
            return True
        return all(
            np.isfinite(self.metrics.get(k, np.nan)) for k in ("holdout_auc", "holdout_brier", "holdout_log_loss")
        )

    @property
    def beats_baseline(self) -> bool:
        return not np.isfinite(self.baseline_auc) or self.holdout_auc >= self.baseline_auc

    def frame(self) -> pd.DataFrame:
        row = {k: v for k, v in asdict(self).items() if k != "metrics"}
        return pd.DataFrame([row])

    def metadata(self) -> dict:
        meta = {k: v for k, v in asdict(self).items() if k != "metrics"}
        meta.update({k: v for k, v in self.metrics.items() if np.isfinite(v)})
        return meta


def _evaluable(frame: pd.DataFrame) -> bool:
    return len(frame) > 0 and 0 < frame["label"].sum() < len(frame)


def fit_model(built: TrainingSet, lightgbm_params: dict | None = None):
    """(kind, model, holdout probabilities): LightGBM, or the fallback when data is too thin."""
    train, valid, holdout = (built.split(s) for s in ("train", "valid", "holdout"))
    if built.cold_start_reasons:
        model = BaselineModel.fit(pd.concat([train, valid], ignore_index=True), holdout)
        return "fallback", model, model.predict(holdout) if len(holdout) else np.array([])
    fitted = fit_lightgbm(train, valid, lightgbm_params)
    return "lightgbm", fitted, fitted.predict(holdout)


def train_candidate(
    registry: ModelRegistry,
    tenant_id: str,
    built: TrainingSet,
    *,
    data_digest: str,
    data_through: str | None,
    timezone: str,
    training_source: str,
    tags: dict[str, str],
) -> CandidateCard:
    train, holdout = built.split("train"), built.split("holdout")
    kind, model, probabilities = fit_model(built)
    metrics: dict[str, float] = {}
    baseline_auc, baseline_name = float("nan"), "none"
    figures = {}
    if _evaluable(holdout):
        metrics.update(holdout_metrics(holdout["label"].to_numpy(), probabilities))
        for name, scores in baseline_predictions(pd.concat([train, built.split("valid")]), holdout).items():
            metrics[f"baseline_{name}_auc"] = holdout_metrics(holdout["label"].to_numpy(), scores, "b")["b_auc"]
        best = max((k for k in metrics if k.startswith("baseline_") and k.endswith("_auc")), key=metrics.get)
        baseline_auc, baseline_name = metrics[best], best.removeprefix("baseline_").removesuffix("_auc")
        metrics["baseline_auc"] = baseline_auc
        figures["calibration"] = calibration_figure(
            holdout["label"].to_numpy(), probabilities, f"{tenant_id}: holdout calibration ({kind})"
        )
    if kind == "lightgbm":
        figures["feature_importance"] = importance_figure(model, f"{tenant_id}: feature importance (gain)")
    value = fit_value_model(built, kind, probabilities)
    metrics.update(quality_metrics(value.quality))
    summary = built.summary()
    metrics.update({k: float(v) for k, v in summary.items()})
    params = {
        **built.plan.as_params(),
        "validation": built.validation,
        "model_kind": kind,
        "features": len(FEATURES),
        "data_through": data_through,
        "timezone": timezone,
        "training_window": f"{built.frame['snapshot'].min()}..{built.frame['snapshot'].max()}"
        if len(built.frame)
        else "",
    }
    if kind == "lightgbm":
        params.update({f"lgbm_{k}": v for k, v in model.params.items()})
        params["best_iteration"] = model.best_iteration
    else:
        params.update(
            {
                "fallback_baseline": model.kind,
                "fallback_coefficients": model.recency_frequency.coefficients,
                "fallback_intercept": model.recency_frequency.intercept,
            }
        )
    logged = registry.log_candidate(
        tenant_id,
        model=model,
        kind=kind,
        params=params,
        metrics=metrics,
        tags={
            **tags,
            **quality_tags(value.quality),
            "cold_start_reasons": "; ".join(built.cold_start_reasons) or "none",
            "value_model_digest": value_model_digest(value),
        },
        training_frame=built.frame,
        training_source=training_source,
        data_digest=data_digest,
        holdout_predictions=probabilities,
        figures=figures,
        value_model=value,
    )
    _close(figures)
    return CandidateCard(
        tenant_id=tenant_id,
        cutoff=built.plan.cutoff.isoformat(),
        model_name=model_name(tenant_id),
        version=logged.version,
        run_id=logged.run_id,
        kind=kind,
        holdout_auc=metrics.get("holdout_auc", float("nan")),
        baseline_auc=baseline_auc,
        baseline_name=baseline_name,
        cold_start_reasons="; ".join(built.cold_start_reasons) or "none",
        metrics=metrics,
    )


def _close(figures: dict) -> None:
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


@dataclass
class PromotionOutcome:
    tenant_id: str
    candidate_version: str
    staged: bool
    promoted: bool
    reason: str
    production_version: str | None
    previous_production: str | None
    serving: dict = field(default_factory=dict)
    serving_problems: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        row = {k: v for k, v in asdict(self).items() if k not in ("serving", "serving_problems")}
        row["serving_problems"] = "; ".join(self.serving_problems)
        return pd.DataFrame([row])

    def metadata(self) -> dict:
        meta = {k: v for k, v in asdict(self).items() if k not in ("serving", "serving_problems")}
        meta.update({f"serving_{k}": v for k, v in self.serving.items()})
        meta["serving_problems"] = "; ".join(self.serving_problems) or "none"
        return meta


def check_serving(
    registry: ModelRegistry, tenant_id: str, version: str, sample: pd.DataFrame, policy: PromotionPolicy
) -> tuple[dict, list[str]]:
    value_model = registry.value_model(registry.version(tenant_id, version).run_id)
    report = serving_report(registry.load(tenant_id, version), sample, value_model=value_model)
    return report, serving_problems(report, policy)


def promote_candidate(
    registry: ModelRegistry,
    warehouse_url: str,
    tenant_id: str,
    card: pd.Series,
    training_frame: pd.DataFrame,
    policy: PromotionPolicy,
    register_fallback: Callable[[str], CandidateCard] | None = None,
) -> PromotionOutcome:
    """Gate one candidate; a tenant without any production model gets the flagged fallback instead."""
    log, name, version = PromotionLog(warehouse_url), model_name(tenant_id), str(card["version"])
    current = registry.alias_version(tenant_id, PRODUCTION)
    current_version = current.version if current else None
    if current_version == version:
        return PromotionOutcome(tenant_id, version, True, True, "already in production", version, None)
    holdout = training_frame.loc[training_frame["split"] == "holdout"]
    production_auc, production_is_fallback, unloadable = None, False, None
    if current is not None:
        production_is_fallback = current.tags.get("fallback") == "true"
        if _evaluable(holdout):
            try:
                production = registry.load(tenant_id, current_version)
            except Exception as exc:  # a broken production model must not block the model that replaces it
                unloadable = f"production v{current_version} could not be loaded ({exc}) and is not compared"
            else:
                scores = np.asarray(production.predict(holdout[FEATURES]), float)
                production_auc = holdout_metrics(holdout["label"].to_numpy(), scores, "p")["p_auc"]
    decision = staging_decision(
        float(card["holdout_auc"]),
        None if pd.isna(card["baseline_auc"]) else float(card["baseline_auc"]),
        production_auc if current is not None else None,
        policy,
        fallback=card["kind"] == "fallback",
        production_is_fallback=production_is_fallback,
    )
    if current is not None and production_auc is None and card["kind"] == "fallback" and unloadable is None:
        decision.promote, decision.reason = False, "cold start fallback never replaces an existing production model"
    if unloadable:
        decision.reason = f"{decision.reason}; {unloadable}"
    run_id = str(card["run_id"])
    record = functools.partial(log.record, tenant_id, name, version=version, run_id=run_id)
    if not decision.promote:
        record(alias=STAGING, previous=None, action="refuse", reason=decision.reason, metrics=decision.metrics)
        refresh = current is not None and production_is_fallback and policy.refresh_fallback
        if (current is None or refresh or unloadable) and register_fallback is not None:
            why = "a drift retrain refreshes the fallback" if refresh else "no usable production model"
            fallback = register_fallback(f"{why} and the candidate was refused: {decision.reason}")
            outcome = promote_candidate(
                registry, warehouse_url, tenant_id, fallback.frame().iloc[0], training_frame, policy
            )
            outcome.reason = f"candidate {version} refused ({decision.reason}); flagged fallback: {outcome.reason}"
            return outcome
        return PromotionOutcome(tenant_id, version, False, False, decision.reason, current_version, None)
    previous_staging = registry.alias_version(tenant_id, STAGING)
    registry.set_alias(tenant_id, STAGING, version)
    record(
        alias=STAGING,
        previous=previous_staging.version if previous_staging else None,
        action="promote",
        reason=decision.reason,
        metrics=decision.metrics,
    )
    report, problems = check_serving(registry, tenant_id, version, holdout_sample(training_frame), policy)
    metrics = {**decision.metrics, **report}
    if problems:
        reason = "serving checks failed: " + "; ".join(problems)
        record(alias=PRODUCTION, previous=current_version, action="refuse", reason=reason, metrics=metrics)
        return PromotionOutcome(tenant_id, version, True, False, reason, current_version, None, report, problems)
    registry.set_alias(tenant_id, PRODUCTION, version)
    record(alias=PRODUCTION, previous=current_version, action="promote", reason=decision.reason, metrics=metrics)
    return PromotionOutcome(tenant_id, version, True, True, decision.reason, version, current_version, report)


def set_production(
    registry: ModelRegistry,
    warehouse_url: str,
    tenant_id: str,
    version: str,
    action: str,
    reason: str,
    actor: str,
    sample: pd.DataFrame | None = None,
    policy: PromotionPolicy | None = None,
) -> PromotionOutcome:
    """Point `production` at `version` by hand (promote or rollback), after the same serving checks."""
    target = registry.version(tenant_id, version)
    current = registry.alias_version(tenant_id, PRODUCTION)
    current_version = current.version if current else None
    sample = sample if sample is not None else placeholder_sample()
    report, problems = check_serving(registry, tenant_id, target.version, sample, policy or PromotionPolicy())
    record = functools.partial(
        PromotionLog(warehouse_url).record, tenant_id, model_name(tenant_id), PRODUCTION, target.version,
        current_version, metrics=report, run_id=target.run_id, actor=actor,
    )  # fmt: skip
    if problems:
        reason = f"{action} refused, serving checks failed: " + "; ".join(problems)
        record(action="refuse", reason=reason)
        return PromotionOutcome(
            tenant_id, target.version, False, False, reason, current_version, None, report, problems
        )
    registry.set_alias(tenant_id, PRODUCTION, target.version)
    record(action=action, reason=reason)
    return PromotionOutcome(tenant_id, target.version, True, True, reason, target.version, current_version, report)
