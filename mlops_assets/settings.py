"""Deployment profiles, read from the environment into typed models: the one module that reads it.

`local` (the default) needs no server: everything lives under `$MLOPS_HOME` (default `./.mlops`).
`production` points the lake at S3 and the warehouse at PostgreSQL. Every value can be overridden
by its own variable in either profile; the README lists them. `MLOPS_EXECUTOR` picks where a run's
steps execute: in the run's own process tree (`default`), on Celery workers (`celery`, Redis as
broker), or in Kubernetes step pods (`k8s`). The API process reads `ServingSettings` besides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Redis on the same host, only when Celery is chosen and no broker is named.
LOCAL_CELERY_BROKER = "redis://127.0.0.1:6379/0"
PRODUCTION_NEEDS = ("lake_url", "warehouse_url", "mlflow_tracking_uri")


class SettingsError(RuntimeError):
    pass


class _EnvironmentModel(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLOPS_", frozen=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        """Only what `from_env` hands over: the environment it was given, nothing read behind its back."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read `env` (default: this process's environment); a bad value names its variable and the fix."""
        env = os.environ if env is None else env
        # Exact names, as the shell has them; an empty variable counts as unset.
        values = {
            info.validation_alias or field: env[name]
            for field, info in cls.model_fields.items()
            if (name := cls.variable(field)) in env and env[name]
        }
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = [error for error in exc.errors() if error["type"] != "default_factory_not_called"]
            raise SettingsError("; ".join(cls._explain(error) for error in problems)) from None

    @classmethod
    def variable(cls, field: str) -> str:
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else f"{cls.model_config['env_prefix']}{field.upper()}"

    @classmethod
    def _explain(cls, error) -> str:
        field = str(error["loc"][0]) if error["loc"] else ""
        if field not in cls.model_fields:
            return error["msg"]
        needs = cls.model_fields[field].description or error["msg"]
        return (
            f"{cls.variable(field)}={error['input']!r} must be {needs} (fix: correct it, or unset it for the default)"
        )


class Settings(_EnvironmentModel):
    """What the code location, the CLI, the Celery workers and the API share."""

    # Fields are validated in this order: a default may be derived from the fields above it.
    profile: Literal["local", "production"] = Field("local", description="'local' or 'production'")
    home: Path = Field(Path(".mlops"), validate_default=True)
    lake_url: str = Field(default_factory=lambda values: str(values["home"] / "lake"))
    s3_endpoint_url: str | None = None
    warehouse_url: str = Field(default_factory=lambda values: f"sqlite:///{values['home'] / 'warehouse.db'}")
    mlflow_tracking_uri: str = Field(default_factory=lambda values: f"sqlite:///{values['home'] / 'mlflow.db'}")
    mlflow_artifact_uri: str = Field(
        default_factory=lambda values: (
            f"{values['lake_url'].rstrip('/')}/mlflow-artifacts"
            if "://" in values["lake_url"]
            else (values["home"] / "mlartifacts").as_uri()
        ),
        validation_alias="MLOPS_MLFLOW_ARTIFACTS_URL",
    )
    dagster_home: Path = Field(
        default_factory=lambda values: values["home"] / "dagster", validation_alias="DAGSTER_HOME"
    )
    partition_window_days: int = Field(90, ge=7, le=3660, description="a whole number of days in [7, 3660]")
    tenants_per_run: int = Field(250, ge=1, le=10_000, description="a whole number in [1, 10000]")
    executor: Literal["default", "celery", "k8s"] = Field("default", description="'default', 'celery' or 'k8s'")
    celery_broker_url: str | None = Field(
        default_factory=lambda values: LOCAL_CELERY_BROKER if values["executor"] == "celery" else None
    )
    celery_backend_url: str | None = Field(default_factory=lambda values: values["celery_broker_url"])
    webhook_url: str | None = None

    @field_validator("profile", "executor", mode="before")
    @classmethod
    def _case_blind(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("home", "dagster_home")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @model_validator(mode="after")
    def _production_names_its_servers(self) -> Self:
        missing = [self.variable(field) for field in PRODUCTION_NEEDS if field not in self.model_fields_set]
        if self.profile == "production" and missing:
            raise SettingsError(f"profile 'production' needs {', '.join(missing)} (see README, 'Configuration')")
        return self

    def env_var(self, field: str) -> str | None:
        """The variable of this process's environment that holds `field`'s value, if one does: config that
        names it instead of holding the value keeps a password in a URL out of run config and the UI."""
        value = getattr(self, field)
        # Without its own variable the Celery backend is the broker: then the broker's variable holds it.
        fields = (field, "celery_broker_url") if field == "celery_backend_url" else (field,)
        return next((self.variable(f) for f in fields if value and os.environ.get(self.variable(f)) == value), None)


class ServingSettings(_EnvironmentModel):
    """What the API process reads besides `Settings`."""

    # Signs dashboard sessions; without it a random one is kept under $MLOPS_HOME (serving/app.py).
    session_secret: SecretStr | None = None
    secure_cookies: bool = Field(False, description="true or false (true behind HTTPS)")


def shop_token(tenant_id: str, variable: str) -> str:
    """A shop's access token, read from the variable its tenant names when a request is about to be made."""
    token = os.environ.get(variable)
    if not token:
        raise SettingsError(
            f"tenant {tenant_id}: environment variable {variable} (the shop's access token) is not set in this "
            "process (fix: export it where Dagster runs, e.g. in the code location's environment)"
        )
    return token
