"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `mlops serve` on loopback.

Screenshots go to $MLOPS_SCREENSHOT_DIR when set (that is how docs/dashboard*.png are made), else to tmp.
"""

import os
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.core.ml.scoring import batch_summary, score_snapshot
from mlops_assets.core.tenants.api_keys import ApiKeys
from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, file_settings
from mlops_assets.core.warehouse.customer_orders import write_orders
from mlops_assets.core.warehouse.prediction_store import PredictionReader, record_monitoring, write_partition
from mlops_assets_tests.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SERVED_TENANT,
    TEST_END,
    free_port,
    wait_until,
    with_targets,
)

DAYS = 7


@pytest.fixture
def dashboard(served, mlops_home):
    """`mlops serve` on a warehouse holding a week of the served tenant's predictions with every target, and its
    orders."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (fix: apt-get install chromium; .ci/run does)")
    warehouse = f"sqlite:///{mlops_home / 'warehouse.db'}"
    TenantRegistry(warehouse).add(
        Tenant(SERVED_TENANT, "Acme", "file", file_settings("/data/acme.csv"), currency="EUR", horizon_days=30)
    )
    for offset in reversed(range(DAYS)):
        day = TEST_END - timedelta(days=offset)
        snapshot = served["snapshot"] if offset == 0 else feature_snapshot(served["history"], day, "UTC", 30)
        frame = with_targets(
            score_snapshot(served["model"], snapshot, day, "sha256:features", f"run-{day}", served["created"])
        )
        write_partition(warehouse, SERVED_TENANT, day, frame, batch_summary(frame), f"run-{day}")
        drifted = offset == 0
        record_monitoring(
            warehouse, SERVED_TENANT, day, model_version=served["model"].version, reference_day=str(TEST_END),
            drifted_share=0.16 if drifted else 0.0, drifted_features="spend_7d, orders_7d, last_order_value"
            if drifted else "", prediction_psi=0.02 if drifted else 0.004,
            drift_alarms="feature_drift" if drifted else "none",
            predicted_on=day - timedelta(days=30), realized_model_version=served["model"].version,
            realized_auc=0.80 + 0.005 * offset, realized_brier=0.12, top_decile_precision=0.62, holdout_auc=0.83,
        )  # fmt: skip
    write_orders(warehouse, SERVED_TENANT, served["history"], None)
    _, key = ApiKeys(warehouse).create(SERVED_TENANT, "browser test")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)],
        env={**os.environ, "MLOPS_HOME": str(mlops_home)},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{base}/healthz", timeout=1).ok
        except requests.ConnectionError:
            return False

    try:
        assert wait_until(up, timeout=60), "mlops serve answered"
        yield {"base": base, "key": key, "reader": PredictionReader(warehouse)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def test_login_overview_filter_customer(dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("MLOPS_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    reader, base = dashboard["reader"], dashboard["base"]
    batch = reader.batch(SERVED_TENANT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{base}/dashboard")
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("#api_key", "mlk_not_a_key")
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
        page.fill("#api_key", dashboard["key"])
        page.click("button[type=submit]")

        expect(page).to_have_url(re.compile(r"/dashboard$"))
        expect(page.get_by_test_id("as-of")).to_have_text(TEST_END.isoformat())
        expect(page.get_by_test_id("customers")).to_have_text(str(batch["customers"]))
        for band in ("high", "medium", "low"):
            expect(page.get_by_test_id(f"band-{band}")).to_have_text(str(batch["band_counts"][band]))
        expect(page.get_by_test_id("model")).to_contain_text(f"version {batch['model_version']}")
        expect(page.get_by_test_id("holdout-auc")).to_have_text(f"{batch['model_metrics']['holdout_auc']:.3f}")
        expect(page.get_by_test_id("drift-status")).to_have_text("alarm (feature_drift)")
        expect(page.get_by_test_id("realized-auc")).to_have_text("0.800")
        targets = batch["targets"]
        expect(page.get_by_test_id("revenue-horizon")).to_have_text(f"{targets['expected_revenue_total']:,.2f} EUR")
        expect(page.get_by_test_id("revenue-365d")).to_have_text(f"{targets['clv_365d_total']:,.2f} EUR")
        for tier in ("high", "medium", "low"):
            expect(page.get_by_test_id(f"tier-{tier}")).to_have_text(str(targets["tier_counts"][tier]))
        expect(page.get_by_test_id("grade-clv_365d")).to_have_text("Good")
        expect(page.get_by_test_id("holdout-repurchase_probability")).to_have_text("0.810")
        expect(page.get_by_test_id("baseline-repurchase_probability")).to_have_text("0.770")
        expect(page.get_by_test_id("grade-expected_next_order_date")).to_have_text("not measured")
        calibration = page.get_by_role("img", name="calibration: Churn probability")
        expect(calibration).to_be_hidden()
        page.get_by_test_id("backtest-churn_probability").locator("summary").click()
        expect(calibration).to_be_visible()
        assert calibration.locator("circle").count() == 20, "ten deciles, the model beside its baseline"
        # realized AUC, scores, churn bands, spend tiers, two trends; lift for 3 targets, calibration for 2
        assert page.locator("svg.chart").count() == 6 + 3 + 2 and page.locator("svg.chart polyline").count() == 3 + 4
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["mlops_session"]["httpOnly"] and cookies["mlops_session"]["sameSite"] == "Strict"
        page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)

        page.click("text=Customers")
        page.select_option("#band", "high")
        page.select_option("#tier", "medium")
        page.fill("#min_clv_365d", "10")
        page.click("text=Filter")
        chosen = {"risk_band": "high", "spend_tier": "medium", "min_clv_365d": 10.0}
        matching = reader.count(SERVED_TENANT, TEST_END, **chosen)
        expect(page.get_by_test_id("total")).to_have_text(str(matching))
        bands = page.locator("table[data-testid=customers] tbody .band").all_inner_texts()
        tiers = page.locator("table[data-testid=customers] tbody .tier").all_inner_texts()
        assert bands and set(bands) == {"high"} and set(tiers) == {"medium"}
        page.screenshot(path=str(shots / "dashboard-customers.png"), full_page=True)
        with page.expect_download() as download:
            page.get_by_test_id("csv").click()
        exported = Path(download.value.path()).read_text().strip().splitlines()
        assert len(exported) == matching + 1 and "clv_365d,churn_probability,expected_next_order_date" in exported[0]

        first = page.locator("table[data-testid=customers] tbody tr a").first
        customer_id = first.inner_text()
        first.click()
        expect(page.get_by_test_id("customer-id")).to_have_text(customer_id)
        row = reader.customer(SERVED_TENANT, customer_id, TEST_END)
        expect(page.get_by_test_id("probability")).to_have_text(f"{row['repurchase_probability']:.3f}")
        expect(page.get_by_test_id("expected-orders")).to_have_text(f"{row['expected_orders']:.2f}")
        expect(page.get_by_test_id("expected-revenue")).to_have_text(f"{row['expected_revenue']:,.2f} EUR")
        expect(page.get_by_test_id("clv")).to_have_text(f"{row['clv_365d']:,.2f} EUR")
        expect(page.get_by_test_id("churn")).to_have_text(f"{row['churn_probability']:.3f} · high")
        expect(page.get_by_test_id("spend-tier")).to_have_text("medium")
        next_order = row["expected_next_order_date"]
        expect(page.get_by_test_id("next-order")).to_have_text(
            next_order.isoformat() if next_order else "beyond a year"
        )
        assert page.locator("[data-testid=reasons] li").count() >= 1
        orders = reader.orders(SERVED_TENANT, customer_id, 50)
        expect(page.get_by_test_id("order-count")).to_have_text(str(orders["count"]))
        expect(page.get_by_test_id("order-total")).to_have_text(f"{orders['net_total']:,.2f} EUR")
        newest = page.locator("table[data-testid=orders] tbody tr").first.locator("td")
        expect(newest.nth(0)).to_have_text(orders["items"][0]["order_date"].isoformat())
        expect(newest.nth(2)).to_have_text(f"{orders['items'][0]['total']:,.2f}")
        assert page.locator("table[data-testid=orders] tbody tr").count() == len(orders["items"]) > 0
        assert page.locator("svg.chart circle").count() == len(reader.customer_history(SERVED_TENANT, customer_id))
        page.screenshot(path=str(shots / "dashboard-customer.png"), full_page=True)

        page.click("text=Sign out")
        page.goto(f"{base}/dashboard")
        expect(page).to_have_url(re.compile(r"/login$"))
        browser.close()
