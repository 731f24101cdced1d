"""Promotion gates, serving checks and the promotion log (MLflow keeps no alias history).

A candidate becomes `staging` when, on its own holdout, it beats the better baseline and the
current production model scored on that same holdout, each by a configurable margin. It becomes
`production` when it also passes serving checks. Every alias move, and every refusal, is a row of
`model_promotions` with metrics and reason, so `rollback` is one lookup.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import ClassVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.value_model import VALUE_NUMBERS
from mlops_assets.core.tenants.ids import validate_tenant_id
from mlops_assets.core.warehouse.engine import engine_for, promotions_table

VALUE_FINITE = "value_finite_"


class PromotionPolicy(BaseModel):
    """The margins a candidate must beat and the serving limits it must meet, the same for every tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline_margin: float = 0.0
    production_margin: float = 0.0
    # After a drift alarm the holdout predates the change, so a fresh candidate may trail production by this
    # much there: it has seen the new regime, and the rollback sensor undoes the bet if it loses in reality.
    drift_production_margin: float = -0.01
    max_single_row_p99_ms: float = Field(100.0, gt=0)
    max_batch_10k_ms: float = Field(2000.0, gt=0)
    max_peak_memory_mb: float = Field(512.0, gt=0)
    # Not a setting but what the policy is for: only after a drift alarm may a refitted baseline fallback
    # replace an older one.
    refresh_fallback: ClassVar[bool] = False

    def after_drift(self) -> PromotionPolicy:
        """The policy of a retrain a drift alarm triggered."""
        return AfterDriftPolicy(**{**self.model_dump(), "production_margin": self.drift_production_margin})


class AfterDriftPolicy(PromotionPolicy):
    refresh_fallback: ClassVar[bool] = True


@dataclass
class Decision:
    promote: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def staging_decision(
    candidate_auc: float,
    baseline_auc: float | None,
    production_auc: float | None,
    policy: PromotionPolicy,
    fallback: bool = False,
    production_is_fallback: bool = False,
) -> Decision:
    metrics = {"candidate_auc": candidate_auc, "baseline_auc": baseline_auc, "production_auc": production_auc}
    if fallback:
        if production_auc is None:
            return Decision(True, "cold start: no production model yet, the flagged baseline fallback serves", metrics)
        if production_is_fallback and policy.refresh_fallback:
            return Decision(
                True, "the baseline fallback refitted on data through the alarm replaces the older one", metrics
            )
        return Decision(False, "cold start fallback never replaces an existing production model", metrics)
    if not np.isfinite(candidate_auc):
        return Decision(False, "candidate holdout AUC is not a number (one class only in the holdout?)", metrics)
    if baseline_auc is not None and candidate_auc < baseline_auc + policy.baseline_margin:
        return Decision(
            False,
            f"holdout AUC {candidate_auc:.4f} does not beat the baseline {baseline_auc:.4f} "
            f"+ margin {policy.baseline_margin}",
            metrics,
        )
    if (
        production_auc is not None
        and not production_is_fallback
        and (candidate_auc < production_auc + policy.production_margin)
    ):
        return Decision(
            False,
            f"holdout AUC {candidate_auc:.4f} does not beat production {production_auc:.4f} "
            f"+ margin {policy.production_margin} on the same holdout",
            metrics,
        )
    beaten = "the baseline" + ("" if production_auc is None else " and production")
    return Decision(True, f"holdout AUC {candidate_auc:.4f} beats {beaten}", metrics)


def serving_report(
    model,
    features: pd.DataFrame,
    expected_columns: list[str] | None = None,
    single_row_calls: int = 100,
    value_model=None,
) -> dict[str, float | bool]:
    """Latency, memory and output sanity of a loaded pyfunc model on real feature rows; with the version's
    customer value model, whether each of its targets is finite on the same batch.

    Each single-row call is timed twice and the faster counts: what the model costs, not the stalls of a
    busy host (four jobs on two cores pushed a 5 ms model's p99 past 100 ms and refused it)."""
    rows = features[FEATURES].reset_index(drop=True)
    latencies = [min(_latency_ms(model, rows.iloc[[i % len(rows)]]) for _ in range(2)) for i in range(single_row_calls)]
    batch = rows.sample(n=10_000, replace=True, random_state=0).reset_index(drop=True)
    tracemalloc.start()
    start = time.perf_counter()
    scores = np.asarray(model.predict(batch), float)
    batch_ms = (time.perf_counter() - start) * 1000
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    schema = model.metadata.get_input_schema() if hasattr(model, "metadata") else None
    columns = schema.input_names() if schema is not None else list(rows.columns)
    values = {}
    if value_model is not None:
        predicted = value_model.predict(batch, date.today())  # the day only moves the next-order date
        values = {f"{VALUE_FINITE}{name}": bool(np.isfinite(predicted[name]).all()) for name in VALUE_NUMBERS}
    return {
        **values,
        "single_row_p50_ms": float(np.percentile(latencies, 50)),
        "single_row_p99_ms": float(np.percentile(latencies, 99)),
        "batch_10k_ms": batch_ms,
        "peak_memory_mb": peak_mb,
        "no_nan": bool(np.isfinite(scores).all()),
        "probabilities_in_range": bool(((scores >= 0) & (scores <= 1)).all()),
        "schema_matches": list(columns) == list(expected_columns or FEATURES),
    }


def _latency_ms(model, row: pd.DataFrame) -> float:
    start = time.perf_counter()
    model.predict(row)
    return (time.perf_counter() - start) * 1000


def serving_problems(report: dict, policy: PromotionPolicy) -> list[str]:
    problems = []
    if report["single_row_p99_ms"] >= policy.max_single_row_p99_ms:
        problems.append(f"single-row p99 {report['single_row_p99_ms']:.1f} ms >= {policy.max_single_row_p99_ms} ms")
    if report["batch_10k_ms"] >= policy.max_batch_10k_ms:
        problems.append(f"10k-row batch {report['batch_10k_ms']:.0f} ms >= {policy.max_batch_10k_ms} ms")
    if report["peak_memory_mb"] >= policy.max_peak_memory_mb:
        problems.append(f"peak memory {report['peak_memory_mb']:.0f} MB >= {policy.max_peak_memory_mb} MB")
    for flag in ("no_nan", "probabilities_in_range", "schema_matches"):
        if not report[flag]:
            problems.append(f"{flag} is false")
    for key, finite in report.items():
        if key.startswith(VALUE_FINITE) and not finite:
            problems.append(f"the value model predicts non-finite {key.removeprefix(VALUE_FINITE)} on the sample")
    return problems


class PromotionLog:
    def __init__(self, warehouse_url: str):
        self.engine = engine_for(warehouse_url)

    def record(
        self,
        tenant_id: str,
        model_name: str,
        alias: str,
        version: str | None,
        previous: str | None,
        action: str,
        reason: str,
        metrics: dict,
        run_id: str | None = None,
        actor: str = "pipeline",
    ) -> None:
        clean = {
            k: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v) for k, v in metrics.items()
        }
        with self.engine.begin() as conn:
            conn.execute(
                promotions_table.insert().values(
                    tenant_id=validate_tenant_id(tenant_id),
                    model_name=model_name,
                    alias=alias,
                    version=version,
                    previous_version=previous,
                    action=action,
                    reason=reason,
                    metrics=clean,
                    run_id=run_id,
                    actor=actor,
                    created_at=datetime.now(UTC),
                )
            )

    def history(self, tenant_id: str) -> list[dict]:
        query = (
            sa.select(promotions_table)
            .where(promotions_table.c.tenant_id == validate_tenant_id(tenant_id))
            .order_by(promotions_table.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def previous_production(
        self, tenant_id: str, current: str | None, actions: tuple[str, ...] = ("promote", "rollback")
    ) -> str | None:
        """The version production pointed to before it became `current` (by one of `actions`, its latest move)."""
        for row in reversed(self.history(tenant_id)):
            if row["alias"] == "production" and row["action"] in ("promote", "rollback") and row["version"] == current:
                return row["previous_version"] if row["action"] in actions else None
        return None

    def promoted_over(self, tenant_id: str, current: str) -> str | None:
        """The version `current` replaced by promotion; None when it got there by a rollback (no ping-pong)."""
        return self.previous_production(tenant_id, current, actions=("promote",))
