"""REST API `/v1`: one tenant's predictions, chosen by its API key."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from mlops_assets.core.tenants.api_keys import Principal, key_digest
from mlops_assets.core.warehouse.prediction_store import PredictionReader

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: <API key>`")
RiskBand = Literal["high", "medium", "low"]


class Reason(BaseModel):
    feature: str
    contribution: float
    value: float | None


class Prediction(BaseModel):
    customer_id: str
    as_of_date: date
    repurchase_probability: float
    risk_band: RiskBand
    rank: int
    percentile: float
    model_name: str
    model_version: str
    top_reasons: list[Reason]


class PredictionPage(BaseModel):
    as_of_date: date
    total: int
    items: list[Prediction]
    next_cursor: str | None


class ModelCard(BaseModel):
    as_of_date: date
    model_name: str
    model_version: str
    model_kind: str
    metrics: dict[str, float]
    customers: int
    stale: bool  # the latest predictions are older than a day and a half after their day ended (tenant's timezone)
    stale_since: date | None  # the first day without predictions, when stale


async def connection(request: Request) -> AsyncIterator[sa.Connection]:
    """One pooled connection for all of a request's queries (a checkout costs a round trip or two).

    The API's queries are index lookups well under a millisecond, so they run on the event loop:
    each hop to the threadpool (four per request for sync dependencies and endpoints) cost more
    than the query (docs/benchmarks.md). Only the list endpoint, whose pages can be large, runs in
    the threadpool.
    """
    with request.app.state.engine.connect() as conn:
        yield conn


Connection = Annotated[sa.Connection, Depends(connection)]


async def presented_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    header_key: Annotated[str | None, Security(api_key_header)],
) -> str | None:
    return header_key or (credentials.credentials if credentials else None)


PresentedKey = Annotated[str | None, Depends(presented_key)]
UNAUTHORIZED = HTTPException(
    401,
    "missing or unknown API key (send `Authorization: Bearer <key>` or `X-API-Key: <key>`; "
    "an operator creates one with `mlops tenants api-key create TENANT`)",
    headers={"WWW-Authenticate": "Bearer"},
)


async def tenant(request: Request, conn: Connection, key: PresentedKey) -> Principal:
    principal = request.app.state.keys.using(conn).authenticate(key)
    if principal is None:
        raise UNAUTHORIZED
    return principal


Tenant = Annotated[Principal, Depends(tenant)]


def as_prediction(row: dict) -> Prediction:
    reasons = [Reason(feature=f, contribution=c, value=v) for f, c, v in json.loads(row["top_reasons"])]
    return Prediction(**{**row, "top_reasons": reasons})


def day_or_latest(reader: PredictionReader, principal: Principal, day: date | None) -> dict:
    batch = reader.batch(principal.tenant_id, day)
    if batch is None:
        raise HTTPException(404, f"no predictions {'on ' + day.isoformat() if day else 'yet'} for this tenant")
    return batch


def encode_cursor(day: date, rank: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([day.isoformat(), rank]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, day: date) -> int:
    try:
        cursor_day, rank = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        valid = cursor_day == day.isoformat() and isinstance(rank, int) and rank >= 0
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise HTTPException(422, "cursor is not one this API returned for that date (fix: start without `cursor`)")
    return rank


def warehouse_unavailable(request: Request, exc: sa.exc.DBAPIError) -> JSONResponse:  # noqa: ARG001 - handler API
    """A dropped or refused warehouse connection: 503, retry shortly (the pool has been refilled)."""
    return JSONResponse(
        {"detail": f"warehouse unavailable ({exc.orig.__class__.__name__}); retry shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


@router.get("/healthz", tags=["health"])
async def health() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def ready(request: Request) -> dict:
    """Readiness: the warehouse answers."""
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise HTTPException(503, f"warehouse unavailable: {exc.__class__.__name__}") from exc
    return {"status": "ready"}


@router.get("/v1/customers/{customer_id}/prediction", response_model=Prediction, tags=["predictions"])
async def customer_prediction(
    request: Request,
    conn: Connection,
    key: PresentedKey,
    customer_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    as_of: Annotated[date | None, Query(alias="date", description="default: the latest day")] = None,
) -> Prediction:
    """One customer's prediction on a day (the latest by default).

    The hottest call authenticates and reads in one statement (docs/architecture.md, "Serving")."""
    digest = key_digest(key)
    reader = request.app.state.reader.using(conn)
    principal, row = reader.customer_for_key(digest, customer_id, as_of) if digest else (None, None)
    if principal is None:
        raise UNAUTHORIZED
    if row is None:
        batch = day_or_latest(reader, Principal(*principal), as_of)
        raise HTTPException(404, f"no prediction for this customer on {batch['as_of_date'].isoformat()}")
    return as_prediction(row)


@router.get("/v1/predictions", response_model=PredictionPage, tags=["predictions"])
def list_predictions(
    request: Request,
    conn: Connection,
    principal: Tenant,
    as_of: Annotated[date | None, Query(alias="date", description="default: the latest day")] = None,
    risk_band: RiskBand | None = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> PredictionPage:
    """A day's predictions in rank order (most likely to order again first), a page at a time."""
    if min_probability is not None and max_probability is not None and min_probability > max_probability:
        raise HTTPException(422, "min_probability is above max_probability")
    reader = request.app.state.reader.using(conn)
    batch = day_or_latest(reader, principal, as_of)
    day = batch["as_of_date"]
    after = decode_cursor(cursor, day) if cursor else 0
    filters = {"risk_band": risk_band, "min_probability": min_probability,
                                                 "max_probability": max_probability}  # fmt: skip
    rows = reader.page(principal.tenant_id, day, after_rank=after, limit=limit + 1, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    return PredictionPage(
        as_of_date=day,
        total=reader.matching(batch, **filters),
        items=[as_prediction(row) for row in rows],
        next_cursor=encode_cursor(day, rows[-1]["rank"]) if more else None,
    )


@router.get("/v1/model", response_model=ModelCard, tags=["model"])
async def model(request: Request, conn: Connection, principal: Tenant) -> ModelCard:
    """The model behind the latest predictions, with its holdout metrics and the baseline's, and whether those
    predictions are stale."""
    reader = request.app.state.reader.using(conn)
    batch = day_or_latest(reader, principal, None)
    fresh = reader.freshness(principal.tenant_id, datetime.now(UTC))
    return ModelCard(**batch, metrics=batch["model_metrics"], stale=fresh.stale, stale_since=fresh.since)
