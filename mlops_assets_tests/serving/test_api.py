"""The prediction API and the dashboard over real warehouses (SQLite and PostgreSQL), through HTTP."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from mlops_assets.core.ml.scoring import batch_summary
from mlops_assets.core.tenants.api_keys import ApiKeys
from mlops_assets.core.warehouse.prediction_store import PredictionReader, write_partition
from mlops_assets.serving.app import create_app
from mlops_assets_tests.helpers import SERVED_TENANT, TEST_END, scored

OTHER = "globex"
NASTY = "x'; drop table predictions; --"


@pytest.fixture
def world(served, warehouse_url):
    """Two days of the served tenant, one day of another tenant whose customers partly share ids."""
    frames = [scored(served, TEST_END - timedelta(days=1)), scored(served)]
    theirs = scored(served).assign(tenant_id=OTHER)
    theirs.loc[theirs.index[:10], "customer_id"] = [f"globex-only-{i}" for i in range(10)]
    for frame in [*frames, theirs]:
        tenant_id, day = frame["tenant_id"].iloc[0], frame["as_of_date"].iloc[0]
        write_partition(warehouse_url, tenant_id, day, frame, batch_summary(frame), "run-1")
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
    assert {"/v1/customers/{customer_id}/prediction", "/v1/predictions", "/v1/model"} <= set(schema["paths"])
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
    ],
)
def test_bad_parameters_are_422_with_a_message(world, params, message):
    answer = get(world, "/v1/predictions", **params)
    assert answer.status_code == 422 and message in answer.text


def test_model_card(world):
    body = get(world, "/v1/model").json()
    assert body["model_version"] == world["latest"]["model_version"].iloc[0] and body["model_kind"] == "lightgbm"
    assert body["metrics"]["holdout_auc"] > body["metrics"]["baseline_auc"] - 0.05 and body["customers"] > 1000


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
    )  # fmt: skip
    assert PredictionReader(url).monitoring(SERVED_TENANT)[-1]["drift_alarms"] == "feature_drift", (
        "merged, not replaced"
    )
    assert client.post("/login", data={"api_key": world["key"]}).status_code == 200
    page = client.get("/dashboard").text
    assert 'data-testid="drift-status">alarm (feature_drift)' in page and "spend_7d, last_order_value" in page
    assert 'data-testid="realized-auc">0.812<' in page and "holdout n/a" in page
    earlier = client.get("/dashboard", params={"date": (TEST_END - timedelta(days=1)).isoformat()}).text
    assert "No drift report for this day yet" in earlier
    client.post("/logout")
    assert client.post("/login", data={"api_key": world["other_key"]}).status_code == 200
    theirs = client.get("/dashboard").text
    assert "No drift report for this day yet" in theirs and "0.812" not in theirs
