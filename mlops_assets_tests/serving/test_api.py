"""The prediction API and the dashboard over real warehouses (SQLite and PostgreSQL), through HTTP."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from mlops_assets.core.ml.scoring import batch_summary
from mlops_assets.core.tenants.api_keys import ApiKeys
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, file_settings
from mlops_assets.core.warehouse.customer_orders import write_orders
from mlops_assets.core.warehouse.engine import TARGET_COLUMNS
from mlops_assets.core.warehouse.prediction_store import PredictionReader, write_partition
from mlops_assets.serving.app import create_app
from mlops_assets_tests.helpers import (
    SERVED_TENANT,
    TARGET_QUALITY,
    TEST_END,
    predating_targets,
    scored,
    with_targets,
)

OTHER = "globex"
NASTY = "x'; drop table predictions; --"


@pytest.fixture
def world(served, warehouse_url):
    """Two days of the served tenant (an EUR shop with a 30-day horizon): the day before issue 16's targets
    existed, and one with them, and its orders; one day of another tenant whose customers partly share ids, and
    orders of one of its own customers."""
    TenantRegistry(warehouse_url).add(
        Tenant(SERVED_TENANT, "Acme", "file", file_settings("/data/acme.csv"), currency="EUR", horizon_days=30)
    )
    frames = [predating_targets(scored(served, TEST_END - timedelta(days=1))), with_targets(scored(served))]
    theirs = with_targets(scored(served)).assign(tenant_id=OTHER, spend_tier="low", clv_365d=1.0)
    theirs.loc[theirs.index[:10], "customer_id"] = [f"globex-only-{i}" for i in range(10)]
    for frame in [*frames, theirs]:
        tenant_id, day = frame["tenant_id"].iloc[0], frame["as_of_date"].iloc[0]
        write_partition(warehouse_url, tenant_id, day, frame, batch_summary(frame), "run-1")
    write_orders(warehouse_url, SERVED_TENANT, served["history"], None)
    write_orders(warehouse_url, OTHER, served["history"].head(50).assign(customer_id="globex-only-3"), None)
    keys = ApiKeys(warehouse_url)
    (key_id, key), (_, other_key) = keys.create(SERVED_TENANT), keys.create(OTHER)
    client = TestClient(create_app(warehouse_url, "test-secret"))
    return {"client": client, "key": key, "key_id": key_id, "other_key": other_key, "latest": frames[-1],
            "theirs": theirs, "keys": keys, "url": warehouse_url}  # fmt: skip


def get(world, path, key=None, **params):
    headers = {"Authorization": f"Bearer {key or world['key']}"}
    return world["client"].get(path, headers=headers, params=params)


def test_health_readiness_and_openapi(world):
    client = world["client"]
    assert client.get("/healthz").json() == {"status": "ok"} and client.get("/readyz").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/customers/{customer_id}/prediction", "/v1/customers/{customer_id}/orders", "/v1/predictions",
            "/v1/model"} <= set(schema["paths"])  # fmt: skip
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"X-API-Key": "mlk_000000000000_" + "a" * 43}]
)
def test_no_valid_key_no_data(world, headers):
    answer = world["client"].get("/v1/predictions", headers=headers)
    assert answer.status_code == 401 and "api-key create" in answer.json()["detail"]


def test_customer_prediction_matches_the_rows(world):
    row = world["latest"].iloc[17]
    answer = get(world, f"/v1/customers/{row['customer_id']}/prediction")
    assert answer.status_code == 200
    body = answer.json()
    assert body["as_of_date"] == TEST_END.isoformat() and body["rank"] == row["rank"]
    assert body["repurchase_probability"] == pytest.approx(row["repurchase_probability"], abs=1e-12)
    assert body["risk_band"] == row["risk_band"] and body["model_version"] == row["model_version"]
    assert body["top_reasons"] and {"feature", "contribution", "value"} == set(body["top_reasons"][0])
    earlier = get(world, f"/v1/customers/{row['customer_id']}/prediction", date=str(TEST_END - timedelta(days=1)))
    assert earlier.json()["as_of_date"] == (TEST_END - timedelta(days=1)).isoformat()
    assert get(world, "/v1/customers/x/prediction", key=world["other_key"], date="2020-01-01").status_code == 404


def test_customer_prediction_carries_every_target(world):
    latest = world["latest"]
    beyond_a_year = latest.loc[latest["expected_next_order_date"].isna()].iloc[0]
    dated = latest.loc[latest["expected_next_order_date"].notna()].iloc[0]
    for row in (beyond_a_year, dated):
        body = get(world, f"/v1/customers/{row['customer_id']}/prediction").json()
        for name in ("expected_orders", "expected_revenue", "clv_365d", "churn_probability"):
            assert body[name] == pytest.approx(row[name], abs=1e-12), name
        assert (body["spend_tier"], body["risk_band"]) == (row["spend_tier"], row["risk_band"])
    assert get(world, f"/v1/customers/{beyond_a_year['customer_id']}/prediction").json()[
        "expected_next_order_date"] is None  # fmt: skip
    assert body["expected_next_order_date"] == dated["expected_next_order_date"].isoformat()
    before = get(world, f"/v1/customers/{row['customer_id']}/prediction", date=str(TEST_END - timedelta(days=1)))
    assert {before.json()[name] for name in TARGET_COLUMNS} == {None}, "a day predicted before the targets"


def customer_with_many_orders(served) -> tuple[str, object]:
    """The served tenant's customer with the most orders, and those orders (one row each, the newest version)."""
    history = served["history"].sort_values(["order_id", "updated_at"]).drop_duplicates("order_id", keep="last")
    customer_id = history["customer_id"].value_counts().index[0]
    return customer_id, history.loc[history["customer_id"] == customer_id]


def test_customer_orders_newest_first_with_their_count_and_net_total(world, served):
    customer_id, orders = customer_with_many_orders(served)
    answer = get(world, f"/v1/customers/{customer_id}/orders", limit=3)
    assert answer.status_code == 200
    body = answer.json()
    kept = orders.loc[orders["cancelled_at"].isna()]
    assert (body["customer_id"], body["currency"], body["count"]) == (customer_id, "EUR", len(orders))
    assert len(orders) > 3
    assert body["net_total"] == pytest.approx((kept["total_price"] - kept["total_refunded"].fillna(0)).sum())
    newest = orders.sort_values(["created_at", "order_id"], ascending=False).head(3)
    assert [item["order_id"] for item in body["items"]] == list(newest["order_id"])
    first, source = body["items"][0], newest.iloc[0]
    assert first["total"] == pytest.approx(source["total_price"]) and first["order_date"] == str(
        source["created_at"].date()
    ), "the served tenant's timezone is UTC"
    assert len(get(world, f"/v1/customers/{customer_id}/orders").json()["items"]) == min(50, len(orders))


def test_customer_orders_are_the_keys_tenants_only(world):
    theirs = get(world, "/v1/customers/globex-only-3/orders", key=world["other_key"])
    assert theirs.status_code == 200 and theirs.json()["count"] == 50
    mine = get(world, "/v1/customers/globex-only-3/orders")
    assert mine.status_code == 404 and "no orders of this customer" in mine.json()["detail"]
    for customer_id in (NASTY, "%", "unknown"):
        assert get(world, f"/v1/customers/{customer_id}/orders").status_code == 404
    assert world["client"].get("/v1/customers/globex-only-3/orders").status_code == 401
    assert get(world, "/v1/customers/x/orders", limit=501).status_code == 422


def every_item(world, **params) -> tuple[list[dict], int]:
    """Every item of a filtered day, walking the cursor, and the total the first page announced."""
    items, cursor, total = [], None, None
    while True:
        body = get(world, "/v1/predictions", limit=1000, **params, **({"cursor": cursor} if cursor else {})).json()
        total = body["total"] if total is None else total
        items += body["items"]
        if not (cursor := body["next_cursor"]):
            return items, total


@pytest.mark.parametrize(
    "params, keep",
    [
        ({"spend_tier": "high"}, lambda f: f["spend_tier"] == "high"),
        ({"min_churn_probability": 0.4, "max_churn_probability": 0.7}, lambda f: f.churn_probability.between(0.4, 0.7)),
        ({"risk_band": "low", "min_clv_365d": 150.0}, lambda f: (f["risk_band"] == "low") & (f["clv_365d"] >= 150)),
        ({"spend_tier": "medium", "max_clv_365d": 300.0}, lambda f: (f.spend_tier == "medium") & (f.clv_365d <= 300)),
    ],
)  # fmt: skip
def test_the_list_filters_by_tier_churn_probability_and_clv(world, params, keep):
    items, total = every_item(world, **params)
    expected = world["latest"].loc[keep(world["latest"])]
    assert len(items) == total == len(expected) > 0
    assert {item["customer_id"] for item in items} == set(expected["customer_id"])
    earlier = str(TEST_END - timedelta(days=1))
    assert get(world, "/v1/predictions", date=earlier, **params).json()["total"] == 0, "null matches no filter"


def test_another_tenants_customer_is_a_404_everywhere(world):
    only_theirs = "globex-only-3"
    assert get(world, f"/v1/customers/{only_theirs}/prediction", key=world["other_key"]).status_code == 200
    mine = get(world, f"/v1/customers/{only_theirs}/prediction")
    assert mine.status_code == 404 and "globex" not in mine.text
    listed = get(world, "/v1/predictions", limit=1000)
    ids = {item["customer_id"] for item in listed.json()["items"]}
    assert not any(i.startswith("globex-only") for i in ids)
    client = world["client"]
    client.post("/login", data={"api_key": world["key"]})
    page = client.get(f"/dashboard/customers/{only_theirs}")
    assert page.status_code == 404 and "Customer not found" in page.text
    exported = client.get("/dashboard/customers.csv").text
    assert "globex-only" not in exported


def test_sql_metacharacters_are_just_unknown_ids(world):
    for customer_id in (NASTY, "%", "1 or 1=1"):
        assert get(world, f"/v1/customers/{customer_id}/prediction").status_code == 404
    assert PredictionReader(world["url"]).count(SERVED_TENANT, TEST_END) == len(world["latest"])


def test_pages_cover_the_filtered_day_once(world):
    seen, cursor, total = [], None, None
    while True:
        params = {"risk_band": "medium", "limit": 250, **({"cursor": cursor} if cursor else {})}
        body = get(world, "/v1/predictions", **params).json()
        total = body["total"]
        seen += [item["customer_id"] for item in body["items"]]
        assert all(item["risk_band"] == "medium" for item in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    expected = world["latest"].loc[world["latest"]["risk_band"] == "medium"]
    assert len(seen) == len(set(seen)) == total == len(expected)
    ranks = expected.set_index("customer_id").loc[seen, "rank"].to_numpy()
    assert (ranks[1:] > ranks[:-1]).all(), "rank order"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"limit": 0}, "greater than or equal to 1"),
        ({"limit": 5000}, "less than or equal to 1000"),
        ({"date": "2026-13-01"}, "date"),
        ({"risk_band": "purple"}, "high"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ({"min_probability": 0.9, "max_probability": 0.1}, "min_probability"),
        ({"spend_tier": "gold"}, "high"),
        ({"min_churn_probability": 1.5}, "less than or equal to 1"),
        ({"min_clv_365d": 500, "max_clv_365d": 10}, "min_clv_365d (500.0) is above max_clv_365d"),
    ],
)
def test_bad_parameters_are_422_with_a_message(world, params, message):
    answer = get(world, "/v1/predictions", **params)
    assert answer.status_code == 422 and message in answer.text


def test_model_card(world):
    body, latest = get(world, "/v1/model").json(), world["latest"]
    assert body["model_version"] == latest["model_version"].iloc[0] and body["model_kind"] == "lightgbm"
    assert body["metrics"]["holdout_auc"] > body["metrics"]["baseline_auc"] - 0.05 and body["customers"] > 1000
    assert (body["currency"], body["horizon_days"]) == ("EUR", 30)
    targets = body["targets"]
    assert targets["expected_revenue_total"] == pytest.approx(latest["expected_revenue"].sum())
    assert targets["clv_365d_total"] == pytest.approx(latest["clv_365d"].sum())
    assert targets["tier_counts"] == latest["spend_tier"].value_counts().to_dict()
    assert targets["quality"] == TARGET_QUALITY


def test_openapi_documents_every_field_with_its_unit(world):
    schemas = world["client"].get("/openapi.json").json()["components"]["schemas"]
    prediction = schemas["Prediction"]["properties"]
    undocumented = {"customer_id", "model_name", "model_version"}
    assert {name for name, field in prediction.items() if not field.get("description")} == undocumented
    for name in ("expected_revenue", "clv_365d"):
        assert "tenant currency" in prediction[name]["description"]
    assert {"type": "string", "format": "date"} in prediction["expected_next_order_date"]["anyOf"]
    assert "beyond 365 days" in prediction["expected_next_order_date"]["description"]
    assert {"high", "medium", "low"} == set(prediction["spend_tier"]["anyOf"][0]["enum"])
    assert {"currency", "horizon_days", "targets"} <= set(schemas["ModelCard"]["properties"])
    parameters = {p["name"] for p in world["client"].get("/openapi.json").json()["paths"]["/v1/predictions"]["get"][
        "parameters"]}  # fmt: skip
    assert {"spend_tier", "risk_band", "min_clv_365d", "max_clv_365d", "min_churn_probability"} <= parameters


def test_stale_predictions_are_said_on_the_card_and_the_dashboard(world, served):
    card = get(world, "/v1/model").json()
    assert card["as_of_date"] == TEST_END.isoformat() and card["stale"] is True
    assert card["stale_since"] == (TEST_END + timedelta(days=1)).isoformat()
    client = world["client"]
    client.post("/login", data={"api_key": world["key"]})
    banner = client.get("/dashboard").text
    assert 'data-testid="stale"' in banner and f'"stale-since">{TEST_END + timedelta(days=1)}<' in banner
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    frame = scored(served, yesterday)
    write_partition(world["url"], SERVED_TENANT, yesterday, frame, batch_summary(frame), "run-2")
    card = get(world, "/v1/model").json()
    assert (card["as_of_date"], card["stale"], card["stale_since"]) == (yesterday.isoformat(), False, None)
    assert 'data-testid="stale"' not in client.get("/dashboard").text


def test_dashboard_login_session_and_revocation(world):
    client = world["client"]
    assert client.get("/dashboard", follow_redirects=False).headers["location"] == "/login"
    forged = client.post("/login", data={"api_key": world["key"]}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    refused = client.post("/login", data={"api_key": "mlk_wrong"})
    assert refused.status_code == 401 and "unknown or revoked" in refused.text
    signed = client.post("/login", data={"api_key": world["key"]}, follow_redirects=False)
    cookie = signed.headers["set-cookie"].lower()
    assert signed.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie
    assert world["key"] not in signed.headers["set-cookie"], "the cookie holds no key"
    overview = client.get("/dashboard")
    latest = world["latest"]
    assert overview.status_code == 200 and f'data-testid="customers">{len(latest)}<' in overview.text
    high = int((latest["risk_band"] == "high").sum())
    assert f'data-testid="band-high">{high}<' in overview.text and "<svg" in overview.text
    world["keys"].revoke(SERVED_TENANT, world["key_id"])
    assert client.get("/dashboard", follow_redirects=False).headers["location"] == "/login"


def test_dashboard_list_filter_export_and_customer_page(world):
    client, latest = world["client"], world["latest"]
    client.post("/login", data={"api_key": world["key"]})
    listed = client.get("/dashboard/customers", params={"band": "high"})
    high = latest.loc[latest["risk_band"] == "high"]
    assert f'data-testid="total">{len(high)}<' in listed.text and 'class="band medium"' not in listed.text
    exported = list(csv.DictReader(io.StringIO(client.get("/dashboard/customers.csv", params={"band": "high"}).text)))
    assert len(exported) == len(high) and {row["risk_band"] for row in exported} == {"high"}
    customer_id = latest.sort_values("rank")["customer_id"].iloc[0]
    page = client.get(f"/dashboard/customers/{customer_id}")
    assert page.status_code == 200 and 'data-testid="reasons"' in page.text and "<polyline" in page.text


def test_the_customer_page_lists_the_customers_orders_beside_the_targets(world, served):
    client = world["client"]
    client.post("/login", data={"api_key": world["key"]})
    customer_id, orders = customer_with_many_orders(served)
    page = client.get(f"/dashboard/customers/{customer_id}").text
    kept = orders.loc[orders["cancelled_at"].isna()]
    net = (kept["total_price"] - kept["total_refunded"].fillna(0)).sum()
    assert f'"order-count">{len(orders)}<' in page and f'"order-total">{net:,.2f} EUR<' in page
    newest = orders.sort_values(["created_at", "order_id"], ascending=False).iloc[0]
    assert f"<td>{newest['created_at'].date()}</td>\n          <td>{newest['order_id']}</td>" in page
    assert page.count('<td class="amount">') == min(50, len(orders)) and 'data-testid="clv"' in page


def test_dashboard_filters_and_exports_by_the_targets(world):
    client, latest = world["client"], world["latest"]
    client.post("/login", data={"api_key": world["key"]})
    params = {"tier": "high", "band": "", "min_churn_probability": "0.1", "max_clv_365d": ""}
    expected = latest.loc[(latest["spend_tier"] == "high") & (latest["churn_probability"] >= 0.1)]
    listed = client.get("/dashboard/customers", params=params)
    assert f'data-testid="total">{len(expected)}<' in listed.text and 'class="tier medium"' not in listed.text
    assert 'name="min_churn_probability" type="number" min="0" max="1" step="0.01" value="0.1"' in listed.text
    answer = client.get("/dashboard/customers.csv", params=params)
    assert 'predictions-acme-2026-10-31-tier-high.csv"' in answer.headers["content-disposition"]
    exported = list(csv.DictReader(io.StringIO(answer.text)))
    assert set(TARGET_COLUMNS) <= set(exported[0]) and len(exported) == len(expected)
    by_id = expected.set_index("customer_id")
    for row in exported:
        source = by_id.loc[row["customer_id"]]
        assert float(row["clv_365d"]) == source["clv_365d"] and row["spend_tier"] == "high"
        next_order = source["expected_next_order_date"]
        assert row["expected_next_order_date"] == (next_order.isoformat() if next_order else "")
    refused = client.get("/dashboard/customers", params={"min_clv_365d": "lots"})
    assert refused.status_code == 422 and "min_clv_365d must be a number" in refused.text


def test_dashboard_shows_every_target_and_its_quality(world):
    client, latest = world["client"], world["latest"]
    client.post("/login", data={"api_key": world["key"]})
    overview = client.get("/dashboard").text
    assert f'"revenue-horizon">{latest["expected_revenue"].sum():,.2f} EUR<' in overview
    assert f'"revenue-365d">{latest["clv_365d"].sum():,.2f} EUR<' in overview
    for tier, customers in latest["spend_tier"].value_counts().items():
        assert f'data-testid="tier-{tier}">{customers}<' in overview
    assert 'data-testid="grade-clv_365d">Good<' in overview and 'data-testid="holdout-clv_365d">0.520<' in overview
    assert 'data-testid="baseline-repurchase_probability">0.770<' in overview
    assert "learned model did not beat BG/NBD" in overview
    assert 'data-testid="grade-expected_orders">not measured<' in overview
    assert 'aria-label="calibration: Churn probability"' in overview
    assert 'aria-label="lift by decile: CLV, next 365 days"' in overview
    assert 'aria-label="calibration: CLV' not in overview, "amounts have no calibration chart"
    before = client.get("/dashboard", params={"date": str(TEST_END - timedelta(days=1))}).text
    assert '"revenue-365d">not predicted<' in before and before.count(">not measured<") == 6

    row = latest.loc[latest["expected_next_order_date"].isna()].iloc[0]
    page = client.get(f"/dashboard/customers/{row['customer_id']}").text
    assert (
        f'"clv">{row["clv_365d"]:,.2f} EUR<' in page
        and f'"expected-revenue">{row["expected_revenue"]:,.2f} EUR<' in page
    )
    assert f'"churn">{row["churn_probability"]:.3f} · {row["risk_band"]}<' in page
    assert f'"spend-tier">{row["spend_tier"]}<' in page and '"next-order">beyond a year<' in page
    assert "Expected orders, next 30 days" in page and 'data-testid="reasons"' in page
    dated = latest.loc[latest["expected_next_order_date"].notna()].iloc[0]
    page = client.get(f"/dashboard/customers/{dated['customer_id']}").text
    assert f'"next-order">{dated["expected_next_order_date"].isoformat()}<' in page
    earlier = client.get(
        f"/dashboard/customers/{row['customer_id']}", params={"date": str(TEST_END - timedelta(days=1))}
    )
    assert '"next-order">not predicted<' in earlier.text and '"clv">not predicted<' in earlier.text


def test_a_dropped_warehouse_connection_is_one_503_then_recovers(served, postgres_url):
    """The read engine does not pre-ping: a killed connection fails one request, cleanly, then heals."""
    import sqlalchemy as sa

    frame = scored(served)
    write_partition(postgres_url, SERVED_TENANT, TEST_END, frame, batch_summary(frame), "run-1")
    _, key = ApiKeys(postgres_url).create(SERVED_TENANT)
    client = TestClient(create_app(postgres_url, "test-secret"))
    path, headers = f"/v1/customers/{frame['customer_id'].iloc[0]}/prediction", {"X-API-Key": key}
    assert client.get(path, headers=headers).status_code == 200
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = current_database() and pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
    lost = client.get(path, headers=headers)
    assert lost.status_code == 503 and lost.headers["retry-after"] == "1" and "retry" in lost.json()["detail"]
    assert client.get(path, headers=headers).status_code == 200


def test_dashboard_shows_the_tenants_own_drift_and_realized_performance(world):
    from mlops_assets.core.warehouse.prediction_store import record_monitoring

    client, url = world["client"], world["url"]
    record_monitoring(
        url, SERVED_TENANT, TEST_END, model_version="3", reference_day="2026-10-24", drifted_share=0.16,
        drifted_features="spend_7d, last_order_value", prediction_psi=0.012, drift_alarms="feature_drift",
    )  # fmt: skip
    record_monitoring(
        url, SERVED_TENANT, TEST_END, predicted_on=TEST_END - timedelta(days=30), realized_model_version="2",
        realized_auc=0.8123, realized_brier=0.1, top_decile_precision=0.61, holdout_auc=float("nan"),
        realized_expected_revenue_gini=0.4123, realized_expected_revenue_bias=1.1, clv_365d_psi=0.0456,
    )  # fmt: skip
    record_monitoring(url, SERVED_TENANT, TEST_END - timedelta(days=1), realized_clv_365d_gini=0.3)
    assert PredictionReader(url).monitoring(SERVED_TENANT)[-1]["drift_alarms"] == "feature_drift", (
        "merged, not replaced"
    )
    assert client.post("/login", data={"api_key": world["key"]}).status_code == 200
    page = client.get("/dashboard").text
    assert 'data-testid="drift-status">alarm (feature_drift)' in page and "spend_7d, last_order_value" in page
    assert 'data-testid="realized-auc">0.812<' in page and "holdout n/a" in page
    assert 'data-testid="psi-clv_365d">0.046<' in page and 'data-testid="psi-expected_orders"' not in page
    realized = {"repurchase_probability": "0.812", "expected_revenue": "0.412", "clv_365d": "0.300"}
    for name, shown in realized.items():
        assert f'data-testid="realized-{name}">{shown}<' in page, "each target's latest realized figure"
    assert 'data-testid="realized-churn_probability"><span class="muted">not yet<' in page
    card = get(world, "/v1/model").json()
    assert card["realized"] == {"repurchase_probability": 0.8123, "expected_revenue": 0.4123, "clv_365d": 0.3}
    earlier = client.get("/dashboard", params={"date": (TEST_END - timedelta(days=1)).isoformat()}).text
    assert "No drift report for this day yet" in earlier
    client.post("/logout")
    assert client.post("/login", data={"api_key": world["other_key"]}).status_code == 200
    theirs = client.get("/dashboard").text
    assert "No drift report for this day yet" in theirs and "0.812" not in theirs
