"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mlops_assets.core.lake import files as lake

REPO = Path(__file__).resolve().parents[1]
TEST_END = date(2026, 10, 31)
SERVED_TENANT = "acme"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


# Record rules quarantine rows and warn; only data unusable as a whole blocks (issue 20).
ORDER_GATES = {
    "schema_valid": True, "usable_partition": True, "unique_ids": False, "non_negative_amounts": False,
    "currency_matches_tenant": False, "timestamps_in_day": False, "no_extreme_outliers": False,
    "quarantine_share": False,
}  # fmt: skip
CUSTOMER_GATES = {
    "schema_valid": True, "usable_partition": True, "unique_ids": False, "timestamps_in_day": False,
    "quarantine_share": False,
}  # fmt: skip
STAGE_CHECKS = {
    "raw_orders": {**ORDER_GATES, "row_count_in_range": False},
    "raw_customers": CUSTOMER_GATES,
    "raw_orders_history": ORDER_GATES,
    "raw_customers_history": CUSTOMER_GATES,
    "customer_features": {"no_leakage": True, "no_unexpected_nan": True, "customer_count_matches_history": True},
    "training_set": {"labels_matured": True, "splits_in_time_order": True, "enough_history": False},
    "candidate_model": {"holdout_metrics_finite": True, "beats_baseline": False},
    "production_model": {"promotion_gates": False, "serving_checks": False},
    "predictions": {
        "row_count_matches_snapshot": True,
        "probabilities_in_range": True,
        "no_nan": True,
        "amounts_in_range": True,
        "model_recorded": True,
    },
    "drift_report": {"feature_drift": False, "prediction_drift": False},
    "realized_performance": {"performance_floor": False, "target_floor": False, "beats_predecessor": False},
}
# Every asset also carries the run's verdict (non-blocking): `isolation.run_verdict`.
EXPECTED_CHECKS = {asset: {**checks, "tenant_days_succeeded": False} for asset, checks in STAGE_CHECKS.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def write_history(root, tenant_id, shop):
    """Store a shop's orders as the tenant's history file, as the history asset does."""
    import pandas as pd

    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.sources.ingest import split_by_day
    from mlops_assets.core.sources.records import ORDERS_SCHEMA

    days = split_by_day(shop.raw_orders(), shop.spec.timezone)
    frame = pd.concat([days[day] for day in sorted(days)], ignore_index=True)
    lake.write_frame(lake.history_path(root, "raw_orders_history", tenant_id, max(days)), frame, ORDERS_SCHEMA)


def customer_orders(warehouse_url, tenant_id) -> dict[str, tuple[str, float, float]]:
    """The warehouse's copy of a tenant's orders: order id -> (customer id, total, refunded)."""
    import sqlalchemy as sa

    from mlops_assets.core.warehouse.engine import customer_orders_table as table
    from mlops_assets.core.warehouse.engine import engine_for

    query = sa.select(table.c.order_id, table.c.customer_id, table.c.total, table.c.refunded).where(
        table.c.tenant_id == tenant_id
    )
    with engine_for(warehouse_url).connect() as conn:
        return {order_id: (customer, total, refunded) for order_id, customer, total, refunded in conn.execute(query)}


def lake_customer_orders(root, tenant_id) -> dict[str, tuple[str, float, float]]:
    """What the lake's order files hold of the same: the newest version of each identified, non-test order."""
    from mlops_assets.core.lake.history import history_files, read_orders

    orders = read_orders(history_files(root, tenant_id))
    orders = orders.loc[orders["customer_id"].notna() & ~orders["is_test"].fillna(False).astype(bool)]
    latest = orders.sort_values(["order_id", "updated_at"], kind="stable").drop_duplicates("order_id", keep="last")
    return {
        row.order_id: (row.customer_id, float(row.total_price), float(row.total_refunded or 0.0))
        for row in latest.itertuples()
    }


def lake_digests(lake_config):
    root = lake.lake_root(lake_config["url"], lake_config["s3_endpoint_url"])
    return {
        str(path).split(lake_config["url"].rstrip("/"))[-1]: lake.file_digest(path) for path in root.rglob("*.parquet")
    }


def scored(served, day=TEST_END, run_id="run-1"):
    """The served tenant's predictions of `day`, as the predictions asset computes them."""
    from mlops_assets.core.ml.scoring import score_snapshot

    return score_snapshot(served["model"], served["snapshot"], day, "sha256:features", run_id, served["created"])


class WebhookReceiver:
    """An operator webhook on loopback that keeps every event posted to it, in order."""

    def __init__(self):
        self.events: list[dict] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def mlops(*args):
    """The `mlops` command line, in this process, as a user would call it."""
    from typer.testing import CliRunner

    from mlops_assets.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def with_targets(frame, horizon_days: int = 30, seed: int = 3):
    """A scored frame with known issue 16 targets, so storage and serving tests can assert exact values:
    amounts that follow the repurchase probability, a churn probability and its band, a next order date
    (None beyond a year), spend tiers, and a model card with `TARGET_QUALITY`."""
    import numpy as np
    import pandas as pd

    from mlops_assets.core.ml.targets import spend_tiers

    rng = np.random.default_rng(seed)
    out = frame.copy()
    p = out["repurchase_probability"].to_numpy(float)
    orders = -np.log1p(-np.minimum(p, 0.99)) * 1.2
    order_value = rng.gamma(4.0, 12.0, len(out))
    churn = np.clip((1 - p) ** 2 + rng.normal(0, 0.03, len(out)), 0, 1)
    days_to_next = np.ceil(horizon_days * np.log(2) / np.maximum(orders, 1e-6))
    out["expected_orders"] = orders
    out["expected_revenue"] = orders * order_value
    out["clv_365d"] = orders * order_value * (365 / horizon_days) * (1 - 0.5 * churn)
    out["churn_probability"] = churn
    out["risk_band"] = np.where(churn >= 0.7, "high", np.where(churn >= 0.4, "medium", "low"))
    out["expected_next_order_date"] = [
        None if days > 365 else day + pd.Timedelta(days=int(days)).to_pytimedelta()
        for day, days in zip(out["as_of_date"], days_to_next, strict=True)
    ]
    out["spend_tier"] = spend_tiers(out["clv_365d"])
    out.attrs = {"model_card": {**frame.attrs["model_card"], "target_quality": TARGET_QUALITY}}
    return out


def predating_targets(frame):
    """A scored frame as a model version registered before issue 16 left it: no targets, no target quality."""
    from mlops_assets.core.warehouse.engine import TARGET_COLUMNS

    out = frame.drop(columns=[column for column in TARGET_COLUMNS if column in frame])
    card = {key: value for key, value in frame.attrs["model_card"].items() if key != "target_quality"}
    out.attrs = {"model_card": card}
    return out


def _deciles(slope: float, base: float) -> list[dict]:
    return [
        {
            "decile": d,
            "mean_predicted": round(base * (0.2 + 0.16 * d), 4),
            "observed": round(base * (1 + slope * (d - 5.5)), 4),
        }
        for d in range(1, 11)
    ]


TARGET_QUALITY = {
    "repurchase_probability": {
        "served": "lightgbm", "flag": "", "metric": "auc", "holdout": 0.81, "baseline": 0.77, "grade": "Excellent",
        "extra": {"brier": 0.11, "baseline_brier": 0.12}, "deciles": _deciles(0.17, 0.3),
        "baseline_deciles": _deciles(0.12, 0.3),
    },
    "churn_probability": {
        "served": "baseline", "flag": "learned model did not beat BG/NBD on the holdout", "metric": "auc",
        "holdout": 0.66, "baseline": 0.66, "grade": "Fair", "extra": {"brier": 0.2},
        "deciles": _deciles(0.08, 0.5), "baseline_deciles": _deciles(0.08, 0.5),
    },
    "clv_365d": {
        "served": "lightgbm", "flag": "", "metric": "normalized_gini", "holdout": 0.52, "baseline": 0.47,
        "grade": "Good", "extra": {"mae": 61.2, "bias": -0.04, "baseline_mae": 66.0},
        "deciles": _deciles(0.18, 120.0), "baseline_deciles": _deciles(0.15, 120.0),
    },
}  # fmt: skip
