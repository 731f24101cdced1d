"""The predictions tables on SQLite and PostgreSQL: partition writes, reruns, crashes, tenant scoping, pages."""

import copy
import os
import signal
import subprocess
import sys
from datetime import timedelta

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa

from mlops_assets.core.ml.scoring import batch_summary
from mlops_assets.core.warehouse.engine import TARGET_COLUMNS
from mlops_assets.core.warehouse.prediction_store import PredictionReader, read_partition, write_partition
from mlops_assets_tests.helpers import SERVED_TENANT as TENANT
from mlops_assets_tests.helpers import TARGET_QUALITY, TEST_END, predating_targets, scored, wait_until, with_targets


def write(url, frame, run_id="run-1"):
    tenant_id, day = frame["tenant_id"].iloc[0], frame["as_of_date"].iloc[0]
    return write_partition(url, tenant_id, day, frame, batch_summary(frame), run_id)


def count(url, tenant_id=TENANT, day=TEST_END):
    return len(read_partition(url, tenant_id, day))


def test_rerun_replaces_the_partition(served, warehouse_url):
    first = scored(served)
    assert write(warehouse_url, first) == len(first)
    write(warehouse_url, scored(served, TEST_END - timedelta(days=1)))
    second = scored(served, run_id="run-2")
    write(warehouse_url, second, "run-2")
    stored = read_partition(warehouse_url, TENANT, TEST_END)
    assert len(stored) == len(first) and set(stored["run_id"]) == {"run-2"}
    assert count(warehouse_url, day=TEST_END - timedelta(days=1)) == len(first), "other days untouched"
    batch = PredictionReader(warehouse_url).batch(TENANT)
    assert batch["as_of_date"] == TEST_END and batch["customers"] == len(first) and batch["run_id"] == "run-2"
    assert sum(batch["band_counts"].values()) == len(first) and sum(batch["histogram"]) == len(first)
    assert batch["model_metrics"]["holdout_auc"] > 0.7 and batch["model_kind"] == "lightgbm"
    roundtrip = stored.set_index("customer_id")["repurchase_probability"]
    original = second.set_index("customer_id")["repurchase_probability"]
    assert np.array_equal(roundtrip.loc[original.index].to_numpy(), original.to_numpy()), "float8 round trip exact"


def test_targets_round_trip_with_their_nulls(served, warehouse_url):
    """Floats exact, dates as dates, 'beyond a year' and unpredicted rows as NULL, the day's summary beside."""
    frame = with_targets(scored(served))
    unpredicted = frame.index[:4]
    frame.loc[unpredicted, ["expected_orders", "clv_365d"]] = np.nan
    frame.attrs["model_card"] = copy.deepcopy(frame.attrs["model_card"])
    frame.attrs["model_card"]["target_quality"]["clv_365d"]["extra"]["bias"] = float("nan")
    write(warehouse_url, frame)
    original = frame.set_index("customer_id")
    stored = read_partition(warehouse_url, TENANT, TEST_END).set_index("customer_id").loc[original.index]
    for name in ("expected_orders", "expected_revenue", "clv_365d", "churn_probability"):
        assert np.array_equal(stored[name].to_numpy(float), original[name].to_numpy(float), equal_nan=True), name
    assert stored["spend_tier"].tolist() == original["spend_tier"].astype(str).tolist()
    assert stored["expected_next_order_date"].tolist() == original["expected_next_order_date"].tolist()
    beyond = original["expected_next_order_date"].isna()
    assert 0 < beyond.sum() < len(original), "some customers beyond a year, some with a date"
    reader = PredictionReader(warehouse_url)
    row = reader.customer(TENANT, original.index[beyond.argmax()], TEST_END)
    assert row["expected_next_order_date"] is None and row["spend_tier"] in {"high", "medium", "low"}
    dated = reader.customer(TENANT, original.index[(~beyond).argmax()], TEST_END)
    assert dated["expected_next_order_date"] == original.loc[dated["customer_id"], "expected_next_order_date"]
    assert reader.customer(TENANT, original.index[0], TEST_END)["clv_365d"] is None
    targets = reader.batch(TENANT)["targets"]
    assert targets["clv_365d_total"] == pytest.approx(np.nansum(frame["clv_365d"]))
    assert targets["expected_revenue_total"] == pytest.approx(frame["expected_revenue"].sum())
    assert targets["tier_counts"] == frame["spend_tier"].value_counts().to_dict()
    assert targets["quality"]["clv_365d"]["extra"]["bias"] is None, "a NaN metric is stored as null"
    assert targets["quality"]["churn_probability"] == TARGET_QUALITY["churn_probability"]
    batch = reader.batch(TENANT)
    assert reader.matching(batch, spend_tier="high") == reader.count(TENANT, TEST_END, spend_tier="high") > 0
    both = {"spend_tier": "high", "risk_band": "low"}
    assert reader.matching(batch, **both) == int(((frame.spend_tier == "high") & (frame.risk_band == "low")).sum())
    with pytest.raises(TypeError, match="unknown predictions filter 'tier'"):
        reader.page(TENANT, TEST_END, tier="high")


def test_a_frame_without_targets_writes_nulls(served, warehouse_url):
    frame = predating_targets(scored(served))
    write(warehouse_url, frame)
    stored = read_partition(warehouse_url, TENANT, TEST_END)
    assert len(stored) == len(frame) and stored[TARGET_COLUMNS].isna().all().all()
    targets = PredictionReader(warehouse_url).batch(TENANT)["targets"]
    assert targets == {"expected_revenue_total": None, "clv_365d_total": None, "tier_counts": None, "quality": {}}


@pytest.mark.parametrize("column, bad", [("churn_probability", 1.5), ("spend_tier", "gold")])
def test_the_table_refuses_impossible_targets(served, warehouse_url, column, bad):
    frame = with_targets(scored(served))
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[7], column] = bad
    with pytest.raises((sa.exc.IntegrityError, psycopg.IntegrityError)):
        write(warehouse_url, frame)


def test_a_failed_write_keeps_the_previous_rows(served, warehouse_url):
    write(warehouse_url, scored(served))
    broken = scored(served, run_id="run-2")
    broken.loc[broken.index[len(broken) // 2], "repurchase_probability"] = 7.0  # violates the table's check
    with pytest.raises((sa.exc.IntegrityError, psycopg.IntegrityError)):
        write(warehouse_url, broken, "run-2")
    stored = read_partition(warehouse_url, TENANT, TEST_END)
    assert len(stored) == len(broken) and set(stored["run_id"]) == {"run-1"}


def test_a_partition_holds_only_its_own_tenant(served, warehouse_url):
    frame = scored(served)
    frame.loc[frame.index[0], "tenant_id"] = "globex"
    with pytest.raises(ValueError, match="only its own tenant"):
        write_partition(warehouse_url, TENANT, TEST_END, frame, batch_summary(frame), "run-1")


def test_sql_metacharacters_in_ids_are_data(served, warehouse_url):
    frame = scored(served).head(3).copy()
    nasty = ["x'; drop table predictions; --", 'a"b\\c', "ümlaut %_ "]
    frame["customer_id"] = nasty
    write(warehouse_url, frame)
    reader = PredictionReader(warehouse_url)
    for customer_id in nasty:
        assert reader.customer(TENANT, customer_id, TEST_END)["customer_id"] == customer_id
    assert reader.customer(TENANT, "%", TEST_END) is None
    assert count(warehouse_url) == 3


def test_reads_never_cross_tenants(served, warehouse_url):
    mine = scored(served)
    theirs = mine.assign(tenant_id="globex", repurchase_probability=0.5, risk_band="low")
    write(warehouse_url, mine)
    write(warehouse_url, theirs)
    reader = PredictionReader(warehouse_url)
    customer_id = mine["customer_id"].iloc[0]
    assert reader.customer(TENANT, customer_id, TEST_END)["repurchase_probability"] != 0.5
    assert all(
        row["risk_band"] != "low" or row["repurchase_probability"] != 0.5
        for row in reader.page(TENANT, TEST_END, limit=5000)
    )
    assert reader.count("globex", TEST_END) == len(theirs) == reader.count(TENANT, TEST_END)
    assert {h["repurchase_probability"] for h in reader.customer_history("globex", customer_id)} == {0.5}


def test_pages_walk_the_ranking_without_gaps(served, warehouse_url):
    write(warehouse_url, scored(served))
    reader = PredictionReader(warehouse_url)
    seen, after = [], 0
    while page := reader.page(TENANT, TEST_END, risk_band="high", after_rank=after, limit=400):
        seen += [row["customer_id"] for row in page]
        after = page[-1]["rank"]
    assert len(seen) == len(set(seen)) == reader.count(TENANT, TEST_END, risk_band="high")
    batch = reader.batch(TENANT, TEST_END)
    assert reader.matching(batch, risk_band="high") == len(seen), "the summary agrees with the rows"
    ranged = reader.matching(batch, min_probability=0.2, max_probability=0.5)
    assert ranged == reader.count(TENANT, TEST_END, min_probability=0.2, max_probability=0.5) > 0


KILLED_WRITER = """
import sys, pandas as pd
from mlops_assets.core.warehouse.prediction_store import write_partition
from mlops_assets.core.ml.scoring import batch_summary
frame = pd.read_pickle(sys.argv[2])
big = pd.concat([frame.assign(customer_id=frame["customer_id"] + f"-{i}") for i in range(400)], ignore_index=True)
write_partition(sys.argv[1], "acme", frame["as_of_date"].iloc[0], big, batch_summary(big), "run-killed")
"""


def test_a_writer_killed_mid_copy_leaves_the_previous_rows(served, postgres_url):
    """SIGKILL to a process inside its COPY: PostgreSQL rolls the transaction back."""
    first = scored(served)
    write(postgres_url, first)
    pickle = served["tmp"] / "frame.pkl"
    first.to_pickle(pickle)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, postgres_url, str(pickle)], start_new_session=True)
    engine = sa.create_engine(postgres_url)

    def copying() -> bool:
        query = "select count(*) from pg_stat_activity where query like 'COPY predictions%' and pid <> pg_backend_pid()"
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(query)).scalar())

    try:
        assert wait_until(copying, timeout=120, interval=0.02), "the writer reached its COPY"
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert wait_until(lambda: not copying(), timeout=30)
    stored = read_partition(postgres_url, TENANT, TEST_END)
    assert len(stored) == len(first) and set(stored["run_id"]) == {"run-1"}
    assert PredictionReader(postgres_url).batch(TENANT)["run_id"] == "run-1"
    engine.dispose()
