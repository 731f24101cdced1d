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
from pydantic import BaseModel, Field

from mlops_assets.core.tenants.api_keys import Principal, key_digest
from mlops_assets.core.warehouse.prediction_store import PredictionReader, latest_realized

router = APIRouter()
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: <API key>`")
RiskBand = Literal["high", "medium", "low"]
SpendTier = Literal["high", "medium", "low"]
UNSET = "; null on days predicted before this field existed"


class Reason(BaseModel):
    feature: str
    contribution: float = Field(description="the feature's contribution to the score, in log-odds")
    value: float | None = Field(description="the customer's value of the feature")


class Prediction(BaseModel):
    """One customer's targets as of the end of a day (the tenant's timezone). Amounts are in the tenant's
    currency and H is its horizon in days: both on `GET /v1/model`."""

    customer_id: str
    as_of_date: date = Field(description="the day of the snapshot the prediction is made from")
    repurchase_probability: float = Field(description="P(at least one order in the next H days), 0..1")
    risk_band: RiskBand = Field(
        description="churn band of churn_probability: high from 0.7, medium from 0.4, low below (the defaults; "
        "days predicted before churn_probability existed band by repurchase_probability)"
    )
    rank: int = Field(description="1 = the customer most likely to order again in the next H days")
    percentile: float = Field(description="share of the tenant's customers scoring at most this one, 0..100")
    model_name: str
    model_version: str
    top_reasons: list[Reason] = Field(description="the features that moved repurchase_probability most")
    expected_orders: float | None = Field(description="expected number of orders in the next H days" + UNSET)
    expected_revenue: float | None = Field(description="expected spend in the next H days, tenant currency" + UNSET)
    clv_365d: float | None = Field(description="expected spend in the next 365 days, tenant currency" + UNSET)
    churn_probability: float | None = Field(description="P(the customer has stopped buying), 0..1" + UNSET)
    expected_next_order_date: date | None = Field(
        description="the day by which the customer more likely than not has ordered again; null when that is "
        "beyond 365 days (or, with clv_365d null, not predicted)"
    )
    spend_tier: SpendTier | None = Field(
        description="by clv_365d within the tenant's day: high = top 20%, medium = next 30%, low = the rest and "
        "every clv_365d of 0" + UNSET
    )


class PredictionPage(BaseModel):
    as_of_date: date
    total: int
    items: list[Prediction]
    next_cursor: str | None


class Decile(BaseModel):
    decile: int = Field(description="1 = the tenth of holdout customers with the lowest predictions, 10 the highest")
    mean_predicted: float
    observed: float = Field(description="what those customers did in the holdout (share, count or amount)")


class TargetQuality(BaseModel):
    """A target's backtest on the time-based holdout, the served model beside its BG/NBD baseline."""

    served: str = Field(description="lightgbm, or baseline when the learned model did not beat it")
    flag: str = Field(description="why the baseline serves, else empty")
    metric: str = Field(description="auc (probabilities), normalized_gini (amounts) or coverage (dates)")
    holdout: float | None
    baseline: float | None
    grade: Literal["Poor", "Fair", "Good", "Excellent"] | None
    extra: dict[str, float | None] = Field(description="e.g. brier, mae, bias and the baseline's")
    deciles: list[Decile]
    baseline_deciles: list[Decile]


class TargetsSummary(BaseModel):
    expected_revenue_total: float | None = Field(description="sum of expected_revenue, tenant currency")
    clv_365d_total: float | None = Field(description="sum of clv_365d, tenant currency")
    tier_counts: dict[SpendTier, int] | None = Field(description="customers per spend_tier")
    quality: dict[str, TargetQuality] = Field(description="by target name; empty when not measured")


class ModelCard(BaseModel):
    as_of_date: date
    model_name: str
    model_version: str
    model_kind: str
    metrics: dict[str, float]
    customers: int
    stale: bool  # the latest predictions are older than a day and a half after their day ended (tenant's timezone)
    stale_since: date | None  # the first day without predictions, when stale
    horizon_days: int | None = Field(description="H: the days expected_orders and expected_revenue cover")
    currency: str | None = Field(description="ISO 4217 code of every amount")
    targets: TargetsSummary | None = Field(description="null on days predicted before these targets existed")
    realized: dict[str, float] = Field(
        description="by target name, the latest realized figure of the metric its backtest grades (AUC for "
        "probabilities, normalized Gini for amounts) once outcomes are known: H days after the predictions, 365 "
        "for churn_probability and clv_365d; a target without one is absent"
    )


class Order(BaseModel):
    """One order in its latest known version (a refund or a cancellation revises it)."""

    order_id: str
    ordered_at: datetime = Field(description="when it was placed (UTC)")
    order_date: date = Field(description="the day it was placed, in the tenant's timezone")
    total: float = Field(description="the order's total, tenant currency")
    refunded: float = Field(description="refunded of it so far, tenant currency")
    cancelled_at: datetime | None = Field(description="when it was cancelled (UTC); null when it was not")


class CustomerOrders(BaseModel):
    """A customer's order history as ingested (quarantined orders are left out until an operator releases them)."""

    customer_id: str
    currency: str | None = Field(description="ISO 4217 code of every amount")
    count: int = Field(description="all of the customer's orders, cancelled ones included")
    net_total: float = Field(description="spend less refunds over the orders not cancelled, tenant currency")
    items: list[Order] = Field(description="the newest `limit` orders, newest first")


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


@router.get("/v1/customers/{customer_id}/orders", response_model=CustomerOrders, tags=["customers"])
async def customer_orders(
    request: Request,
    conn: Connection,
    principal: Tenant,
    customer_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    limit: Annotated[int, Query(ge=1, le=500, description="how many of the newest orders to list")] = 50,
) -> CustomerOrders:
    """One customer's orders, newest first, with their count and net total (index reads, whatever the count)."""
    reader = request.app.state.reader.using(conn)
    history = reader.orders(principal.tenant_id, customer_id, limit)
    if not history["count"]:
        raise HTTPException(404, "no orders of this customer (a customer's orders appear once their day is ingested)")
    return CustomerOrders(customer_id=customer_id, currency=reader.terms(principal.tenant_id)["currency"], **history)


def list_filters(
    risk_band: Annotated[RiskBand | None, Query(description="churn band")] = None,
    spend_tier: SpendTier | None = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1, description="repurchase_probability from")] = None,
    max_probability: Annotated[float | None, Query(ge=0, le=1, description="repurchase_probability up to")] = None,
    min_churn_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_churn_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    min_clv_365d: Annotated[float | None, Query(description="tenant currency")] = None,
    max_clv_365d: Annotated[float | None, Query(description="tenant currency")] = None,
) -> dict:
    """The list's filters, bounds inclusive (`prediction_store.FILTERS`); a row whose target is null
    matches no bound on it."""
    bounds = {
        "probability": (min_probability, max_probability),
        "churn_probability": (min_churn_probability, max_churn_probability),
        "clv_365d": (min_clv_365d, max_clv_365d),
    }
    for stem, (low, high) in bounds.items():
        if low is not None and high is not None and low > high:
            raise HTTPException(422, f"min_{stem} ({low}) is above max_{stem} ({high})")
    ranges = {f"{end}_{stem}": pair[i] for stem, pair in bounds.items() for i, end in enumerate(("min", "max"))}
    return {"risk_band": risk_band, "spend_tier": spend_tier, **ranges}


@router.get("/v1/predictions", response_model=PredictionPage, tags=["predictions"])
def list_predictions(
    request: Request,
    conn: Connection,
    principal: Tenant,
    filters: Annotated[dict, Depends(list_filters)],
    as_of: Annotated[date | None, Query(alias="date", description="default: the latest day")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
) -> PredictionPage:
    """A day's predictions in rank order (most likely to order again first), a page at a time."""
    reader = request.app.state.reader.using(conn)
    batch = day_or_latest(reader, principal, as_of)
    day = batch["as_of_date"]
    after = decode_cursor(cursor, day) if cursor else 0
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
    """The model behind the latest predictions, with its holdout metrics and the baseline's, each target's
    backtest and latest realized figure, the units of the amounts, and whether those predictions are stale."""
    reader = request.app.state.reader.using(conn)
    batch = day_or_latest(reader, principal, None)
    fresh = reader.freshness(principal.tenant_id, datetime.now(UTC))
    terms = reader.terms(principal.tenant_id)
    realized = latest_realized(reader.monitoring(principal.tenant_id), batch["as_of_date"])
    return ModelCard(
        **batch, **terms, metrics=batch["model_metrics"], stale=fresh.stale, stale_since=fresh.since, realized=realized
    )
