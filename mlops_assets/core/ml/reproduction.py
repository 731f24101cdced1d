"""Rebuild a registered model version from its logged data version and parameters, and prove it.

The training set is rebuilt from the lake files the run read (through its logged `data_through`),
the model refitted with the logged parameters, and the holdout predictions compared bit for bit
with those logged at training time, and the customer value model (every other target) refitted and
compared by its digest. Anything that differs is named: data digest, code commit,
package versions, parameters.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from datetime import date

from upath import UPath

from mlops_assets.core.lake.history import history_files, read_orders
from mlops_assets.core.ml.candidates import fit_model
from mlops_assets.core.ml.tracking import ModelRegistry, code_version, package_versions, predictions_digest
from mlops_assets.core.ml.training_data import TrainingPlan, build_training_set
from mlops_assets.core.ml.value_model import fit_value_model, value_model_digest


@dataclass
class ReproduceReport:
    tenant_id: str
    version: str
    identical: bool
    logged_predictions: str
    rebuilt_predictions: str
    differences: list[str] = field(default_factory=list)


def _literal(value: str):
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def reproduce(registry: ModelRegistry, root: UPath, tenant_id: str, version: str) -> ReproduceReport:
    model_version = registry.version(tenant_id, version)
    run = registry.run(model_version.run_id)
    params, tags = run.data.params, run.data.tags
    plan = TrainingPlan(
        cutoff=date.fromisoformat(params["plan_cutoff"]),
        horizon_days=int(params["plan_horizon_days"]),
        train_snapshots=int(params["plan_train_snapshots"]),
        step_days=int(params["plan_step_days"]),
        min_tenure_days=int(params["plan_min_tenure_days"]),
    )
    differences = []
    through = date.fromisoformat(params["data_through"]) if params.get("data_through") not in (None, "None") else None
    files = history_files(root, tenant_id, through=through)
    digest = files.digest()
    if digest != tags.get("data_digest"):
        differences.append(
            f"data digest: logged {tags.get('data_digest')}, lake now {digest} "
            f"({len(files.files)} files through {through})"
        )
    current_code = code_version()
    if current_code["git_commit"] != tags.get("git_commit"):
        differences.append(
            f"code commit: logged {tags.get('git_commit')} (dirty={tags.get('git_dirty')}), "
            f"now {current_code['git_commit']} (dirty={current_code['git_dirty']})"
        )
    for name, now in package_versions().items():
        logged = tags.get(f"version_{name}")
        if logged != now:
            differences.append(f"package {name}: logged {logged}, now {now}")
    built = build_training_set(read_orders(files), plan, params["timezone"], files.through)
    reasons = tags.get("cold_start_reasons", "none")
    built.cold_start_reasons = [] if reasons == "none" else [reasons]
    lightgbm_params = {k.removeprefix("lgbm_"): _literal(v) for k, v in params.items() if k.startswith("lgbm_")}
    kind, _, probabilities = fit_model(built, lightgbm_params or None)
    if kind != tags.get("model_kind"):
        differences.append(f"model kind: logged {tags.get('model_kind')}, rebuilt {kind}")
    rebuilt = predictions_digest(probabilities)
    logged = tags.get("holdout_predictions_digest", "")
    identical = rebuilt == logged
    if not identical:
        differences.insert(0, f"holdout predictions differ: logged {logged}, rebuilt {rebuilt}")
    logged_value = tags.get("value_model_digest")  # absent on versions registered before the targets
    rebuilt_value = value_model_digest(fit_value_model(built, kind, probabilities))
    if logged_value is not None and rebuilt_value != logged_value:
        identical = False
        differences.insert(0, f"value model differs: logged {logged_value}, rebuilt {rebuilt_value}")
    return ReproduceReport(tenant_id, str(version), identical, logged, rebuilt, differences)
