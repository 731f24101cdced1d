"""Monitoring thresholds: one set of defaults, and a tenant's overrides validated with a fix to name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_assets.core.tenants.validation import TenantSettingError, setting_problems

RATIO = "a number >= 0, e.g. 0.1"
DAYS = "a whole number of days >= 1"


class MonitoringSettingError(TenantSettingError):
    pass


class MonitoringThresholds(BaseModel):
    """Defaults for every tenant; a tenant's registry entry may override any of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # a feature drifts when its normed Wasserstein distance reaches this
    column_drift: float = Field(0.1, ge=0, allow_inf_nan=False, description=RATIO)
    # feature_drift fails when this share of the features drifts (3 of 25)
    drifted_share: float = Field(0.1, ge=0, allow_inf_nan=False, description=RATIO)
    # prediction_drift fails when the score PSI reaches this
    prediction_psi: float = Field(0.2, ge=0, allow_inf_nan=False, description=RATIO)
    # performance_floor fails below this realized AUC ...
    auc_floor: float = Field(0.6, ge=0, allow_inf_nan=False, description=RATIO)
    # ... or this far below the model's holdout AUC
    max_auc_drop: float = Field(0.1, ge=0, allow_inf_nan=False, description=RATIO)
    # target_floor fails when churn's realized AUC is below this (or max_auc_drop below its holdout AUC) ...
    churn_auc_floor: float = Field(0.6, ge=0, allow_inf_nan=False, description=RATIO)
    # ... or an amount's (expected orders, revenue, CLV) realized normalized Gini below this (2 x 0.6 - 1) ...
    gini_floor: float = Field(0.2, ge=0, allow_inf_nan=False, description=RATIO)
    # ... or this far below its holdout Gini (on a yes/no label, Gini = 2 AUC - 1: max_auc_drop's twin)
    max_gini_drop: float = Field(0.2, ge=0, allow_inf_nan=False, description=RATIO)
    # roll back when the predecessor's realized AUC is this much better
    rollback_margin: float = Field(0.03, ge=0, allow_inf_nan=False, description=RATIO)
    # a promoted version is compared with its predecessor this long
    probation_days: int = Field(60, ge=1, description=DAYS)
    # at most one drift retrain per tenant in this many days (0: no cooldown)
    cooldown_days: int = Field(7, ge=0, description="a whole number of days >= 0")
    # rows per side of a drift report
    sample_rows: int = Field(5000, ge=1, description="a whole number of rows >= 1")

    @classmethod
    def names(cls) -> list[str]:
        return list(MonitoringThresholds.model_fields)

    def overridden(self, tenant_id: str, overrides: dict | None) -> MonitoringThresholds:
        """These thresholds with a tenant's overrides; a bad one names the tenant, the field and the fix."""
        current = {name: getattr(self, name) for name in self.names()}
        try:
            return MonitoringThresholds.model_validate({**current, **(overrides or {})})
        except ValidationError as exc:
            problems = setting_problems(exc.errors(), MonitoringThresholds, tenant_id, "monitoring")
            raise MonitoringSettingError(problems) from None
