"""The batching helper: one check-result shape, one-or-many values, and the private Dagster APIs it relies on.

When a Dagster upgrade moves a private attribute batching.py uses, these tests fail naming the version and
the attribute, before a run of many tenants fails somewhere less obvious.
"""

import importlib
import inspect
from datetime import date, timedelta

import dagster as dg
import pytest

from mlops_assets.partitions import TENANTS, TenantDayPartitions


def _moved(attribute: str, detail: str = "") -> str:
    return (
        f"Dagster {dg.__version__}: the private `{attribute}` that mlops_assets/batching.py relies on has moved or "
        f"changed{f' ({detail})' if detail else ''}; fix: adapt batching.py to this version or pin the Dagster "
        "version in pyproject.toml"
    )


def test_private_run_tags_are_where_batching_imports_them():
    try:
        tags = importlib.import_module("dagster._core.storage.tags")
    except ImportError as exc:
        pytest.fail(_moved("dagster._core.storage.tags", str(exc)))
    expected = {
        "ASSET_PARTITION_RANGE_START_TAG": "dagster/asset_partition_range_start",
        "ASSET_PARTITION_RANGE_END_TAG": "dagster/asset_partition_range_end",
        "RUN_KEY_TAG": "dagster/run_key",
    }
    for name, value in expected.items():
        assert getattr(tags, name, None) == value, _moved(f"dagster._core.storage.tags.{name}", f"expected {value!r}")


def test_private_step_context_attributes_exist():
    from dagster._core.execution.context.metadata_logging import OutputMetadataAccumulator
    from dagster._core.execution.context.system import StepExecutionContext

    assert "_step_execution_context" in dg.OpExecutionContext.__slots__, _moved(
        "OpExecutionContext._step_execution_context"
    )
    assert isinstance(inspect.getattr_static(dg.OutputContext, "step_context", None), property), _moved(
        "OutputContext.step_context"
    )
    assert "self._metadata_accumulator" in inspect.getsource(StepExecutionContext.__init__), _moved(
        "StepExecutionContext._metadata_accumulator"
    )
    parameters = set(inspect.signature(OutputMetadataAccumulator.with_additional_asset_metadata).parameters)
    assert {"asset_key", "partition_key", "metadata"} <= parameters, _moved(
        "OutputMetadataAccumulator.with_additional_asset_metadata", f"parameters {sorted(parameters)}"
    )


class _RecordingIOManager(dg.IOManager):
    """Stores nothing; adds each partition's metadata the way the lake and warehouse IO managers do."""

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from mlops_assets.batching import add_partition_metadata, by_partition

        for key, value in by_partition(context.asset_partition_keys, obj, "sample").items():
            add_partition_metadata(context, key, {"stored": value})

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError


def test_a_run_over_many_partitions_reports_each_partition_and_one_result_per_check():
    from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, Batch, Check

    partitions = TenantDayPartitions.for_window(7, today=date(2026, 1, 20))
    checks = [Check("positive", "Every value is positive", blocking=True), Check("small", "Values stay below 3")]

    @dg.asset(**partitions.asset("sample", io_manager_key="io_manager"), check_specs=[c.spec("sample") for c in checks])
    def sample(context: dg.AssetExecutionContext):
        batch = Batch(context, checks)

        def step(part):
            value = (part.day - partitions.first_day).days + (1 if part.tenant_id == "acme" else -10)
            part.check("positive", None if value > 0 else f"{value} is not positive")
            part.check("small", None if value < 3 else f"{value} is not small")
            part.add_metadata({"tenant": part.tenant_id, "value": value})
            part.log(f"{part.tenant_id} {part.day}: {value}")
            return value

        batch.run(step)
        yield from batch.results()

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["acme", "globex"])
    first, last = partitions.first_day + timedelta(days=1), partitions.first_day + timedelta(days=2)
    try:
        result = dg.materialize(
            [sample],
            instance=instance,
            resources={"io_manager": _RecordingIOManager()},
            tags={ASSET_PARTITION_RANGE_START_TAG: f"{first}|acme", ASSET_PARTITION_RANGE_END_TAG: f"{last}|globex"},
            raise_on_error=False,
        )
    except AttributeError as exc:
        pytest.fail(_moved("step context metadata accumulator", str(exc)))
    materialized = {
        event.event_specific_data.materialization.partition: {
            k: v.value for k, v in event.event_specific_data.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }
    assert materialized == {
        f"{first}|acme": {"tenant": "acme", "value": 2, "stored": 2},
        f"{first}|globex": {"tenant": "globex", "value": -9, "stored": -9},
        f"{last}|acme": {"tenant": "acme", "value": 3, "stored": 3},
        f"{last}|globex": {"tenant": "globex", "value": -8, "stored": -8},
    }, _moved("step context metadata accumulator", "per-partition metadata did not arrive")
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    positive, small = evaluations["positive"], evaluations["small"]
    assert not positive.passed and positive.blocking and not small.passed
    assert {k: v.value for k, v in positive.metadata.items()} == {
        "partitions_checked": 4,
        "partitions_failed": 2,
        "failed_partitions": [f"{first}|globex", f"{last}|globex"],
        "failures": [f"{first}|globex: -9 is not positive", f"{last}|globex: -8 is not positive"],
    }
    assert positive.description == f"2 of 4 partitions failed; first: {first}|globex: -9 is not positive"
    assert small.severity == dg.AssetCheckSeverity.WARN


def test_check_result_of_one_partition_names_it_and_keeps_its_evidence():
    from mlops_assets.batching import Check, Finding, check_result

    check = Check("currency", "Orders are in the tenant's currency", blocking=True)
    failed = check_result(check, [Finding("2026-01-10|acme", "3 orders in EUR", {"sample_ids": ["1", "2"]})])
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.description == "2026-01-10|acme: 3 orders in EUR"
    assert failed.metadata["sample_ids"].value == ["1", "2"]
    assert failed.metadata["failed_partitions"].value == ["2026-01-10|acme"]
    passed = check_result(check, [Finding("2026-01-10|acme", None), Finding("2026-01-10|globex", None)])
    assert passed.passed and passed.description == check.description
    assert {k: v.value for k, v in passed.metadata.items()} == {
        "partitions_checked": 2,
        "partitions_failed": 0,
        "failed_partitions": [],
        "failures": [],
    }


def test_one_partition_travels_bare_and_many_as_a_dict():
    from mlops_assets.batching import by_partition, one_or_many

    assert by_partition(["k1"], "frame", "asset") == {"k1": "frame"}
    assert one_or_many(["k1"], {"k1": "frame"}) == "frame"
    assert by_partition(["k1", "k2"], {"k2": 2, "k1": 1}, "asset") == {"k1": 1, "k2": 2}
    assert one_or_many(["k1", "k2"], {"k1": 1, "k2": 2}) == {"k1": 1, "k2": 2}
    with pytest.raises(dg.DagsterInvariantViolationError, match="asset: a run over 2 partitions"):
        by_partition(["k1", "k2"], {"k1": 1}, "asset")


def test_the_window_comes_from_the_definitions_not_from_import_time(monkeypatch):
    from mlops_assets.definitions import build_defs
    from mlops_assets.settings import Settings

    for days in (30, 7):
        monkeypatch.setenv("MLOPS_PARTITION_WINDOW_DAYS", str(days))
        window = TenantDayPartitions.of(build_defs(Settings.from_env()))
        assert len(window.daily.get_partition_keys()) == days
        assert window.last_day - window.first_day == timedelta(days=days - 1)
