"""The model regression gate catches a planted regression and lets the same code through."""

from datetime import date

import pytest
from typer.testing import CliRunner

from mlops_assets.core.ml import models
from mlops_assets.core.ml.model_gate import GateCase, changes, measure, read_record, regressions, write_record
from mlops_assets.sim.shops import ShopSpec, SyntheticShop

END = date(2026, 10, 31)


def test_a_drop_beyond_its_tolerance_fails_and_one_within_it_passes():
    committed = {"shop": {"repurchase_probability.auc": 0.80, "churn_probability.brier": 0.20,
                          "clv_365d.normalized_gini": 0.60}}  # fmt: skip
    within = {"shop": {"repurchase_probability.auc": 0.795, "churn_probability.brier": 0.202,
                       "clv_365d.normalized_gini": 0.61}}  # fmt: skip
    assert regressions(committed, within) == []
    worse = {"shop": {"repurchase_probability.auc": 0.78, "churn_probability.brier": 0.21}}
    found = regressions(committed, worse)
    assert [line.split(":")[0] for line in found] == [
        "shop repurchase_probability.auc", "shop churn_probability.brier", "shop clv_365d.normalized_gini"
    ]  # fmt: skip
    assert "now not measured" in found[2]
    assert changes(committed, within) == [
        "shop churn_probability.brier: 0.2000 -> 0.2020",
        "shop clv_365d.normalized_gini: 0.6000 -> 0.6100",
        "shop repurchase_probability.auc: 0.8000 -> 0.7950",
    ]


def test_a_planted_modelling_regression_is_caught_on_a_real_shop(monkeypatch, tmp_path):
    shop = SyntheticShop(ShopSpec("gate-test", customers=800, seed=11, end=END, history_days=730))
    case = GateCase("gate-test", shop.raw_orders(), END, 30)
    record = tmp_path / "model-quality.json"
    write_record(record, {case.name: measure(case)}, "reference")
    committed = read_record(record)["cases"]
    assert committed["gate-test"]["repurchase_probability.auc"] > 0.7
    assert regressions(committed, {case.name: measure(case)}) == [], "the same code passes its own reference"
    # The regression a careless tuning change would make: trees too coarse to split the customers.
    monkeypatch.setitem(models.DEFAULT_PARAMS, "min_data_in_leaf", 100_000)
    found = regressions(committed, {case.name: measure(case)})
    assert any(line.startswith("gate-test repurchase_probability.auc") for line in found), found


def test_the_reference_moves_only_with_a_reason(tmp_path):
    from mlops_assets.cli import app

    result = CliRunner().invoke(app, ["model-check", "--update", "--record", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "--update needs --reason" in result.output
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("metric", ["auc", "normalized_gini", "brier", "ordered_by_date_error"])
def test_every_gated_metric_is_in_the_committed_record(metric):
    from mlops_assets_tests.helpers import REPO

    record = read_record(REPO / ".ci/model-quality.json")
    assert record["reason"] and any(key.endswith(f".{metric}") for case in record["cases"].values() for key in case)
