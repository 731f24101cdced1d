"""Deployment profiles, read from the environment once per process.

`local` (the default) needs no server: everything lives under `$MLOPS_HOME` (default `./.mlops`).
`production` points the lake at S3 and the warehouse at PostgreSQL. Every value can be overridden
by its own variable in either profile; the README lists them. `MLOPS_EXECUTOR` picks where a run's
steps execute: in the run's own process tree (`default`), on Celery workers (`celery`, Redis as
broker), or in Kubernetes step pods (`k8s`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("local", "production")
EXECUTORS = ("default", "celery", "k8s")
# Redis on the same host, only when Celery is chosen and no broker is named.
LOCAL_CELERY_BROKER = "redis://127.0.0.1:6379/0"


class SettingsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    profile: str
    home: Path
    lake_url: str
    s3_endpoint_url: str | None
    warehouse_url: str
    mlflow_tracking_uri: str
    mlflow_artifact_uri: str
    dagster_home: Path
    partition_window_days: int
    tenants_per_run: int
    executor: str
    celery_broker_url: str | None
    celery_backend_url: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        profile = env.get("MLOPS_PROFILE", "local").strip().lower()
        if profile not in PROFILES:
            raise SettingsError(f"MLOPS_PROFILE={profile!r} is not one of {PROFILES} (fix: unset it or pick one)")
        home = Path(env.get("MLOPS_HOME") or ".mlops").expanduser().resolve()

        def required_in_production(name: str, local_default: str) -> str:
            value = env.get(name)
            if value:
                return value
            if profile == "production":
                raise SettingsError(f"profile 'production' needs {name} (see README, 'Configuration')")
            return local_default

        lake_url = required_in_production("MLOPS_LAKE_URL", str(home / "lake"))
        warehouse_url = required_in_production("MLOPS_WAREHOUSE_URL", f"sqlite:///{home / 'warehouse.db'}")
        mlflow_uri = required_in_production("MLOPS_MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        artifacts = env.get("MLOPS_MLFLOW_ARTIFACTS_URL") or (
            f"{lake_url.rstrip('/')}/mlflow-artifacts" if "://" in lake_url else (home / "mlartifacts").as_uri()
        )
        window = env.get("MLOPS_PARTITION_WINDOW_DAYS", "90")
        if not window.isdigit() or not 7 <= int(window) <= 3660:
            raise SettingsError(f"MLOPS_PARTITION_WINDOW_DAYS={window!r} must be a whole number of days in [7, 3660]")
        per_run = env.get("MLOPS_TENANTS_PER_RUN", "250")
        if not per_run.isdigit() or not 1 <= int(per_run) <= 10_000:
            raise SettingsError(f"MLOPS_TENANTS_PER_RUN={per_run!r} must be a whole number in [1, 10000]")
        executor = env.get("MLOPS_EXECUTOR", "default").strip().lower()
        if executor not in EXECUTORS:
            raise SettingsError(f"MLOPS_EXECUTOR={executor!r} is not one of {EXECUTORS} (fix: unset it or pick one)")
        broker = env.get("MLOPS_CELERY_BROKER_URL") or (LOCAL_CELERY_BROKER if executor == "celery" else None)
        return cls(
            profile=profile,
            home=home,
            lake_url=lake_url,
            s3_endpoint_url=env.get("MLOPS_S3_ENDPOINT_URL") or None,
            warehouse_url=warehouse_url,
            mlflow_tracking_uri=mlflow_uri,
            mlflow_artifact_uri=artifacts,
            dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster").expanduser().resolve(),
            partition_window_days=int(window),
            tenants_per_run=int(per_run),
            executor=executor,
            celery_broker_url=broker,
            celery_backend_url=env.get("MLOPS_CELERY_BACKEND_URL") or broker,
        )
