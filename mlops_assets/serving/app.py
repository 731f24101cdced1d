"""The prediction API and the tenant dashboard in one ASGI app (`mlops serve`).

Both read only precomputed rows from the warehouse; neither imports MLflow or Dagster. The tenant
is never a parameter: the API key (API) or the session opened with it (dashboard) decides it, so
another tenant's customer is simply not found.
"""

from __future__ import annotations

import gc
import os
import secrets
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr
from starlette.middleware.sessions import SessionMiddleware

from mlops_assets.core.tenants.api_keys import ApiKeys
from mlops_assets.core.warehouse.engine import read_engine
from mlops_assets.core.warehouse.prediction_store import PredictionReader
from mlops_assets.serving import api, dashboard

STATIC = Path(__file__).parent / "static"
SESSION_HOURS = 8


def session_secret(home: Path, configured: SecretStr | None) -> str:
    """The configured secret ($MLOPS_SESSION_SECRET), else a random one kept (mode 600) under $MLOPS_HOME."""
    if configured is not None:
        return configured.get_secret_value()
    path = home / "session_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_app(warehouse_url: str, secret: str, secure_cookies: bool = False) -> FastAPI:
    app = FastAPI(
        title="mlops predictions API",
        version="1",
        description="Per-customer repurchase predictions of one tenant, chosen by the API key.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = read_engine(warehouse_url)
    app.state.keys = ApiKeys(warehouse_url, read_only=True)
    app.state.reader = PredictionReader(warehouse_url, read_only=True)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="mlops_session",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=secure_cookies,
    )
    app.include_router(api.router)
    app.include_router(dashboard.router)
    app.add_exception_handler(dashboard.LoginRequired, dashboard.login_redirect)
    for lost_connection in (sa.exc.OperationalError, sa.exc.InterfaceError):
        app.add_exception_handler(lost_connection, api.warehouse_unavailable)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory: the profile's warehouse, the session secret and the cookie policy."""
    from mlops_assets.settings import ServingSettings, Settings

    settings, serving = Settings.from_env(), ServingSettings.from_env()
    secret = session_secret(settings.home, serving.session_secret)
    app = create_app(settings.warehouse_url, secret, serving.secure_cookies)
    # Everything loaded so far lives as long as the process: keep it out of the collector's full passes,
    # which otherwise show up as latency spikes (docs/benchmarks.md).
    gc.freeze()
    return app
