"""Where a run's steps execute, as `MLOPS_EXECUTOR` says: Dagster's default executor (the run's own
processes), Celery workers fed through Redis, or one Kubernetes pod per step.

dagster-celery and dagster-k8s are imported only when chosen: the code location is imported for
every run and UI reload and must stay light (DESIGN.md, "Runs are expensive").
"""

from __future__ import annotations

import importlib

import dagster as dg

from mlops_assets.settings import Settings

# A step is a batch of tenants and runs for minutes. A worker process reserves only the task it is
# running and acknowledges it when done, so an idle worker never waits behind a busy one.
CELERY_SETTINGS = {"task_acks_late": True, "worker_prefetch_multiplier": 1}
# Redis hands an unacknowledged task to another worker after this long: it must exceed any step.
CELERY_VISIBILITY_TIMEOUT_S = 12 * 3600

# One step per pod. A run of 250 tenants peaked at 1.35 GiB in one process (docs/benchmarks.md) and
# no process may pass 2 GiB, so the limit makes an overrun an OOM kill, not a starved node. No CPU
# limit: a throttled step is only slower.
K8S_STEP_RESOURCES = {"requests": {"cpu": "1", "memory": "1536Mi"}, "limits": {"memory": "2Gi"}}


def _config_source(settings: Settings, field: str) -> str | dict | None:
    """`{"env": NAME}` when the environment holds the value: the run's config then holds the variable's
    name, never a password inside a broker URL (executor config takes this form, not an `EnvVar`)."""
    name = settings.env_var(field)
    return {"env": name} if name else getattr(settings, field)


def celery_config_source() -> dict:
    """Celery settings shared by the executor (which sends tasks) and the workers (which take them)."""
    from dagster_celery.defaults import broker_transport_options

    return {
        **CELERY_SETTINGS,
        "broker_transport_options": {**broker_transport_options, "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S},
    }


def _extra(module: str, extra: str, executor: str):
    """An optional executor's package, or an error that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"MLOPS_EXECUTOR={executor} needs {module} (fix: pip install 'mlops-assets[{extra}]')"
        ) from exc


def run_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor for every job of the code location; None keeps Dagster's default."""
    if settings.executor == "celery":
        celery_executor = _extra("dagster_celery", "celery", "celery").celery_executor

        return celery_executor.configured(
            {
                "broker": _config_source(settings, "celery_broker_url"),
                "backend": _config_source(settings, "celery_backend_url"),
                "config_source": celery_config_source(),
            }
        )
    if settings.executor == "k8s":
        k8s_job_executor = _extra("dagster_k8s", "k8s", "k8s").k8s_job_executor

        return k8s_job_executor.configured({"step_k8s_config": {"container_config": {"resources": K8S_STEP_RESOURCES}}})
    return None


def celery_worker_app(settings: Settings):
    """The Celery app of a worker: the broker, backend and settings the executor sends with, and
    dagster-celery's step task, which loads the job from the code location it names."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    app = make_app(
        CeleryExecutor.for_cli(
            broker=settings.celery_broker_url,
            backend=settings.celery_backend_url,
            config_source=celery_config_source(),
        ).app_args()
    )
    create_task(app)
    return app
