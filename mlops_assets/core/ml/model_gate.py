"""The model regression gate: every target's holdout metrics on fixed cases, against committed values.

A change that makes any served model worse on the same data fails CI; the committed values move only
through `mlops model-check --update --reason ...`, which says what changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.core.ml.candidates import fit_model
from mlops_assets.core.ml.training_data import TrainingPlan, build_training_set
from mlops_assets.core.ml.value_model import fit_value_model

# How far a metric may move the wrong way before the gate fails: a little above what thread timing
# and library patch releases move them (LightGBM is deterministic here; BG/NBD's optimizer is not
# bit-stable across SciPy releases), well below what a real modelling regression costs.
TOLERANCE = {"auc": 0.01, "normalized_gini": 0.02, "brier": 0.003, "ordered_by_date_error": 0.03}
LOWER_IS_BETTER = {"brier", "ordered_by_date_error"}


@dataclass(frozen=True)
class GateCase:
    name: str
    orders: pd.DataFrame  # the lake's order columns, UTC instants
    cutoff: date
    horizon_days: int
    timezone: str = "UTC"


def measure(case: GateCase) -> dict[str, float]:
    """`<target>.<metric>`: what each target serves, judged on the product's own time-based holdouts."""
    built = build_training_set(case.orders, TrainingPlan(case.cutoff, case.horizon_days), case.timezone, case.cutoff)
    kind, _, probabilities = fit_model(built)
    quality = fit_value_model(built, kind, probabilities).quality
    found = {}
    for target, entry in quality.items():
        metric, value = entry["metric"], entry["holdout"]
        if metric == "coverage" and value is not None:  # a median date: half the customers by it is right
            metric, value = "ordered_by_date_error", abs(value - 0.5)
        if value is not None and metric in TOLERANCE:
            found[f"{target}.{metric}"] = round(float(value), 4)
        if "brier" in entry["extra"]:
            found[f"{target}.brier"] = round(float(entry["extra"]["brier"]), 4)
    return found


def _metric(key: str) -> str:
    return key.rsplit(".", 1)[1]


def regressions(committed: dict[str, dict[str, float]], measured: dict[str, dict[str, float]]) -> list[str]:
    """Each metric that got worse by more than its tolerance, or that is no longer measured."""
    found = []
    for case, metrics in committed.items():
        for key, before in metrics.items():
            now = measured.get(case, {}).get(key)
            if now is None or not np.isfinite(now):
                found.append(f"{case} {key}: committed {before:.4f}, now not measured")
                continue
            metric = _metric(key)
            worse = (now - before) if metric in LOWER_IS_BETTER else (before - now)
            if worse > TOLERANCE[metric]:
                found.append(f"{case} {key}: committed {before:.4f}, now {now:.4f} "
                             f"(worse by {worse:.4f} > {TOLERANCE[metric]})")  # fmt: skip
    return found


def changes(committed: dict[str, dict[str, float]], measured: dict[str, dict[str, float]]) -> list[str]:
    """What an update moves: every metric whose value differs, appears or disappears."""
    lines = []
    for case in sorted(set(committed) | set(measured)):
        before, now = committed.get(case, {}), measured.get(case, {})
        for key in sorted(set(before) | set(now)):
            if before.get(key) != now.get(key):
                old = "absent" if key not in before else f"{before[key]:.4f}"
                new = "absent" if key not in now else f"{now[key]:.4f}"
                lines.append(f"{case} {key}: {old} -> {new}")
    return lines


def read_record(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"reason": None, "cases": {}}


def write_record(path: Path, measured: dict[str, dict[str, float]], reason: str) -> None:
    path.write_text(json.dumps({"reason": reason, "tolerance": TOLERANCE, "cases": measured}, indent=2) + "\n")
