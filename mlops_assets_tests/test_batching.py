"""The batching helper: one check-result shape, one-or-many values, and the private Dagster APIs it relies on.

When a Dagster upgrade moves a private attribute batching.py uses, these tests fail naming the version and
the attribute, before a run of many tenants fails somewhere less obvious.
"""

import importlib
import inspect
import weakref
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


def test_private_output_metadata_key_and_data_version_tags_exist():
    try:
        source_asset = importlib.import_module("dagster._core.definitions.source_asset")
        data_version = importlib.import_module("dagster._core.definitions.data_version")
    except ImportError as exc:
        pytest.fail(_moved("dagster._core.definitions.source_asset / data_version", str(exc)))
    key = getattr(source_asset, "SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION", None)
    assert key == "__source_asset_observation__", _moved("SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION")
    execute_step = importlib.import_module("dagster._core.execution.plan.execute_step")
    assert "SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION in output.metadata" in inspect.getsource(execute_step), _moved(
        "SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION", "no longer suppresses the automatic materializations"
    )
    assert data_version.DATA_VERSION_TAG == "dagster/data_version", _moved("DATA_VERSION_TAG")
    assert isinstance(inspect.getattr_static(dg.InputContext, "step_context", None), property), _moved(
        "InputContext.step_context"
    )


class _RecordingIOManager(dg.IOManager):
    """Stores nothing; materializes each partition handed over the way the lake and warehouse IO managers do."""

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from mlops_assets.batching import write_partitions

        write_partitions(context, obj, lambda key, value: {"stored": value})

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError


def test_a_failed_tenant_day_is_not_materialized_and_fails_the_run_while_healthy_ones_are_materialized():
    from mlops_assets.automation.attempts import RunFailures
    from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, Batch, Check
    from mlops_assets.core.tenants.retries import FailureKind
    from mlops_assets.isolation import run_verdict

    partitions = TenantDayPartitions.for_window(7, today=date(2026, 1, 20))
    checks = [Check("positive", "Every value is positive", blocking=True), Check("small", "Values stay below 3")]

    @dg.asset(**partitions.asset("sample", io_manager_key="io_manager"), check_specs=[c.spec("sample") for c in checks])
    def sample(context: dg.AssetExecutionContext):
        batch = Batch(context, checks)

        def step(part):
            value = (part.day - partitions.first_day).days + (1 if part.tenant_id == "acme" else -10)
            part.check("positive", None if value > 0 else f"{value} is not positive (fix: correct the source)")
            part.check("small", None if value < 3 else f"{value} is not small")
            part.add_metadata({"tenant": part.tenant_id, "value": value})
            part.log(f"{part.tenant_id} {part.day}: {value}")
            return value

        yield from batch.results(step)

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["acme", "globex"])
    first, last = partitions.first_day + timedelta(days=1), partitions.first_day + timedelta(days=2)
    result = dg.materialize(
        [sample, run_verdict([sample.key])],
        instance=instance,
        resources={"io_manager": _RecordingIOManager()},
        tags={ASSET_PARTITION_RANGE_START_TAG: f"{first}|acme", ASSET_PARTITION_RANGE_END_TAG: f"{last}|globex"},
        raise_on_error=False,
    )
    materialized = {
        event.event_specific_data.materialization.partition: {
            k: v.value for k, v in event.event_specific_data.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }
    assert materialized == {
        f"{first}|acme": {"tenant": "acme", "value": 2, "stored": 2},
        f"{last}|acme": {"tenant": "acme", "value": 3, "stored": 3},
    }, _moved("SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION", "failed partitions were materialized")
    keys = [f"{day}|{tenant}" for day in (first, last) for tenant in ("acme", "globex")]
    status = instance.get_status_by_partition(sample.key, keys, partitions.tenant_day)
    assert {key: value.value for key, value in status.items()} == {
        f"{first}|acme": "MATERIALIZED",
        f"{last}|acme": "MATERIALIZED",
        f"{first}|globex": "FAILED",
        f"{last}|globex": "FAILED",
    }
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    positive, small, verdict = evaluations["positive"], evaluations["small"], evaluations["tenant_days_succeeded"]
    assert not positive.passed and positive.severity == dg.AssetCheckSeverity.WARN and not small.passed
    assert {k: v.value for k, v in positive.metadata.items()} == {
        "partitions_checked": 4,
        "partitions_failed": 2,
        "failed_partitions": [f"{first}|globex", f"{last}|globex"],
        "failures": [
            f"{first}|globex: -9 is not positive (fix: correct the source)",
            f"{last}|globex: -8 is not positive (fix: correct the source)",
        ],
    }
    assert not verdict.passed and verdict.metadata["partitions_failed"].value == 2
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    description = failure.step_failure_data.user_failure_data.description
    assert f"2 tenant-days failed ({first}|globex, {last}|globex)" in description
    assert f"tenant globex {first}|globex: blocking gate failed: positive: -9 is not positive" in description
    record = instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))[0]
    assert RunFailures(instance).of(record, "globex").kind is FailureKind.TRANSIENT


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


def test_one_partition_travels_bare_many_as_a_dict_without_those_failed_upstream():
    from mlops_assets.batching import by_partition

    assert by_partition(["k1"], "frame", "asset") == {"k1": "frame"}
    assert by_partition(["k1", "k2"], {"k2": 2, "k1": 1}, "asset") == {"k1": 1, "k2": 2}
    assert by_partition(["k1", "k2"], {"k1": 1}, "asset") == {"k1": 1}
    with pytest.raises(dg.DagsterInvariantViolationError, match="asset: a run over 2 partitions"):
        by_partition(["k1", "k2"], {"k3": 1}, "asset")


def test_the_window_comes_from_the_definitions_not_from_import_time(monkeypatch):
    from mlops_assets.definitions import build_defs
    from mlops_assets.settings import Settings

    for days in (30, 7):
        monkeypatch.setenv("MLOPS_PARTITION_WINDOW_DAYS", str(days))
        window = TenantDayPartitions.of(build_defs(Settings.from_env()))
        assert len(window.daily.get_partition_keys()) == days
        assert window.last_day - window.first_day == timedelta(days=days - 1)


class _FailingWriteIOManager(dg.IOManager):
    """Writes every partition but globex's, whose write raises (a full disk, a lost connection)."""

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from mlops_assets.batching import write_partitions

        def write(key, value):
            if key.endswith("|globex"):
                raise OSError("disk full (fix: free space on the lake volume)")
            return {"stored": value}

        write_partitions(context, obj, write)

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError


def test_a_failed_write_fails_only_its_tenant_day():
    from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, Batch
    from mlops_assets.isolation import run_verdict

    partitions = TenantDayPartitions.for_window(7, today=date(2026, 1, 20))

    @dg.asset(**partitions.asset("sample", io_manager_key="io_manager"))
    def sample(context: dg.AssetExecutionContext):
        yield from Batch(context).results(lambda part: part.tenant_id)

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["acme", "globex"])
    day = partitions.last_day
    result = dg.materialize(
        [sample, run_verdict([sample.key])],
        instance=instance,
        resources={"io_manager": _FailingWriteIOManager()},
        tags={ASSET_PARTITION_RANGE_START_TAG: f"{day}|acme", ASSET_PARTITION_RANGE_END_TAG: f"{day}|globex"},
        raise_on_error=False,
    )
    status = instance.get_status_by_partition(sample.key, [f"{day}|acme", f"{day}|globex"], partitions.tenant_day)
    assert {key: value.value for key, value in status.items()} == {
        f"{day}|acme": "MATERIALIZED",
        f"{day}|globex": "FAILED",
    }
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "run_verdict"
    description = failure.step_failure_data.user_failure_data.description
    assert f"sample {day}|globex: tenant globex {day}|globex: writing sample failed: disk full (fix:" in description


class _Payload:
    """A partition's value whose lifetime the test can watch (a weak reference dies with its last holder)."""

    def __init__(self, value: int):
        self.value = value


class _StoreIOManager(dg.IOManager):
    """Values in a dict, read and written through the same isolation helpers as the lake and warehouse; every
    read and write is recorded in `trail`, every value read or written is watched in `watched`."""

    def __init__(self, unreadable: str):
        self.stored: dict[tuple[str, str], int] = {}
        self.trail: list[str] = []
        self.watched: dict[str, list[weakref.ref]] = {}
        self.unreadable = unreadable

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        from mlops_assets.batching import write_partitions

        asset = context.asset_key.to_user_string()

        def write(key: str, payload: _Payload) -> dict:
            self.trail.append(f"write {asset} {key}")
            self.watched.setdefault(key, []).append(weakref.ref(payload))
            self.stored[asset, key] = payload.value
            return {}

        write_partitions(context, obj, write)

    def load_input(self, context: dg.InputContext):
        from mlops_assets.isolation import load_partitions

        asset = context.asset_key.to_user_string()

        def read(key: str) -> _Payload:
            self.trail.append(f"read {asset} {key}")
            if key == self.unreadable:
                raise OSError("connection lost")
            payload = _Payload(self.stored[asset, key])
            self.watched.setdefault(key, []).append(weakref.ref(payload))
            return payload

        return load_partitions(context, read)


def test_a_step_holds_one_partition_at_a_time_and_writes_it_before_the_next():
    """A run's memory is one tenant-day's, not the sum over its partitions: each input is read when the step asks
    for it, each output written as soon as its step returns, and nothing of an earlier partition is still held when
    the next one's step runs (in-process runs capture outputs: the capture must not keep them either)."""
    from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, Batch
    from mlops_assets.isolation import run_verdict

    partitions = TenantDayPartitions.for_window(7, today=date(2026, 1, 20))
    first, last = partitions.last_day - timedelta(days=1), partitions.last_day
    keys = [f"{day}|{tenant}" for tenant in ("acme", "globex", "initech") for day in (first, last)]
    store = _StoreIOManager(unreadable=f"{last}|globex")
    held_earlier: dict[str, list[str]] = {}

    @dg.asset(**partitions.asset("source", io_manager_key="io_manager"))
    def source(context: dg.AssetExecutionContext):
        yield from Batch(context).results(lambda part: _Payload(len(part.tenant_id) + part.day.day))

    @dg.asset(**partitions.asset("doubled", io_manager_key="io_manager"), ins={"source": dg.AssetIn()})
    def doubled(context: dg.AssetExecutionContext, source):
        batch = Batch(context)
        values = batch.inputs(source)

        @batch.per_tenant
        def profile(tenant_id: str) -> _Payload:  # e.g. a tenant's history: loaded once, kept while at the tenant
            store.trail.append(f"profile {tenant_id}")
            loaded = _Payload(len(tenant_id))
            store.watched.setdefault(tenant_id, []).append(weakref.ref(loaded))
            return loaded

        def step(part):
            store.trail.append(f"step doubled {part.key}")
            earlier = keys[: keys.index(part.key)]
            earlier += sorted({key.split("|")[1] for key in earlier} - {part.tenant_id})
            held_earlier[part.key] = [key for key in earlier for ref in store.watched.get(key, []) if ref() is not None]
            profile(part.tenant_id)
            return _Payload(2 * values[part.key].value)

        yield from batch.results(step)

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TENANTS, ["acme", "globex", "initech"])
    result = dg.materialize(
        [source, doubled, run_verdict([source.key, doubled.key])],
        instance=instance,
        resources={"io_manager": store},
        tags={ASSET_PARTITION_RANGE_START_TAG: f"{first}|acme", ASSET_PARTITION_RANGE_END_TAG: f"{last}|initech"},
        raise_on_error=False,
    )

    doubled_trail = [entry for entry in store.trail if not entry.startswith("write source")]
    expected = []
    for key in keys:  # a tenant's days together, each read, computed and written before the next
        expected += [f"step doubled {key}"]
        expected += [f"profile {key.split('|')[1]}"] if key.startswith(str(first)) else []
        expected += [f"read source {key}"]
        expected += [] if key == f"{last}|globex" else [f"write doubled {key}"]
    assert doubled_trail == expected
    assert held_earlier == {key: [] for key in keys}
    assert {key: store.stored["doubled", key] for key in keys if ("doubled", key) in store.stored} == {
        key: 2 * store.stored["source", key] for key in keys if key != f"{last}|globex"
    }
    status = instance.get_status_by_partition(doubled.key, keys, partitions.tenant_day)
    assert {key for key, value in status.items() if value.value == "FAILED"} == {f"{last}|globex"}
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    description = failure.step_failure_data.user_failure_data.description
    assert (
        f"doubled {last}|globex: tenant globex {last}|globex: input `source` could not be read (OSError: connection "
        f"lost) (fix: it is written again when the healing sensor retries the tenant-day, or `mlops backfill globex "
        f"--from {last}`)" in description
    )
