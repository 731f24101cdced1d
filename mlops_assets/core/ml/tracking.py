"""MLflow tracking and the model registry, per tenant.

One experiment and one registered model per tenant (`repurchase-<tenant>`); aliases `staging` and
`production` replace the deprecated stages. A LightGBM candidate is logged in the lightgbm flavor;
a cold-start fallback is the recency/frequency baseline logged as a pyfunc, tagged `fallback=true`.
Both load as pyfunc, so serving does not care which one it got. The customer value model (every
other target) is artifacts of the same run, so one version moves every target together.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.ml.baselines import BaselineModel
from mlops_assets.core.ml.features import FEATURES
from mlops_assets.core.ml.value_model import ValueModel
from mlops_assets.core.tenants.ids import validate_tenant_id

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A progress bar per artifact download (the value model is one per tenant and run) would flood the run logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
STAGING, PRODUCTION = "staging", "production"
VALUE_MODEL_DIR, VALUE_DOCUMENT = "value_model", "value_model.json"


def model_name(tenant_id: str) -> str:
    return f"repurchase-{validate_tenant_id(tenant_id)}"


def experiment_name(tenant_id: str) -> str:
    return f"repurchase/{validate_tenant_id(tenant_id)}"


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("lightgbm", "pandas", "numpy", "scikit-learn", "mlflow")]


def package_versions() -> dict[str, str]:
    from importlib.metadata import version

    versions = {name: version(name) for name in ("lightgbm", "pandas", "numpy", "pyarrow", "scikit-learn", "mlflow")}
    versions["python"] = platform.python_version()
    return versions


def code_version() -> dict[str, str]:
    """The git commit of the running code and whether the work tree had uncommitted changes; an image
    without a work tree carries the commit it was built from (MLOPS_GIT_COMMIT, the Dockerfile's build arg)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}
    except (OSError, subprocess.SubprocessError):
        stamped = os.environ.get("MLOPS_GIT_COMMIT")
        return {"git_commit": stamped or "unknown", "git_dirty": "false" if stamped else "unknown"}


def _pyfunc_base():
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class FallbackModel(_pyfunc_base()):
    """The best baseline as an MLflow pyfunc (cold start, or no LightGBM has beaten it yet)."""

    def __init__(self, baseline: BaselineModel):
        self.baseline = baseline

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:  # noqa: ARG002 - pyfunc API
        return self.baseline.predict(model_input)


@contextlib.contextmanager
def _quiet(logger_name: str):
    """MLflow narrates every registration at INFO/WARNING; the run's own logs say what matters."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def predictions_digest(probabilities: np.ndarray) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(np.ascontiguousarray(probabilities, dtype="<f8").tobytes()).hexdigest()


@dataclass(frozen=True)
class RegisteredVersion:
    """What the platform needs of an MLflow model version (whose `version` type varies by release)."""

    version: str
    run_id: str
    tags: dict[str, str]

    @classmethod
    def of(cls, model_version) -> RegisteredVersion:
        return cls(str(model_version.version), model_version.run_id, dict(model_version.tags or {}))


@dataclass(frozen=True)
class LoggedCandidate:
    run_id: str
    version: str
    kind: str


class ModelRegistry:
    def __init__(self, tracking_uri: str, artifact_uri: str, s3_endpoint_url: str | None = None):
        self.tracking_uri, self.artifact_uri = tracking_uri, artifact_uri.rstrip("/")
        if s3_endpoint_url:
            os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", s3_endpoint_url)
        import mlflow

        self._mlflow = mlflow
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _activate(self):
        self._mlflow.set_tracking_uri(self.tracking_uri)
        self._mlflow.set_registry_uri(self.tracking_uri)
        return self._mlflow

    def experiment_id(self, tenant_id: str) -> str:
        name = experiment_name(tenant_id)
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        return self.client.create_experiment(
            name, artifact_location=f"{self.artifact_uri}/{validate_tenant_id(tenant_id)}"
        )

    def log_candidate(
        self,
        tenant_id: str,
        *,
        model: Any,
        kind: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        training_frame: pd.DataFrame,
        training_source: str,
        data_digest: str,
        holdout_predictions: np.ndarray,
        figures: dict[str, Any],
        value_model: ValueModel,
    ) -> LoggedCandidate:
        """One MLflow run: params, metrics, plots, data version, code version, the customer value model
        (`value_model/`: its JSON document, every target's quality, a model string per learned target);
        then a registered version."""
        mlflow = self._activate()
        from mlflow.models import infer_signature

        sample = training_frame[FEATURES].head(200).astype(float)
        if sample.empty:
            sample = pd.DataFrame([dict.fromkeys(FEATURES, 0.0)])
        signature = infer_signature(sample, np.zeros(len(sample)))
        all_tags = {
            **tags,
            **code_version(),
            **{f"version_{k}": v for k, v in package_versions().items()},
            "tenant": tenant_id,
            "model_kind": kind,
            "fallback": str(kind == "fallback").lower(),
            "data_digest": data_digest,
            "holdout_predictions_digest": predictions_digest(holdout_predictions),
        }
        with (
            warnings.catch_warnings(),
            _quiet("mlflow"),
            mlflow.start_run(experiment_id=self.experiment_id(tenant_id), tags=all_tags) as run,
        ):
            warnings.simplefilter("ignore", UserWarning)
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
            mlflow.log_dict({"features": FEATURES}, "features.json")
            self._log_training_input(run.info.run_id, tenant_id, training_frame, training_source, data_digest)
            for name, figure in figures.items():
                mlflow.log_figure(figure, f"plots/{name}.png")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "holdout_predictions.npy"
                np.save(path, np.asarray(holdout_predictions, dtype="<f8"))
                mlflow.log_artifact(str(path))
            mlflow.log_dict(value_model.document(), f"{VALUE_MODEL_DIR}/{VALUE_DOCUMENT}")
            mlflow.log_dict(value_model.quality, f"{VALUE_MODEL_DIR}/target_quality.json")
            for target, text in value_model.model_strings().items():
                mlflow.log_text(text, f"{VALUE_MODEL_DIR}/{target}.txt")
            if kind == "lightgbm":
                logged = mlflow.lightgbm.log_model(
                    model.booster, name="model", signature=signature, pip_requirements=pip_requirements()
                )
            else:
                logged = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=FallbackModel(model),
                    signature=signature,
                    pip_requirements=pip_requirements(),
                )
            version = mlflow.register_model(logged.model_uri, model_name(tenant_id), tags=all_tags)
        return LoggedCandidate(run.info.run_id, str(version.version), kind)

    def _log_training_input(self, run_id: str, tenant_id: str, frame: pd.DataFrame, source: str, digest: str) -> None:
        """The training set as an MLflow dataset input, identified by the lake digest.

        `mlflow.data.from_pandas` infers the schema by visiting every cell (11 s for 700k rows); the
        schema of the first 1,000 rows is the same, and the profile records the true size.
        """
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.models import infer_signature

        schema = infer_signature(frame.head(1000)).inputs
        dataset = Dataset(
            name=f"training_set-{tenant_id}",
            digest=digest.removeprefix("sha256:")[:36],
            source_type="s3" if source.startswith("s3://") else "local",
            source=json.dumps({"uri": source}),
            schema=json.dumps({"mlflow_colspec": schema.to_dict()}),
            profile=json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
        )
        self.client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])

    def version(self, tenant_id: str, version: str) -> RegisteredVersion:
        return RegisteredVersion.of(self.client.get_model_version(model_name(tenant_id), str(version)))

    def alias_version(self, tenant_id: str, alias: str) -> RegisteredVersion | None:
        try:
            return RegisteredVersion.of(self.client.get_model_version_by_alias(model_name(tenant_id), alias))
        except self._mlflow.exceptions.MlflowException:
            return None

    def set_alias(self, tenant_id: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model_name(tenant_id), alias, str(version))

    def versions(self, tenant_id: str) -> list[RegisteredVersion]:
        found = self.client.search_model_versions(f"name = '{model_name(tenant_id)}'")
        return sorted((RegisteredVersion.of(v) for v in found), key=lambda v: int(v.version))

    def load(self, tenant_id: str, version: str):
        mlflow = self._activate()
        # The requirements were pinned when the model was logged; checking them against the installed
        # packages scans every distribution (0.2 s a load, once per tenant per run).
        return mlflow.pyfunc.load_model(f"models:/{model_name(tenant_id)}/{version}", suppress_warnings=True)

    def run(self, run_id: str):
        return self.client.get_run(run_id)

    def value_model(self, run_id: str) -> ValueModel | None:
        """The run's customer value model; None for versions registered before it existed."""
        if not self.client.list_artifacts(run_id, VALUE_MODEL_DIR):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(self.client.download_artifacts(run_id, VALUE_MODEL_DIR, tmp))
            document = json.loads((folder / VALUE_DOCUMENT).read_text())
            boosters = {name: (folder / f"{name}.txt").read_text() for name in document["learned"]}
        return ValueModel.from_document(document, boosters)

    def holdout_predictions(self, run_id: str) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(run_id, "holdout_predictions.npy", tmp)
            return np.load(io.BytesIO(Path(local).read_bytes()))
