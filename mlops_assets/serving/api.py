"""REST API `/v1`: one tenant's predictions, chosen by its API key."""

from __future__ import annotations

import base64
import json
from datetime import date
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from mlops_assets.core.api_keys import Principal

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


def tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    header_key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    key = header_key or (credentials.credentials if credentials else None)
    principal = request.app.state.keys.authenticate(key)
    if principal is None:
        raise HTTPException(
            401,
            "missing or unknown API key (send `Authorization: Bearer <key>` or `X-API-Key: <key>`; "
            "an operator creates one with `mlops tenants api-key create TENANT`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Tenant = Annotated[Principal, Depends(tenant)]


def as_prediction(row: dict) -> Prediction:
    reasons = [Reason(feature=f, contribution=c, value=v) for f, c, v in json.loads(row["top_reasons"])]
    return Prediction(**{**row, "top_reasons": reasons})


def day_or_latest(request: Request, principal: Principal, day: date | None) -> dict:
    batch = request.app.state.reader.batch(principal.tenant_id, day)
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


@router.get("/healthz", tags=["health"])
def health() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
def ready(request: Request) -> dict:
    """Readiness: the warehouse answers."""
    try:
        with request.app.state.reader.engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise HTTPException(503, f"warehouse unavailable: {exc.__class__.__name__}") from exc
    return {"status": "ready"}


@router.get("/v1/customers/{customer_id}/prediction", response_model=Prediction, tags=["predictions"])
def customer_prediction(
    request: Request,
    principal: Tenant,
    customer_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    as_of: Annotated[date | None, Query(alias="date", description="default: the latest day")] = None,
) -> Prediction:
    """One customer's prediction on a day (the latest by default)."""
    batch = day_or_latest(request, principal, as_of)
    row = request.app.state.reader.customer(principal.tenant_id, customer_id, batch["as_of_date"])
    if row is None:
        raise HTTPException(404, f"no prediction for this customer on {batch['as_of_date'].isoformat()}")
    return as_prediction(row)


@router.get("/v1/predictions", response_model=PredictionPage, tags=["predictions"])
def list_predictions(
    request: Request,
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
    batch = day_or_latest(request, principal, as_of)
    day = batch["as_of_date"]
    after = decode_cursor(cursor, day) if cursor else 0
    reader, filters = request.app.state.reader, {"risk_band": risk_band, "min_probability": min_probability,
                                                 "max_probability": max_probability}  # fmt: skip
    rows = reader.page(principal.tenant_id, day, after_rank=after, limit=limit + 1, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    return PredictionPage(
        as_of_date=day,
        total=reader.count(principal.tenant_id, day, **filters),
        items=[as_prediction(row) for row in rows],
        next_cursor=encode_cursor(day, rows[-1]["rank"]) if more else None,
    )


@router.get("/v1/model", response_model=ModelCard, tags=["model"])
def model(request: Request, principal: Tenant) -> ModelCard:
    """The model behind the latest predictions, with its holdout metrics and the baseline's."""
    batch = day_or_latest(request, principal, None)
    return ModelCard(**batch, metrics=batch["model_metrics"])
