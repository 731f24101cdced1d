"""`mlops serve` and `mlops dev`: the long-running servers, the tenants' API and the operator's Dagster UI."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from mlops_assets.cli.common import console, instance, settings
from mlops_assets.cli.emulator import DEMO_TOKEN, EMULATOR_TOKEN_ENV


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def serve(
    host: Annotated[str, typer.Option(help="listen address; keep loopback unless a proxy fronts it")] = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
):
    """The prediction API (`/v1`, OpenAPI at /openapi.json) and the tenant dashboard (`/dashboard`)."""
    import uvicorn

    settings()
    console.print(f"API and dashboard on http://{host}:{port}/ (warehouse: {_safe_url(settings().warehouse_url)})")
    uvicorn.run(
        "mlops_assets.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        log_level="warning", access_log=False,
    )  # fmt: skip


def dev(host: str = "127.0.0.1", port: int = 3000):
    """`dagster dev` on this profile's persistent instance ($MLOPS_HOME/dagster unless DAGSTER_HOME is set).

    It also passes the demo emulator's token (unless $MLOPS_EMULATOR_TOKEN is set), so demo tenants
    can be materialized from the UI while `mlops shop-emulator` runs.
    """
    instance().dispose()
    os.environ.setdefault(EMULATOR_TOKEN_ENV, DEMO_TOKEN)
    command = [sys.executable, "-m", "dagster", "dev", "-m", "mlops_assets.definitions", "-h", host, "-p", str(port)]
    raise typer.Exit(subprocess.call(command, env={**os.environ}))
