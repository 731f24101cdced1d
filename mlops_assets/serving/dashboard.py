"""The tenant dashboard: overview, customer list with filters and CSV export, customer page.

Every target of a prediction (issue 16) is shown beside the reasons and the customer's own orders;
days predicted before the targets existed show "not predicted", and a model version without a
backtest per target shows "not measured".

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
from mlops_assets.core.warehouse.engine import MONITORED_TARGETS
from mlops_assets.core.warehouse.prediction_store import latest_realized
from mlops_assets.serving import charts
from mlops_assets.serving.api import Connection

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
BANDS = ("high", "medium", "low")  # churn-risk bands, and spend tiers by the same names
BAND_COLORS = ["#c0392b", "#e67e22", "#27ae60"]
TIER_COLORS = ["#1f4e79", "#3b6ea5", "#9ab8d8"]
PAGE_SIZE = 50
ORDERS_SHOWN = 50  # a customer's newest orders on their page; the count and the net total cover every order
CSV_COLUMNS = [
    "customer_id", "as_of_date", "repurchase_probability", "risk_band", "rank", "percentile", "expected_orders",
    "expected_revenue", "clv_365d", "churn_probability", "expected_next_order_date", "spend_tier", "model_version",
]  # fmt: skip
# The list's range filters from the form: `min_<stem>` / `max_<stem>`, within these limits.
RANGES = {"probability": (0.0, 1.0), "churn_probability": (0.0, 1.0), "clv_365d": (None, None)}
TARGET_LABELS = {
    "repurchase_probability": "Orders again within {horizon}",
    "churn_probability": "Churn probability",
    "expected_orders": "Expected orders, next {horizon}",
    "expected_revenue": "Expected revenue, next {horizon}",
    "clv_365d": "CLV, next 365 days",
    "expected_next_order_date": "Expected next order date",
}
METRIC_LABELS = {"auc": "AUC", "normalized_gini": "normalized Gini", "coverage": "coverage"}
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


def money(value: float | None, currency: str | None) -> str:
    return "not predicted" if value is None else f"{value:,.2f}{' ' + currency if currency else ''}"


templates.env.filters["money"] = money


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
    terms = request.app.state.reader.terms(principal.tenant_id)
    targets = batch["targets"] or {"expected_revenue_total": None, "clv_365d_total": None, "tier_counts": None}
    tiers = targets["tier_counts"]
    return page(
        request,
        "overview.html",
        principal,
        batch=batch,
        fresh=fresh,
        metrics=batch["model_metrics"],
        terms=terms,
        horizon=horizon(terms),
        targets=targets,
        quality=quality_rows(
            (batch["targets"] or {}).get("quality") or {},
            horizon(terms),
            latest_realized(monitored, batch["as_of_date"]),
        ),
        tier_chart=charts.bars([tiers[t] for t in BANDS], [f"{t} spend" for t in BANDS], "spend tiers", TIER_COLORS)
        if tiers
        else None,
        days=[b["as_of_date"] for b in trend],
        histogram=charts.bars(
            batch["histogram"], [f"{i / bins:.2f}" for i in range(bins)], "customers by repurchase probability"
        ),
        band_chart=charts.bars(
            [counts[b] for b in BANDS], [f"{b} churn risk" for b in BANDS], "churn-risk bands", BAND_COLORS
        ),
        trend_chart=charts.line(
            [(b["as_of_date"].isoformat(), b["mean_probability"]) for b in trend], "mean repurchase probability"
        ),
        high_share_chart=charts.line(
            [(b["as_of_date"].isoformat(), b["band_counts"]["high"] / max(1, b["customers"])) for b in trend],
            "share of customers at high churn risk",
        ),
        drift=drift,
        target_psi=[(name, TARGET_LABELS[name].format(horizon=horizon(terms)).lower()) for name in MONITORED_TARGETS],
        realized=realized[-1] if realized else None,
        realized_chart=charts.line(
            [(m["as_of_date"].isoformat(), m["realized_auc"]) for m in realized], "realized AUC", 0.0, 1.0
        )
        if realized
        else None,
    )


def horizon(terms: dict) -> str:
    return f"{terms['horizon_days']} days" if terms["horizon_days"] else "the horizon"


def lift(deciles: list[dict]) -> list[float]:
    """Observed outcome over the base rate per decile, the highest predictions first (the base rate: the
    deciles' mean outcome); empty when nothing was observed."""
    base = sum(d["observed"] for d in deciles) / len(deciles) if deciles else 0.0
    return [d["observed"] / base for d in sorted(deciles, key=lambda d: -d["decile"])] if base > 0 else []


def quality_rows(quality: dict, horizon_text: str, realized: dict[str, float] | None = None) -> list[dict]:
    """Per target: its holdout metric beside the baseline's and the latest realized one (`realized`), the grade,
    lift by decile and (probabilities) a calibration chart, served model beside baseline; `measured` False says
    "not measured"."""
    rows = []
    for name, label in TARGET_LABELS.items():
        found = quality.get(name)
        row = {"name": name, "label": label.format(horizon=horizon_text), "measured": bool(found), "q": found,
               "realized": (realized or {}).get(name)}  # fmt: skip
        if found:
            both = {"model": found.get("deciles") or [], "baseline": found.get("baseline_deciles") or []}
            lifts = {series: lift(deciles) for series, deciles in both.items()}
            series = {k: v for k, v in lifts.items() if v and len(v) == len(lifts["model"])}
            labels = [f"D{d['decile']}" for d in sorted(both["model"], key=lambda d: -d["decile"])]
            row["metric"] = METRIC_LABELS.get(found["metric"], found["metric"])
            row["lift_chart"] = (
                charts.grouped_bars(series, labels, f"lift by decile: {row['label']}") if series else None
            )
            points = {k: [(d["mean_predicted"], d["observed"]) for d in v] for k, v in both.items() if v}
            probability = found["metric"] == "auc" and points
            row["calibration_chart"] = (
                charts.calibration(points, f"calibration: {row['label']}") if probability else None
            )
        rows.append(row)
    return rows


def list_filters(request: Request) -> dict:
    """The list's filters from a plain HTML form, where a blank field means "any": `band` (churn band),
    `tier` (spend tier) and `min_<stem>` / `max_<stem>` of `RANGES`, as `prediction_store.FILTERS` names them."""
    form = request.query_params

    def number(name: str, low: float | None, high: float | None) -> float | None:
        text = form.get(name, "").strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if value != value or (low is not None and value < low) or (high is not None and value > high):
            limits = f"between {low:g} and {high:g}" if low is not None else "a number"
            raise HTTPException(422, f"{name} must be {limits}, got {text[:20]!r}")
        return value

    filters = {}
    for field, column in (("band", "risk_band"), ("tier", "spend_tier")):
        chosen = form.get(field, "")
        if chosen and chosen not in BANDS:
            raise HTTPException(422, f"{field} must be one of {', '.join(BANDS)} or empty, got {chosen[:20]!r}")
        filters[column] = chosen or None
    for stem, (low, high) in RANGES.items():
        least, most = number(f"min_{stem}", low, high), number(f"max_{stem}", low, high)
        if least is not None and most is not None and least > most:
            raise HTTPException(422, f"min_{stem} ({least:g}) is above max_{stem} ({most:g})")
        filters |= {f"min_{stem}": least, f"max_{stem}": most}
    return filters


def form_values(filters: dict) -> dict:
    """The filters as the form names and shows them ("" for any)."""
    names = {"risk_band": "band", "spend_tier": "tier"}
    return {names.get(key, key): "" if value is None else (f"{value:g}" if isinstance(value, float) else value)
            for key, value in filters.items()}  # fmt: skip


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
        form=form_values(filters),
        query=request.url.query,
        terms=reader.terms(principal.tenant_id),
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
            writer.writerows([[row[c] for c in CSV_COLUMNS] for row in chunk])  # None: an empty field
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(chunk) < 5000:
                return
            after = chunk[-1]["rank"]

    named = {"churn": filters["risk_band"], "tier": filters["spend_tier"]}
    chosen = "".join(f"-{name}-{value}" for name, value in named.items() if value)
    filename = f"predictions-{principal.tenant_id}-{as_of.isoformat()}{chosen}.csv"
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
    terms = reader.terms(principal.tenant_id)
    orders = reader.orders(principal.tenant_id, customer_id, ORDERS_SHOWN)
    return page(
        request,
        "customer.html",
        principal,
        customer_id=customer_id,
        row=row,
        terms=terms,
        horizon=horizon(terms),
        reasons=reasons(row),
        orders=orders,
        history=history,
        history_chart=charts.line(
            [(h["as_of_date"].isoformat(), h["repurchase_probability"]) for h in history],
            "repurchase probability over time",
            0,
            1,
        ),
    )
