"""Drift statistics, realized metrics, thresholds, retrain rules and webhook delivery, without Dagster."""

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mlops_assets.core.ml.features import feature_snapshot
from mlops_assets.core.monitoring.drift import PREDICTION, drift_report_html, measure_drift
from mlops_assets.core.monitoring.events import OperatorEvent, deliver
from mlops_assets.core.monitoring.performance import performance_problem, realized_metrics, regressed, retrain_refusal
from mlops_assets.core.monitoring.thresholds import MonitoringSettingError, MonitoringThresholds
from mlops_assets.sim.scenarios import LevelShift
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)


def snapshot(shop: SyntheticShop, day: date):
    frame = feature_snapshot(shop.raw_orders(), day, "UTC", horizon_days=30)
    frame[PREDICTION] = frame["bgnbd_probability"].fillna(0.0)
    return frame


def test_no_false_alarm_over_60_days_with_weekly_references():
    """A shop without drift, checked every third day against the snapshot of the last weekly retrain's cutoff
    (every day and several seeds: benchmarks/drift_detection.py)."""
    shop = SyntheticShop(ShopSpec("calm", customers=500, seed=11, end=END, history_days=500))
    thresholds, alarms = MonitoringThresholds(), []
    days = [END - timedelta(days=59 - k) for k in range(60)]
    reference = None
    for day in days:
        if reference is None or day.isoweekday() == 6:
            reference = snapshot(shop, day)
            continue
        if day.toordinal() % 3:
            continue
        problems = measure_drift(reference, snapshot(shop, day), thresholds).problems(thresholds)
        alarms += [f"{day}: {p}" for p in problems.values()]
    assert alarms == []


def test_a_drift_event_is_detected_within_two_days():
    drift_day = END - timedelta(days=10)
    shop = SyntheticShop(
        ShopSpec(
            "shift", customers=2000, seed=3, end=END, history_days=500,
            scenario=LevelShift(drift_day, rate_factor=0.4, value_factor=10.0),
        )
    )  # fmt: skip
    thresholds = MonitoringThresholds()
    reference = snapshot(shop, drift_day - timedelta(days=3))
    before = measure_drift(reference, snapshot(shop, drift_day - timedelta(days=1)), thresholds)
    after = measure_drift(reference, snapshot(shop, drift_day + timedelta(days=2)), thresholds)
    assert before.problems(thresholds) == {}
    assert "feature_drift" in after.problems(thresholds)
    assert {"last_order_value", "spend_7d"} <= set(after.drifted_features)
    assert after.frame().set_index("column").loc["spend_7d", "drifted"]


def test_the_html_report_is_evidentlys_on_the_same_samples_and_tests():
    """The alarm's scores come from Evidently's stat tests called directly; its full report agrees with them."""
    from evidently import Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    drift = LevelShift(END - timedelta(days=5), rate_factor=0.4, value_factor=3.0)
    shop = SyntheticShop(ShopSpec("shift", customers=800, seed=3, end=END, history_days=400, scenario=drift))
    reference, current = snapshot(shop, END - timedelta(days=8)), snapshot(shop, END)
    reference["bgnbd_probability"] = np.nan
    thresholds = MonitoringThresholds(sample_rows=600)
    result = measure_drift(reference, current, thresholds)
    assert result.unmeasured == ["bgnbd_probability"], "an empty feature is named, not compared"
    assert "bgnbd_probability" not in result.feature_scores and len(result.feature_scores) == 24
    html = drift_report_html(reference, current, thresholds)
    assert "<html" in html[:2000].lower() and 'src="http' not in html, "the report opens offline"
    sampled = [frame.sample(n=600, random_state=0) for frame in (reference, current)]
    measured = list(result.feature_scores)
    preset = DataDriftPreset(columns=measured, num_method="wasserstein", num_threshold=thresholds.column_drift)
    report = Report([preset, ValueDrift(column=PREDICTION, method="psi")])
    evidently = {
        m["config"]["column"]: m["value"]
        for m in report.run(sampled[1], sampled[0]).dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    assert evidently == pytest.approx({**result.feature_scores, PREDICTION: result.prediction_psi})


def test_realized_metrics_and_the_rules_on_them():
    outcomes = np.array([True, False] * 50)
    perfect = realized_metrics(outcomes.astype(float) * 0.8 + 0.1, outcomes)
    assert perfect["auc"] == 1.0 and perfect["top_decile_precision"] == 1.0 and perfect["positives"] == 50
    assert np.isnan(realized_metrics(np.full(10, 0.5), np.zeros(10, bool))["auc"]), "one class: no AUC"
    thresholds = MonitoringThresholds()
    assert performance_problem(0.55, 0.8, thresholds).startswith("realized AUC 0.550 is below the floor")
    assert "below the model's holdout AUC" in performance_problem(0.65, 0.8, thresholds)
    assert performance_problem(0.75, 0.8, thresholds) is None
    assert regressed(0.70, 0.74, thresholds) and not regressed(0.72, 0.74, thresholds)
    assert not regressed(0.70, float("nan"), thresholds)


def test_cooldown_and_in_flight_rules():
    day = date(2026, 11, 10)
    assert retrain_refusal(day, None, None, 7, False) is None
    assert retrain_refusal(day, day - timedelta(days=2), None, 7, False) is None, "a weekly retrain does not delay it"
    assert "already trained" in retrain_refusal(day, day, None, 7, False)
    assert retrain_refusal(day, day - timedelta(days=7), day - timedelta(days=7), 7, False) is None
    assert "cooldown" in retrain_refusal(day, day - timedelta(days=6), day - timedelta(days=6), 7, False)
    assert "already queued" in retrain_refusal(day, None, None, 7, True)


def test_tenant_overrides_are_validated_with_the_fix():
    thresholds = MonitoringThresholds().overridden("acme", {"cooldown_days": "3", "auc_floor": 0.55})
    assert thresholds.cooldown_days == 3 and thresholds.auc_floor == 0.55
    with pytest.raises(MonitoringSettingError, match="tenant acme: unknown monitoring setting 'cooldown'.*fix"):
        MonitoringThresholds().overridden("acme", {"cooldown": 3})
    with pytest.raises(MonitoringSettingError, match="tenant acme: monitoring setting auc_floor='high'"):
        MonitoringThresholds().overridden("acme", {"auc_floor": "high"})


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received, _Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_port}/hooks/secret-token-123"
    server.shutdown()
    server.server_close()


def test_webhook_delivery_and_failures_that_never_leak_the_url(receiver):
    server, url = receiver
    event = OperatorEvent("drift_detected", "acme", "2026-11-10", "3 of 25 features drifted", {"report": "x"})
    assert deliver(event, url) == "sent"
    assert _Receiver.received[0]["kind"] == "drift_detected" and _Receiver.received[0]["tenant_id"] == "acme"
    assert deliver(event, None) == "not configured"
    _Receiver.status = 503
    failed = deliver(event, url)
    assert failed == "webhook delivery failed: HTTP 503" and len(_Receiver.received) == 4, "retried, then reported"
    server.shutdown()
    server.server_close()
    unreachable = deliver(event, url, timeout=0.5)
    assert unreachable.startswith("webhook delivery failed") and "secret-token" not in unreachable
    with pytest.raises(ValueError, match="event kind"):
        OperatorEvent("something", "acme", "2026-11-10", "")
