"""The tenant dashboard: overview, customer list with filters and CSV export, customer page.

Server-rendered (Jinja2, inline SVG charts, one shipped stylesheet): it works offline and without
JavaScript. Login takes the tenant's API key once and keeps an HttpOnly, SameSite=Strict session
cookie; every page checks that the key behind the session is still active.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from mlops_assets.core.tenants.api_keys import Principal
from mlops_assets.serving import charts
from mlops_assets.serving.api import Connection

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
BANDS = ("high", "medium", "low")
BAND_COLORS = ["#c0392b", "#e67e22", "#27ae60"]
PAGE_SIZE = 50
CSV_COLUMNS = [
    "customer_id",
    "as_of_date",
    "repurchase_probability",
    "risk_band",
    "rank",
    "percentile",
    "model_version",
]
FEATURE_LABELS = {
    "recency_days": "days since last order",
    "frequency": "orders placed",
    "monetary_total": "total spend",
    "monetary_mean": "average order value",
    "monetary_max": "largest order",
    "tenure_days": "days since first order",
    "gap_mean_days": "usual days between orders",
    "gap_std_days": "spread of days between orders",
    "recency_over_gap": "time since last order vs usual gap",
    "refund_share": "share of spend refunded",
    "cancel_share": "share of orders cancelled",
    "first_order_value": "first order value",
    "last_order_value": "last order value",
    "order_trend_90d": "orders last 90 days vs the 90 before",
    "spend_trend_90d": "spend last 90 days vs the 90 before",
    "items_per_order": "items per order",
    "bgnbd_probability": "BG/NBD purchase probability",
    **{f"orders_{w}d": f"orders in the last {w} days" for w in (7, 30, 90, 365)},
    **{f"spend_{w}d": f"spend in the last {w} days" for w in (7, 30, 90, 365)},
}


class LoginRequired(Exception):
    pass


async def signed_in(request: Request, conn: Connection) -> Principal:
    session = request.session
    if "tenant_id" not in session:
        raise LoginRequired
    principal = Principal(session["tenant_id"], session["key_id"])
    if not request.app.state.keys.using(conn).is_active(principal):
        session.clear()
        raise LoginRequired
    return principal


def page(request: Request, name: str, principal: Principal | None, status_code: int = 200, **context):
    return templates.TemplateResponse(
        request, name, {"tenant_id": principal.tenant_id if principal else None, **context}, status_code=status_code
    )


def login_redirect(request: Request, exc: LoginRequired) -> RedirectResponse:  # noqa: ARG001 - handler API
    """Send a visitor without a live session to the login page."""
    return RedirectResponse("/login", status_code=303)


SignedIn = Annotated[Principal, Depends(signed_in)]


def reasons(row: dict) -> list[dict]:
    return [
        {"label": FEATURE_LABELS.get(f, f), "feature": f, "contribution": c, "value": v, "raises": c > 0}
        for f, c, v in json.loads(row["top_reasons"])
    ]


@router.get("/", response_class=HTMLResponse)
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return page(request, "login.html", None)


def same_origin(request: Request) -> None:
    """Forms post only from our own pages: browsers send `Origin` with a POST, so a cross-site form
    (login CSRF: signing a victim into the attacker's tenant) is refused."""
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise HTTPException(403, "cross-site form submission refused")


@router.post("/login", response_class=HTMLResponse, dependencies=[Depends(same_origin)])
def login(request: Request, api_key: Annotated[str, Form(max_length=200)]):
    principal = request.app.state.keys.authenticate(api_key.strip())
    if principal is None:
        return page(request, "login.html", None, 401, error="That key is unknown or revoked.")
    request.session.clear()
    request.session.update({"tenant_id": principal.tenant_id, "key_id": principal.key_id})
    return RedirectResponse("/dashboard", status_code=303)


@router.post("/logout", dependencies=[Depends(same_origin)])
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _batch_or_404(request: Request, principal: Principal, day: date | None) -> dict | None:
    batch = request.app.state.reader.batch(principal.tenant_id, day)
    if batch is None and day is not None:
        raise HTTPException(404, f"no predictions on {day.isoformat()}")
    return batch


@router.get("/dashboard", response_class=HTMLResponse)
def overview(request: Request, principal: SignedIn, day: Annotated[date | None, Query(alias="date")] = None):
    batch = _batch_or_404(request, principal, day)
    if batch is None:
        return page(request, "overview.html", principal, batch=None)
    trend = request.app.state.reader.batches(principal.tenant_id)
    # Said on the page rather than quietly showing an old day as if it were the latest.
    fresh = request.app.state.reader.freshness(principal.tenant_id, datetime.now(UTC))
    monitored = request.app.state.reader.monitoring(principal.tenant_id)
    drift = next((m for m in monitored if m["as_of_date"] == batch["as_of_date"] and m["drift_alarms"]), None)
    realized = [m for m in monitored if m["realized_auc"] is not None and m["as_of_date"] <= batch["as_of_date"]]
    counts = batch["band_counts"]
    bins = len(batch["histogram"])
    return page(
        request,
        "overview.html",
        principal,
        batch=batch,
        fresh=fresh,
        metrics=batch["model_metrics"],
        days=[b["as_of_date"] for b in trend],
        histogram=charts.bars(
            batch["histogram"], [f"{i / bins:.2f}" for i in range(bins)], "customers by repurchase probability"
        ),
        band_chart=charts.bars([counts[b] for b in BANDS], [f"{b} risk" for b in BANDS], "risk bands", BAND_COLORS),
        trend_chart=charts.line(
            [(b["as_of_date"].isoformat(), b["mean_probability"]) for b in trend], "mean repurchase probability"
        ),
        high_share_chart=charts.line(
            [(b["as_of_date"].isoformat(), b["band_counts"]["high"] / max(1, b["customers"])) for b in trend],
            "share of customers at high churn risk",
        ),
        drift=drift,
        realized=realized[-1] if realized else None,
        realized_chart=charts.line(
            [(m["as_of_date"].isoformat(), m["realized_auc"]) for m in realized], "realized AUC", 0.0, 1.0
        )
        if realized
        else None,
    )


def list_filters(
    band: Annotated[str, Query(max_length=10)] = "",
    min_probability: Annotated[str, Query(max_length=20)] = "",
    max_probability: Annotated[str, Query(max_length=20)] = "",
) -> dict:
    """The list's filters from a plain HTML form, where a blank field means "any"."""

    def probability(name: str, text: str) -> float | None:
        if not text.strip():
            return None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 1:
            raise HTTPException(422, f"{name} must be a number between 0 and 1, got {text!r}")
        return value

    if band and band not in BANDS:
        raise HTTPException(422, f"band must be one of {', '.join(BANDS)} or empty, got {band!r}")
    return {
        "risk_band": band or None,
        "min_probability": probability("min_probability", min_probability),
        "max_probability": probability("max_probability", max_probability),
    }


Filters = Annotated[dict, Depends(list_filters)]


@router.get("/dashboard/customers", response_class=HTMLResponse)
def customers(
    request: Request,
    principal: SignedIn,
    filters: Filters,
    day: Annotated[date | None, Query(alias="date")] = None,
    after: Annotated[int, Query(ge=0)] = 0,
):
    batch = _batch_or_404(request, principal, day)
    if batch is None:
        return page(request, "overview.html", principal, batch=None)
    reader = request.app.state.reader
    rows = reader.page(principal.tenant_id, batch["as_of_date"], after_rank=after, limit=PAGE_SIZE + 1, **filters)
    return page(
        request,
        "customers.html",
        principal,
        batch=batch,
        rows=rows[:PAGE_SIZE],
        next_after=rows[PAGE_SIZE - 1]["rank"] if len(rows) > PAGE_SIZE else None,
        total=reader.matching(batch, **filters),
        filters={k: "" if v is None else v for k, v in filters.items()},
        query=request.url.query,
    )


@router.get("/dashboard/customers.csv")
def customers_csv(
    request: Request,
    principal: SignedIn,
    filters: Filters,
    day: Annotated[date | None, Query(alias="date")] = None,
):
    batch = _batch_or_404(request, principal, day)
    if batch is None:
        raise HTTPException(404, "no predictions yet")
    reader, as_of = request.app.state.reader, batch["as_of_date"]

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        after = 0
        while True:
            chunk = reader.page(principal.tenant_id, as_of, after_rank=after, limit=5000, **filters)
            writer.writerows([[row[c] for c in CSV_COLUMNS] for row in chunk])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(chunk) < 5000:
                return
            after = chunk[-1]["rank"]

    band = filters["risk_band"]
    filename = f"predictions-{principal.tenant_id}-{as_of.isoformat()}{'-' + band if band else ''}.csv"
    return StreamingResponse(
        rows(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get("/dashboard/customers/{customer_id}", response_class=HTMLResponse)
def customer(
    request: Request,
    principal: SignedIn,
    customer_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    day: Annotated[date | None, Query(alias="date")] = None,
):
    reader = request.app.state.reader
    batch = _batch_or_404(request, principal, day)
    row = reader.customer(principal.tenant_id, customer_id, batch["as_of_date"]) if batch else None
    if row is None:
        return page(request, "customer.html", principal, 404, customer_id=customer_id, row=None)
    history = reader.customer_history(principal.tenant_id, customer_id)
    return page(
        request,
        "customer.html",
        principal,
        customer_id=customer_id,
        row=row,
        reasons=reasons(row),
        history=history,
        history_chart=charts.line(
            [(h["as_of_date"].isoformat(), h["repurchase_probability"]) for h in history],
            "repurchase probability over time",
            0,
            1,
        ),
    )
