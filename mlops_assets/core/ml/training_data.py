"""Training sets from time-based snapshots: train, validation (early stopping) and holdout.

For a training cutoff c and horizon H: the holdout is the snapshot at c - H (the latest whose labels
have matured by c), validation is the snapshot at c - 2H, and training uses snapshots every
`step_days` from c - 3H back. Every label window ends on or before the next split's snapshot day,
so no row of an earlier split sees the period a later split is judged on.

Two more snapshots serve the customer value model (`value_model.py`) and are never fitted on:
`year_holdout` at c - 365, the latest whose 365-day labels (churn, CLV) have matured, when the
history reaches that far; and `cutoff` at c itself, unlabelled, the snapshot the served BG/NBD +
Gamma-Gamma baseline is fitted on. Every row carries every target's label (`targets.target_labels`
observed through c: NaN while a window is open); `label` stays the repurchase label.

A history too short for any training snapshot before c - 2H (CDNOW's nine months at H = 91 days)
would leave only the flagged fallback. Then the validation day and the days stepping back from it
all train, and one customer in five (a stable hash of the id) early-stops instead of a validation
snapshot: their labels still end by the holdout day, so the holdout stays a time-based test the
model has not seen, and only early stopping shares the training period (issue 16, item 3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlops_assets.core.lake.files import partition_path, read_frame
from mlops_assets.core.ml.clv import CLV_DAYS
from mlops_assets.core.ml.features import FEATURES, feature_snapshot
from mlops_assets.core.ml.targets import LABELS, target_labels

SPLITS = ("train", "valid", "holdout")
# Snapshots only the customer value model reads: judged on (365-day labels) or fitted at (the cutoff).
YEAR_HOLDOUT, CUTOFF = "year_holdout", "cutoff"
# The lake asset that keeps each cutoff's training set (the `training_set` asset's files).
TRAINING_SET = "training_set"
# How a training set early-stops: on its own snapshot at c - 2H, or on a share of the training customers.
SNAPSHOT_VALIDATION, CUSTOMER_SPLIT_VALIDATION = "snapshot", "customer split"
CUSTOMER_SPLIT_SHARE = 5  # one customer in five early-stops a short history's model


@dataclass(frozen=True)
class TrainingPlan:
    cutoff: date
    horizon_days: int = 30
    train_snapshots: int = 20
    step_days: int = 14
    min_tenure_days: int = 28

    @property
    def holdout_day(self) -> date:
        return self.cutoff - timedelta(days=self.horizon_days)

    @property
    def valid_day(self) -> date:
        return self.cutoff - timedelta(days=2 * self.horizon_days)

    def train_days(self) -> list[date]:
        """The last one's labels end on the validation day; the rest step back from it."""
        last = self.valid_day - timedelta(days=self.horizon_days)
        return [last - timedelta(days=self.step_days * k) for k in range(self.train_snapshots - 1, -1, -1)]

    @property
    def year_holdout_day(self) -> date:
        return self.cutoff - timedelta(days=CLV_DAYS)

    def snapshots(self) -> list[tuple[date, str]]:
        """Every snapshot in time order (the year holdout may fall among the training days)."""
        labelled = [(day, "train") for day in self.train_days()] + [
            (self.valid_day, "valid"),
            (self.holdout_day, "holdout"),
        ]
        return sorted([*labelled, (self.year_holdout_day, YEAR_HOLDOUT)]) + [(self.cutoff, CUTOFF)]

    def short_history_snapshots(self) -> list[tuple[date, str]]:
        """The validation day and the days stepping back from it, all training (a customer split early-stops)."""
        pooled = [(self.valid_day - timedelta(days=self.step_days * k), "train") for k in range(self.train_snapshots)]
        judged = [(self.holdout_day, "holdout"), (self.year_holdout_day, YEAR_HOLDOUT)]
        return sorted([*pooled, *judged]) + [(self.cutoff, CUTOFF)]

    def as_params(self) -> dict[str, str]:
        return {f"plan_{k}": str(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ColdStartThresholds:
    min_history_days: int = 180
    min_holdout_customers: int = 200
    min_train_positives: int = 50
    min_holdout_positives: int = 20


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    plan: TrainingPlan
    cold_start_reasons: list[str] = field(default_factory=list)

    def split(self, name: str) -> pd.DataFrame:
        return self.frame.loc[self.frame["split"] == name]

    def summary(self) -> dict[str, int]:
        counts = {}
        for name in SPLITS:
            part = self.split(name)
            counts[f"{name}_rows"] = len(part)
            counts[f"{name}_positives"] = int(part["label"].sum())
        return counts

    @property
    def validation(self) -> str:
        """Read from the frame, so a training set loaded back from the lake says it too."""
        days = {name: set(self.split(name)["snapshot"]) for name in ("train", "valid")}
        return CUSTOMER_SPLIT_VALIDATION if days["train"] & days["valid"] else SNAPSHOT_VALIDATION

    def ordered_splits(self) -> list[tuple[str, str]]:
        """Pairs of splits whose label windows must end before the later one's snapshots begin."""
        if self.validation == CUSTOMER_SPLIT_VALIDATION:
            return [("train", "holdout"), ("valid", "holdout")]
        return [("train", "valid"), ("valid", "holdout")]


def _customer_split(customers: pd.Series) -> np.ndarray:
    """`valid` for one customer in `CUSTOMER_SPLIT_SHARE` by a stable hash of the id (reproducible), else `train`."""
    bucket = pd.util.hash_pandas_object(customers.astype(str), index=False).to_numpy() % CUSTOMER_SPLIT_SHARE
    return np.where(bucket == 0, "valid", "train")


def build_training_set(
    history: pd.DataFrame,
    plan: TrainingPlan,
    timezone: str,
    data_through: date | None,
    thresholds: ColdStartThresholds | None = None,
) -> TrainingSet:
    """Feature snapshots with every target's labels; says why when there is too little to train on."""
    thresholds = thresholds or ColdStartThresholds()
    if data_through is None or plan.cutoff > data_through:
        raise ValueError(
            f"training cutoff {plan.cutoff} is after the last day of data {data_through}: labels have not matured "
            "(fix: pick a cutoff on or before the last ingested day)"
        )
    first_order = history["created_at"].min() if len(history) else None
    first_day = first_order.date() if first_order is not None and not pd.isna(first_order) else plan.cutoff
    first_snapshot_day = first_day + timedelta(days=plan.min_tenure_days)
    snapshots = plan.snapshots()
    short_history = not any(split == "train" and day >= first_snapshot_day for day, split in snapshots)
    if short_history:
        snapshots = plan.short_history_snapshots()
    parts = []
    for day, split in snapshots:
        if day < first_snapshot_day:
            continue
        snapshot = feature_snapshot(history, day, timezone, plan.horizon_days)
        found = target_labels(history, snapshot["customer_id"], day, timezone, plan.horizon_days, plan.cutoff)
        snapshot[LABELS] = found[LABELS].to_numpy("float32")  # float32: a tenth of the frame, not a fifth
        snapshot["label"] = snapshot["repurchased"].astype("float64")
        snapshot.insert(0, "split", split)
        snapshot.insert(0, "snapshot", pd.Timestamp(day))
        parts.append(snapshot)
    columns = ["snapshot", "split", "customer_id", *FEATURES, "label", *LABELS]
    frame = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    if short_history:
        pooled = frame["split"] == "train"
        frame.loc[pooled, "split"] = _customer_split(frame.loc[pooled, "customer_id"])
    training = TrainingSet(frame, plan)
    counts = training.summary()
    history_days = (plan.cutoff - first_day).days
    reasons = []
    if history_days < thresholds.min_history_days:
        reasons.append(f"{history_days} days of history, needs {thresholds.min_history_days}")
    if counts["holdout_rows"] < thresholds.min_holdout_customers:
        reasons.append(
            f"{counts['holdout_rows']} customers at the holdout snapshot, needs {thresholds.min_holdout_customers}"
        )
    if counts["train_positives"] < thresholds.min_train_positives:
        reasons.append(f"{counts['train_positives']} positive training rows, needs {thresholds.min_train_positives}")
    if counts["holdout_positives"] < thresholds.min_holdout_positives:
        reasons.append(f"{counts['holdout_positives']} holdout positives, needs {thresholds.min_holdout_positives}")
    if counts["valid_rows"] == 0:
        reasons.append("no validation rows")
    training.cold_start_reasons = reasons
    return training


def holdout_sample(training_frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a model version is judged and serving-checked on: its training set's holdout snapshot.

    Without a holdout, every row of the set; for an empty set `placeholder_sample`, so serving checks still run.
    """
    holdout = training_frame.loc[training_frame["split"] == "holdout"]
    sample = holdout if len(holdout) else training_frame
    return sample.reset_index(drop=True) if len(sample) else placeholder_sample()


def placeholder_sample() -> pd.DataFrame:
    """The least a snapshot can hold, for serving checks without real rows: a customer whose one order
    (of zero) is today. A row of all zeros would be a customer without orders, whom no model need serve."""
    return pd.DataFrame([{**dict.fromkeys(FEATURES, 0.0), "frequency": 1.0}])


def stored_holdout_sample(root, tenant_id: str, cutoff: str | date | None) -> pd.DataFrame | None:
    """`holdout_sample` of the training set of `cutoff` in the lake; None when the lake no longer has it."""
    if not cutoff:
        return None
    path = partition_path(root, TRAINING_SET, tenant_id, cutoff)
    return holdout_sample(read_frame(path)) if path.exists() else None
