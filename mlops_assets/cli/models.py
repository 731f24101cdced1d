"""`mlops models ...` and `mlops reproduce`: a tenant's registered versions, its `production` alias, and
rebuilding a version bit for bit."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from mlops_assets.cli.common import console, fail, print_table, settings
from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id

app = typer.Typer(no_args_is_help=True, help="Registered models, promotions and rollbacks.")


def _model_registry():
    from mlops_assets.core.ml.tracking import ModelRegistry

    current = settings()
    return ModelRegistry(current.mlflow_tracking_uri, current.mlflow_artifact_uri, current.s3_endpoint_url)


def _serving_sample(tenant_id: str, cutoff: str | None):
    """The holdout of the version's training set, when the lake still has it."""
    from mlops_assets.core.lake.files import lake_root
    from mlops_assets.core.ml.training_data import stored_holdout_sample

    current = settings()
    return stored_holdout_sample(lake_root(current.lake_url, current.s3_endpoint_url), tenant_id, cutoff)


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


@app.command("history")
def models_history(tenant_id: str):
    """Registered versions with their holdout metrics, and every alias move from the promotion log."""
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.ml.tracking import PRODUCTION, STAGING

    try:
        validate_tenant_id(tenant_id)
    except InvalidTenantId as exc:
        fail(str(exc))
    models = _model_registry()
    production, staging = models.alias_version(tenant_id, PRODUCTION), models.alias_version(tenant_id, STAGING)
    versions = []
    for version in models.versions(tenant_id):
        metrics = models.run(version.run_id).data.metrics
        aliases = [a for a, v in ((PRODUCTION, production), (STAGING, staging)) if v and v.version == version.version]
        versions.append(
            (
                version.version,
                version.tags.get("model_kind", "?"),
                version.tags.get("cutoff", "?"),
                f"{metrics.get('holdout_auc', float('nan')):.4f}",
                f"{metrics.get('baseline_auc', float('nan')):.4f}",
                ",".join(aliases),
                version.run_id[:8],
            )
        )
    print_table(("version", "kind", "cutoff", "holdout AUC", "baseline AUC", "aliases", "run"), versions)
    print_table(
        ("when", "alias", "action", "version", "previous", "by", "reason"),
        (
            (
                row["created_at"].strftime("%Y-%m-%d %H:%M"),
                row["alias"],
                row["action"],
                str(row["version"]),
                str(row["previous_version"] or "-"),
                row["actor"],
                row["reason"][:100],
            )
            for row in PromotionLog(settings().warehouse_url).history(tenant_id)
        ),
    )


def _move_production(tenant_id: str, version: str, action: str, reason: str) -> None:
    from mlops_assets.core.ml.candidates import set_production

    models = _model_registry()
    try:
        target = models.version(tenant_id, version)
    except Exception as exc:  # noqa: BLE001 - MLflow raises one exception type for every lookup failure
        fail(
            f"tenant {tenant_id}: no registered version {version} ({exc.__class__.__name__}); "
            f"see `mlops models history {tenant_id}`"
        )
        raise
    outcome = set_production(
        models,
        settings().warehouse_url,
        tenant_id,
        target.version,
        action,
        reason,
        _actor(),
        _serving_sample(tenant_id, target.tags.get("cutoff")),
    )
    if not outcome.promoted:
        fail(outcome.reason)
    console.print(
        f"{tenant_id}: production is now version {outcome.production_version} "
        f"(was {outcome.previous_production or 'none'})"
    )


@app.command("promote")
def models_promote(
    tenant_id: str,
    to_version: Annotated[str, typer.Option("--to-version", help="registered version to serve")],
    reason: Annotated[str, typer.Option(help="why, for the promotion log")] = "manual promotion",
):
    """Point `production` at a version by hand; serving checks still apply."""
    _move_production(tenant_id, to_version, "promote", reason)


@app.command("rollback")
def models_rollback(
    tenant_id: str,
    to_version: Annotated[str | None, typer.Option("--to-version", help="default: the previous production")] = None,
    reason: Annotated[str, typer.Option(help="why, for the promotion log")] = "manual rollback",
):
    """Move `production` back to the version it pointed to before (from the promotion log)."""
    from mlops_assets.core.ml.promotion import PromotionLog
    from mlops_assets.core.ml.tracking import PRODUCTION

    current = _model_registry().alias_version(tenant_id, PRODUCTION)
    if current is None:
        fail(f"tenant {tenant_id} has no production model to roll back")
    target = to_version or PromotionLog(settings().warehouse_url).previous_production(tenant_id, current.version)
    if not target:
        fail(
            f"tenant {tenant_id}: the promotion log has no version before {current.version} "
            "(fix: name one with --to-version)"
        )
    _move_production(tenant_id, target, "rollback", reason)


def reproduce(tenant_id: str, version: str):
    """Rebuild a version's training set from its logged data version, retrain, compare predictions bit for bit."""
    from mlops_assets.core.lake.files import lake_root
    from mlops_assets.core.ml.reproduction import reproduce as reproduce_version

    current = settings()
    report = reproduce_version(
        _model_registry(), lake_root(current.lake_url, current.s3_endpoint_url), tenant_id, version
    )
    for line in report.differences:
        console.print(f"  differs: {line}", highlight=False)
    if not report.identical:
        fail(f"tenant {tenant_id} version {version} was NOT reproduced: holdout predictions differ")
    console.print(
        f"tenant {tenant_id} version {version} reproduced: holdout predictions bit-identical "
        f"({report.rebuilt_predictions})"
    )
