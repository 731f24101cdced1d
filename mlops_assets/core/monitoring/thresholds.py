"""Monitoring thresholds: one set of defaults, and a tenant's overrides validated with a fix to name."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


class MonitoringSettingError(ValueError):
    pass


@dataclass(frozen=True)
class MonitoringThresholds:
    """Defaults for every tenant; a tenant's registry entry may override any of them."""

    column_drift: float = 0.1  # a feature drifts when its normed Wasserstein distance reaches this
    drifted_share: float = 0.1  # feature_drift fails when this share of the features drifts (3 of 25)
    prediction_psi: float = 0.2  # prediction_drift fails when the score PSI reaches this
    auc_floor: float = 0.6  # performance_floor fails below this realized AUC ...
    max_auc_drop: float = 0.1  # ... or this far below the model's holdout AUC
    rollback_margin: float = 0.03  # roll back when the predecessor's realized AUC is this much better
    probation_days: int = 60  # a promoted version is compared with its predecessor this long
    cooldown_days: int = 7  # at most one drift retrain per tenant in this many days
    sample_rows: int = 5000  # rows per side of a drift report

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def overridden(self, tenant_id: str, overrides: dict) -> MonitoringThresholds:
        """These thresholds with a tenant's overrides; a bad one names the tenant, the field and the fix."""
        values = {}
        for name, raw in (overrides or {}).items():
            if name not in self.names():
                raise MonitoringSettingError(
                    f"tenant {tenant_id}: unknown monitoring setting {name!r} (fix: one of {', '.join(self.names())})"
                )
            kind = type(getattr(self, name))
            try:
                value = kind(raw)
            except (TypeError, ValueError) as exc:
                raise MonitoringSettingError(
                    f"tenant {tenant_id}: monitoring setting {name}={raw!r} is not a {kind.__name__}"
                ) from exc
            if not math.isfinite(value) or value < 0 or (kind is int and value < 1 and name != "cooldown_days"):
                raise MonitoringSettingError(
                    f"tenant {tenant_id}: monitoring setting {name}={raw!r} must be a positive number"
                )
            values[name] = value
        return replace(self, **values)
