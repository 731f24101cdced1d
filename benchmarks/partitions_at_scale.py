"""Partitions at scale: the UI and the daemon's ticks with N tenants x a window of days (issue 7).

A Dagster instance on PostgreSQL is filled with what N tenants leave after W days of daily cycles:
`tenants` partitions, a tenant registry, onboarding, daily and weekly runs, and for every tenant-day
of the window one planned and one materialization event per daily asset (with the metadata the
assets write, `alarms` on drift_report and realized_performance), stored straight through the
event log storage in batches as a run would store them. Then, against `dagster-webserver` on the
code location: the GraphQL queries the UI sends for the asset graph, an asset's Partitions view
and the runs list (read from the installed UI's source map, so they are the real ones), page loads
in Chromium, and the daemon's schedule and sensor evaluations in this process. The same is done at
--baseline-tenants first, so every figure has its small-fleet twin from the same run.

Dagster's asset status cache (materialized partitions per asset) is keyed by the partitions
definition, which includes every `tenants` key and the window's first day: "cold" is the first
query after the cache was dropped (a new tenant, a new window start), "a day later" the first
query after one more day of runs (an incremental update), "warm" a repeat.

    .venv/bin/python benchmarks/partitions_at_scale.py --tenants 1000 --window-days 90
    .venv/bin/python benchmarks/partitions_at_scale.py --tenants 1000 --window-days 365 --daily-assets raw_orders \\
        --baseline-tenants 0 --also-window 90

PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres); the database --database is created and
dropped. The browser part needs /usr/bin/chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import requests

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SENSOR_TIMEOUT_S = 60  # Dagster's default limit for a sensor or schedule evaluation
WARM_REPEATS = 3
ALARM_EVERY = 50  # one tenant in 50 has a drift alarm on the last days
TENANT_PLACEHOLDER, RUN_PLACEHOLDER = "tenant-placeholder", "run-id-placeholder"
GRAPH_BADGES = "asset graph: node badges, partition counts (AssetGraphLiveQuery)"
GRAPHQL_OPERATIONS = [
    "LocationWorkspaceAssetsQuery",
    "AssetGraphLiveQuery",
    "AssetHealthQuery",
    "PartitionHealthQuery",
    "RunsFeedRootQuery",
]


@dataclass
class Figure:
    what: str
    partitions: int
    cold: float | None
    warm: float | None = None
    note: str = ""


@dataclass
class Fleet:
    """The days seeded and the storage ids the sensor cursors start from."""

    days: list[date]
    cursor_before_day: dict[date, int] = field(default_factory=dict)


def ui_queries() -> dict[str, str]:
    """The documents the installed UI sends, with their fragments, from dagster-webserver's source map."""
    import dagster_webserver
    from graphql import FragmentSpreadNode, parse, print_ast, visit
    from graphql.language import Visitor

    chunks = Path(dagster_webserver.__file__).parent / "webapp" / "build" / "_next" / "static" / "chunks"
    definitions = {}
    for source_map in chunks.glob("*.js.map"):
        bundle = json.loads(source_map.read_text())
        for path, text in zip(bundle["sources"], bundle.get("sourcesContent") or [], strict=False):
            if "ui-core/src" not in path or not text or "gql`" not in text:
                continue
            for body in re.findall(r"gql`(.*?)`", text, re.S):
                document = parse(re.sub(r"\$\{[^}]*\}", "", body))
                definitions.update({node.name.value: node for node in document.definitions})

    class Spreads(Visitor):
        def __init__(self):
            super().__init__()
            self.names: set[str] = set()

        def enter_fragment_spread(self, node: FragmentSpreadNode, *_):
            self.names.add(node.name.value)

    def document(name: str) -> str:
        todo, seen, parts = [name], {name}, []
        while todo:
            node = definitions[todo.pop()]
            parts.append(print_ast(node))
            spreads = Spreads()
            visit(node, spreads)
            todo += sorted(spreads.names - seen)
            seen |= spreads.names
        return "\n\n".join(parts)

    missing = [name for name in GRAPHQL_OPERATIONS if name not in definitions]
    if missing:
        raise SystemExit(f"the installed dagster-webserver has no {missing} in its source map (fix: update the list)")
    return {name: document(name) for name in GRAPHQL_OPERATIONS}


@contextmanager
def postgres_database(name: str) -> Iterator[None]:
    def execute(sql: str) -> None:
        connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
        connection.close()

    execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    execute(f"CREATE DATABASE {name}")
    try:
        yield
    finally:
        execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def write_instance_config(home: Path, database: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_db:\n      username: postgres\n      hostname: 127.0.0.1\n"
        f"      db_name: {database}\n      port: 5432\n      scheme: postgresql+psycopg2\n"
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
    )


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def cold_and_warm(function: Callable[[], object]) -> tuple[float, float, object]:
    cold, result = timed(function)
    warm = statistics.median(timed(function)[0] for _ in range(WARM_REPEATS))
    return cold, warm, result


class Seeder:
    """Writes runs and asset events as runs would, in batches on one connection, through the storages' own SQL."""

    def __init__(self, instance, daily_assets: list[str]):
        import sqlalchemy as sa

        self.instance, self.storage, self.daily_assets = instance, instance.event_log_storage, daily_assets
        self.engine = sa.create_engine(self.storage.postgres_url)
        self.events = self.runs = 0

    @staticmethod
    def run_time(day: date) -> datetime:
        """The run for `day` starts at 11:00 UTC the next day (the daily schedule), never in the future."""
        return min(datetime(day.year, day.month, day.day, 11, tzinfo=UTC) + timedelta(days=1), datetime.now(UTC))

    def add_runs(self, job: str, at: datetime, tags_per_run: list[dict[str, str]]) -> list[str]:
        """Finished runs (SUCCESS, two minutes long) with their tags, as the run storage records them."""
        import dagster as dg
        from dagster._core.storage.dagster_run import DagsterRun
        from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
        from dagster._core.utils import make_new_run_id
        from dagster_shared.serdes import serialize_value

        runs = [
            DagsterRun(job_name=job, run_id=make_new_run_id(), status=dg.DagsterRunStatus.SUCCESS, tags=tags)
            for tags in tags_per_run
        ]
        rows = [
            {
                "run_id": run.run_id,
                "pipeline_name": job,
                "status": run.status.value,
                "run_body": serialize_value(run),
                "create_timestamp": at,
                "update_timestamp": at,
                "start_time": at.timestamp() + 1,
                "end_time": at.timestamp() + 120,
            }
            for run in runs
        ]
        tags = [{"run_id": run.run_id, "key": k, "value": v} for run in runs for k, v in run.tags_for_storage().items()]
        with self.engine.begin() as connection:
            connection.execute(RunsTable.insert(), rows)
            if tags:
                connection.execute(RunTagsTable.insert(), tags)
        self.runs += len(runs)
        return [run.run_id for run in runs]

    def materialize(
        self, asset: str, job: str, at: datetime, day: date | None, items: list[tuple[str, str, bool]]
    ) -> None:
        """A planned and a materialization event per (tenant, run id, alarm), as runs write them.

        Each kind of event is built and serialized once with placeholder tenant and run ids, then specialized by
        string replacement (tenant ids need no JSON escaping): seeding is bound by PostgreSQL, not by serdes.
        """
        from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable

        templates = {alarm: self._templates(asset, job, at, day, alarm) for alarm in {alarm for *_, alarm in items}}

        def specialize(row: dict, tenant_id: str, run_id: str) -> dict:
            return {
                k: v.replace(TENANT_PLACEHOLDER, tenant_id).replace(RUN_PLACEHOLDER, run_id)
                if isinstance(v, str)
                else v
                for k, v in row.items()
            }

        table = SqlEventLogStorageTable
        with self.engine.begin() as connection:
            planned = [specialize(templates[alarm][0], t, run_id) for t, run_id, alarm in items]
            connection.execute(table.insert(), planned)
            materialized = [specialize(templates[alarm][1], t, run_id) for t, run_id, alarm in items]
            ids = [
                row[0]
                for row in connection.execute(
                    table.insert().returning(table.c.id, sort_by_parameter_order=True), materialized
                )
            ]
            tag_rows = [
                {**specialize(tag, t, run_id), "event_id": event_id}
                for event_id, (t, run_id, alarm) in zip(ids, items, strict=True)
                for tag in templates[alarm][2]
            ]
            connection.execute(AssetEventTagsTable.insert(), tag_rows)
            tenant_id, run_id, alarm = items[-1]
            last = self._event(asset, job, at, day, alarm, tenant_id, run_id)[1]
            self.storage._store_asset_event(connection, last, ids[-1])
        self.events += len(planned) + len(materialized)

    def _event(self, asset: str, job: str, at: datetime, day: date | None, alarm: bool, tenant_id: str, run_id: str):
        """(planned, materialization) event log entries of one partition, with its tags and metadata."""
        import dagster as dg
        from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, StepMaterializationData
        from dagster._core.events.log import EventLogEntry
        from dagster._core.storage.tags import get_multidimensional_partition_tag

        key = dg.AssetKey(asset)
        partition = dg.MultiPartitionKey({"tenant": tenant_id, "date": day.isoformat()}) if day else tenant_id
        dims = partition.keys_by_dimension if day else {}
        tags = {
            "dagster/code_version": run_id,
            "dagster/data_version": f"{asset}-{day}-{tenant_id}",
            **{get_multidimensional_partition_tag(name): value for name, value in dims.items()},
        }
        metadata = metadata_for(asset, tenant_id, day or at.date(), alarm)
        materialization = dg.AssetMaterialization(key, partition=str(partition), metadata=metadata, tags=tags)
        return tuple(
            EventLogEntry(
                error_info=None,
                level=logging.DEBUG,
                user_message="",
                run_id=run_id,
                timestamp=at.timestamp() + offset,
                step_key=asset,
                job_name=job,
                dagster_event=DagsterEvent(
                    event_type_value=kind, job_name=job, step_key=asset, event_specific_data=data
                ),
            )
            for kind, data, offset in (
                ("ASSET_MATERIALIZATION_PLANNED", AssetMaterializationPlannedData(key, partition=str(partition)), 0),
                ("ASSET_MATERIALIZATION", StepMaterializationData(materialization), 30),
            )
        )

    def _templates(self, asset: str, job: str, at: datetime, day: date | None, alarm: bool) -> tuple[dict, dict, list]:
        planned, materialized = self._event(asset, job, at, day, alarm, TENANT_PLACEHOLDER, RUN_PLACEHOLDER)
        tags = [
            {
                "asset_key": materialized.dagster_event.asset_key.to_string(),
                "key": k,
                "value": v,
                "event_timestamp": self.storage._event_insert_timestamp(materialized),
            }
            for k, v in self.storage._tags_for_asset_event(materialized).items()
        ]
        return self.storage._event_to_row(planned), self.storage._event_to_row(materialized), tags


def metadata_for(asset: str, tenant_id: str, day: date, alarm: bool) -> dict:
    """Metadata of the size and kind each asset writes (docs/architecture.md, monitoring.py)."""
    import dagster as dg

    digest = f"sha256:{asset}/{tenant_id}/{day}"
    lake = {
        "rows": dg.MetadataValue.int(600),
        "path": dg.MetadataValue.path(f"/lake/{asset}/tenant={tenant_id}/date={day}"),
        "bytes": dg.MetadataValue.int(48_000),
        "digest": dg.MetadataValue.text(digest),
    }
    if asset in ("raw_orders", "raw_customers"):
        counters = (
            "api_requests",
            "api_pages",
            "api_rate_limited",
            "api_retries",
            "api_server_errors",
            "api_connection_errors",
            "api_malformed_bodies",
            "quarantined",
        )
        return {**lake, **{name: dg.MetadataValue.int(1) for name in counters}, "api_paced_seconds": 0.4}
    if asset == "drift_report":
        return {
            "tenant": tenant_id,
            "model_version": "3",
            "reference_day": str(day - timedelta(days=7)),
            "reference_rows": 600,
            "current_rows": 600,
            "drifted_share": 0.05 if not alarm else 0.4,
            "drifted_features": "none" if not alarm else "recency_days, orders_90d",
            "unmeasured_features": "none",
            "prediction_psi": 0.02,
            "alarms": "feature_drift" if alarm else "none",
            "event": "none",
            "feature_scores": dg.MetadataValue.json({f"feature_{k}": 0.01 * k for k in range(20)}),
            "scores": dg.MetadataValue.md(
                "| score | reference | current |\n|---|---|---|\n" + "| 0.1 | 10 | 11 |\n" * 10
            ),
        }
    if asset == "realized_performance":
        return {
            "tenant": tenant_id,
            "status": "evaluated",
            "predicted_on": str(day - timedelta(days=30)),
            "serving_version": "3",
            "customers": 600,
            "positives": 90,
            "realized_auc": 0.74,
            "realized_brier": 0.11,
            "top_decile_precision": 0.41,
            "holdout_auc": 0.75,
            "predecessor_version": "none",
            "predecessor_auc": 0.0,
            "regressed": False,
            "alarms": "none",
            "event": "none",
            "trend": dg.MetadataValue.md("| day | realized AUC |\n|---|---|\n" + "| 2026-01-01 | 0.74 |\n" * 14),
        }
    if asset == "production_model":
        return {"tenant": tenant_id, "promoted": True, "production_version": "3", "reason": "beats the baseline"}
    return {**lake, "tenant": tenant_id}


def range_tags(day: date, tenants: list[str]) -> dict[str, str]:
    """A run over `day` x all tenants (they are contiguous in the partition order)."""
    return {
        "dagster/asset_partition_range_start": f"{day}|{tenants[0]}",
        "dagster/asset_partition_range_end": f"{day}|{tenants[-1]}",
    }


def seed(seeder: Seeder, tenants: list[str], window: list[date], alarm_days: int) -> Fleet:
    """Onboarding runs, the history, first models, then every day's daily cycle and Sunday's retrain."""
    from mlops_assets.automation.jobs import ONBOARDING_TAG, STAGE_TAG, TENANT_TAG, TRIGGER_TAG

    fleet, first_day = Fleet(window), window[0]
    onboarded_at = seeder.run_time(first_day) - timedelta(hours=6)
    steps = {"history": "ingest_history", "days": "ingest_days", "retrain": "retrain"}
    run_ids = {
        stage: seeder.add_runs(
            job,
            onboarded_at,
            [
                {
                    ONBOARDING_TAG: t,
                    TENANT_TAG: t,
                    STAGE_TAG: stage,
                    **({TRIGGER_TAG: "onboarding"} if stage == "retrain" else {}),
                }
                for t in tenants
            ],
        )
        for stage, job in steps.items()
    }
    for asset in ("raw_orders_history", "raw_customers_history"):
        items = [(t, run_id, False) for t, run_id in zip(tenants, run_ids["history"], strict=True)]
        seeder.materialize(asset, "ingest_history", onboarded_at, None, items)
    retrain(seeder, tenants, first_day, {TRIGGER_TAG: "onboarding"})
    for day in window:
        fleet.cursor_before_day[day] = seeder.storage.get_maximum_record_id() or 0
        seed_day(seeder, tenants, day, alarm=day > window[-1] - timedelta(days=alarm_days))
        if day.isoweekday() == 6:  # the Sunday schedule retrains at Saturday's cutoff
            retrain(seeder, tenants, day, {TRIGGER_TAG: "schedule"})
    return fleet


def retrain(seeder: Seeder, tenants: list[str], day: date, tags: dict[str, str]) -> None:
    from mlops_assets.automation.jobs import STAGE_TAG

    [run_id] = seeder.add_runs(
        "retrain", seeder.run_time(day), [{STAGE_TAG: "retrain", **tags, **range_tags(day, tenants)}]
    )
    for asset in ("training_set", "candidate_model", "production_model"):
        seeder.materialize(asset, "retrain", seeder.run_time(day), day, [(t, run_id, False) for t in tenants])


def seed_day(seeder: Seeder, tenants: list[str], day: date, alarm: bool) -> None:
    """One daily cycle run over every tenant; with `alarm`, one tenant in ALARM_EVERY has a drift alarm."""
    from mlops_assets.automation.jobs import STAGE_TAG

    [run_id] = seeder.add_runs("daily_cycle", seeder.run_time(day), [{STAGE_TAG: "daily", **range_tags(day, tenants)}])
    for asset in seeder.daily_assets:
        items = [(t, run_id, alarm and i % ALARM_EVERY == 0) for i, t in enumerate(tenants)]
        seeder.materialize(asset, "daily_cycle", seeder.run_time(day), day, items)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Webserver:
    """`dagster-webserver` on the code location, in its own session so SIGTERM reaches every child."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            "mlops_assets.definitions",
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            self.stop()
            raise SystemExit("dagster-webserver did not answer within 180 s")
        self.location = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }", {})[
            "workspaceOrError"
        ]["locationEntries"][0]["name"]

    def graphql(self, query: str, variables: dict, operation: str | None = None) -> dict:
        answer = requests.post(
            f"{self.base}/graphql",
            json={"query": query, "variables": variables, "operationName": operation},
            timeout=600,
        )
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(f"{operation}: {body['errors'][:2]}")
        return body["data"]

    def peak_memory_mib(self) -> dict[str, float]:
        """VmHWM of the webserver and of the code server it started, from /proc."""
        peaks, todo = {}, [self.process.pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except FileNotFoundError:
                continue
            peak = re.search(r"VmHWM:\s+(\d+) kB", status)
            role = "code server" if "grpc" in command or "api" in command.split()[1:3] else "webserver"
            if peak:
                peaks[role] = max(peaks.get(role, 0.0), int(peak.group(1)) / 1024)
            todo += [int(child) for child in children]
        return peaks

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def query_figures(server: Webserver, documents: dict[str, str]) -> dict[str, Callable]:
    """What the asset graph, an asset's Partitions view and the runs list ask the server."""
    asset_keys = [
        {"path": node["assetKey"]["path"]}
        for node in server.graphql("{ assetNodes { assetKey { path } } }", {})["assetNodes"]
    ]

    def ask(operation: str, variables: dict) -> Callable[[], dict]:
        return lambda: server.graphql(documents[operation], variables, operation)

    return {
        "asset graph: definitions (LocationWorkspaceAssetsQuery)": ask(
            "LocationWorkspaceAssetsQuery", {"name": server.location}
        ),
        GRAPH_BADGES: ask("AssetGraphLiveQuery", {"assetKeys": asset_keys}),
        "asset graph: health (AssetHealthQuery)": ask("AssetHealthQuery", {"assetKeys": asset_keys}),
        "Partitions view of raw_orders (PartitionHealthQuery)": ask(
            "PartitionHealthQuery", {"assetKey": {"path": ["raw_orders"]}}
        ),
        "runs list, first page (RunsFeedRootQuery)": ask(
            "RunsFeedRootQuery", {"limit": 30, "view": "ROOTS", "filter": {}}
        ),
    }


def browser_figures(server: Webserver, materialized: int) -> list[tuple[str, float, float, str]]:
    """Page loads in Chromium until the content is there (graph badges, the partition counts, the runs)."""
    from playwright.sync_api import expect, sync_playwright

    def graph(page) -> None:
        page.goto(f"{server.base}/asset-groups", wait_until="domcontentloaded")
        expect(page.get_by_text("Global asset lineage")).to_be_visible(timeout=600_000)
        expect(page.locator("foreignObject").first).to_be_visible(timeout=600_000)
        expect(page.locator("foreignObject [role=progressbar]")).to_have_count(0, timeout=600_000)

    def partitions(page) -> None:
        page.goto(f"{server.base}/assets/raw_orders?view=partitions", wait_until="domcontentloaded")
        expect(page.get_by_text(f"Materialized ({materialized})")).to_be_visible(timeout=600_000)

    def runs(page) -> None:
        page.goto(f"{server.base}/runs", wait_until="domcontentloaded")
        expect(page.get_by_text("daily_cycle").first).to_be_visible(timeout=600_000)

    figures, operations = [], []

    def record(request) -> None:
        operation = parse_qs(urlsplit(request.url).query).get("op")
        if urlsplit(request.url).path.endswith("/graphql") and operation:
            operations.append((operation[0], request.timing["responseEnd"] / 1000))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("requestfinished", record)
            for name, load in (
                ("page: asset graph /asset-groups", graph),
                ("page: Partitions view of raw_orders", partitions),
                ("page: runs /runs", runs),
            ):
                page.goto("about:blank")
                operations.clear()
                first, _ = timed(lambda load=load: load(page))
                slowest = sorted(operations, key=lambda op: -op[1])[:3]
                page.goto("about:blank")
                again, _ = timed(lambda load=load: load(page))
                note = "slowest queries of the first load: " + ", ".join(f"{op} {s:.2f} s" for op, s in slowest)
                figures.append((name, first, again, note))
        finally:
            browser.close()
    return figures


def automation_figures(instance, warehouse_url: str, fleet: Fleet, partitions: int) -> list[Figure]:
    """The schedules' and sensors' decisions as the daemon evaluates them, on the seeded instance."""
    import dagster as dg

    from mlops_assets.automation.decisions import (
        cycle_requests,
        drift_retrain_requests,
        onboarding_requests,
        rollback_requests,
    )
    from mlops_assets.automation.sensors import tenant_registry_sensor
    from mlops_assets.core.tenants.registry import TenantRegistry
    from mlops_assets.resources import MonitoringPolicyResource, TenantRegistryResource

    registry = TenantRegistry(warehouse_url)
    yesterday = fleet.days[-1]
    monitoring = MonitoringPolicyResource()
    context = dg.build_sensor_context(
        instance=instance, resources={"tenants": TenantRegistryResource(warehouse_url=warehouse_url)}
    )
    one_day, week = fleet.cursor_before_day[yesterday], fleet.cursor_before_day[yesterday - timedelta(days=6)]
    checks: list[tuple[str, Callable[[], object], Callable[[object], str]]] = [
        (
            "daily_cycle_schedule (cycle_requests daily)",
            lambda: cycle_requests("daily", instance, registry, yesterday),
            lambda r: f"{len(r)} run request(s)",
        ),
        (
            "weekly_retrain_schedule (cycle_requests weekly)",
            lambda: cycle_requests("weekly", instance, registry, yesterday),
            lambda r: f"{len(r)} run request(s)",
        ),
        ("tenant_registry_sensor, in step", lambda: tenant_registry_sensor(context), lambda r: type(r).__name__),
        (
            "onboarding_sensor, everyone onboarded",
            lambda: onboarding_requests(instance, registry, yesterday + timedelta(days=1), fleet.days[0]),
            lambda r: f"{len(r[0])} request(s)",
        ),
        (
            "drift_retrain_sensor, one day of new records",
            lambda: drift_retrain_requests(instance, registry, monitoring, one_day),
            lambda r: f"{len(r[0])} retrain(s), {len(r[1])} note(s)",
        ),
        (
            "drift_retrain_sensor, a week of new records",
            lambda: drift_retrain_requests(instance, registry, monitoring, week),
            lambda r: f"{len(r[0])} retrain(s), {len(r[1])} note(s)",
        ),
        (
            "rollback_sensor, one day of new records",
            lambda: rollback_requests(instance, one_day),
            lambda r: f"{len(r[0])} rollback(s)",
        ),
        (
            "rollback_sensor, a week of new records",
            lambda: rollback_requests(instance, week),
            lambda r: f"{len(r[0])} rollback(s)",
        ),
    ]
    figures = []
    for name, evaluate, describe in checks:
        cold, warm, result = cold_and_warm(evaluate)
        figures.append(Figure(name, partitions, cold, warm, describe(result)))
    return figures


def onboarding_figures(
    instance, warehouse_url: str, tenants: list[str], window: list[date], partitions: int
) -> list[Figure]:
    """The registry sensor and onboarding while the whole fleet signs up at once (worst case)."""
    import dagster as dg

    from mlops_assets.automation.decisions import onboarding_requests
    from mlops_assets.automation.jobs import ONBOARDING_TAG, STAGE_TAG, TENANT_TAG
    from mlops_assets.automation.sensors import tenant_registry_sensor
    from mlops_assets.core.tenants.registry import TenantRegistry
    from mlops_assets.partitions import TENANTS
    from mlops_assets.resources import TenantRegistryResource

    registry = TenantRegistry(warehouse_url)
    context = dg.build_sensor_context(
        instance=instance, resources={"tenants": TenantRegistryResource(warehouse_url=warehouse_url)}
    )
    today = window[-1] + timedelta(days=1)
    sensor, result = timed(lambda: tenant_registry_sensor(context))
    added = len(result.dynamic_partitions_requests[0].partition_keys)
    apply, _ = timed(lambda: instance.add_dynamic_partitions(TENANTS, tenants))
    figures = [
        Figure("tenant_registry_sensor, whole fleet new", partitions, sensor, None, f"{added} to add"),
        Figure("daemon applies the add request (add_dynamic_partitions)", partitions, apply),
    ]
    cold, warm, (requests_, _) = cold_and_warm(lambda: onboarding_requests(instance, registry, today, window[0]))
    figures.append(
        Figure(
            "onboarding_sensor, nobody onboarded yet",
            partitions,
            cold,
            warm,
            f"{len(requests_)} request(s)",
        )
    )
    Seeder(instance, []).add_runs(
        "ingest_history",
        Seeder.run_time(window[0]),
        [{ONBOARDING_TAG: t, TENANT_TAG: t, STAGE_TAG: "history"} for t in tenants],
    )
    cold, warm, (requests_, _) = cold_and_warm(lambda: onboarding_requests(instance, registry, today, window[0]))
    figures.append(
        Figure(
            "onboarding_sensor, history swept, days next",
            partitions,
            cold,
            warm,
            f"{len(requests_)} request(s)",
        )
    )
    for run in instance.get_runs(dg.RunsFilter(tags={STAGE_TAG: "history"})):
        instance.delete_run(run.run_id)
    return figures


def scenario(tenant_count: int, args: argparse.Namespace, documents: dict) -> dict:
    import dagster as dg

    from mlops_assets.automation.jobs import DAILY_ASSETS
    from mlops_assets.core.tenants.registry import Tenant, TenantRegistry, file_settings
    from mlops_assets.definitions import defs
    from mlops_assets.partitions import TENANTS, TenantDayPartitions

    window = [date.fromisoformat(key) for key in TenantDayPartitions.of(defs()).daily.get_partition_keys()]
    assert len(window) == args.window_days, (len(window), args.window_days)
    tenants = [f"shop-{k:04d}" for k in range(tenant_count)]
    partitions = tenant_count * args.window_days
    print(f"\n{tenant_count} tenants x {args.window_days} days = {partitions:,} partitions per asset", flush=True)
    with tempfile.TemporaryDirectory(prefix="partitions-at-scale-") as tmp, postgres_database(args.database):
        home = Path(tmp)
        write_instance_config(home / "dagster", args.database)
        warehouse_url = f"sqlite:///{home / 'warehouse.db'}"
        registry = TenantRegistry(warehouse_url)
        for tenant_id in tenants:
            registry.add(Tenant(tenant_id, tenant_id, "file", file_settings(f"/data/{tenant_id}.csv")))
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            figures = onboarding_figures(instance, warehouse_url, tenants, window, partitions)
            seeder = Seeder(instance, args.daily_assets)
            seconds, fleet = timed(lambda: seed(seeder, tenants, window[:-1], alarm_days=7))
            print(f"seeded {seeder.events:,} events and {seeder.runs:,} runs in {seconds:.0f} s", flush=True)
            env = {**os.environ, "DAGSTER_HOME": str(home / "dagster"), "MLOPS_HOME": str(home)}
            server = Webserver(env)
            try:
                queries = query_figures(server, documents)
                cold = {name: timed(run)[0] for name, run in queries.items()}
                warm = {
                    name: statistics.median(timed(run)[0] for _ in range(WARM_REPEATS)) for name, run in queries.items()
                }
                seconds_day, _ = timed(lambda: seed_yesterday(seeder, tenants, window, fleet))
                print(f"seeded yesterday's daily cycle in {seconds_day:.1f} s", flush=True)
                day_later = {name: timed(run)[0] for name, run in queries.items()}
                for name in queries:
                    figures.append(
                        Figure(
                            name,
                            partitions,
                            cold[name],
                            warm[name],
                            f"a day later {day_later[name]:.2f} s",
                        )
                    )
                if not args.no_browser and Path(CHROMIUM).exists():
                    for name, first, again, note in browser_figures(server, partitions):
                        figures.append(Figure(name, partitions, first, again, note))
                instance.add_dynamic_partitions(TENANTS, ["zz-new-tenant"])
                graph = queries[GRAPH_BADGES]
                rebuild, _ = timed(graph)
                figures.append(
                    Figure(
                        "asset graph badges after a tenant is added",
                        partitions + args.window_days,
                        rebuild,
                        statistics.median(timed(graph)[0] for _ in range(WARM_REPEATS)),
                        "status cache rebuilt",
                    )
                )
                instance.delete_dynamic_partition(TENANTS, "zz-new-tenant")
                memory = server.peak_memory_mib()
            finally:
                server.stop()
            if args.also_window:
                figures += narrower_window_figures(env, documents, tenant_count, args.also_window)
            if set(args.daily_assets) == set(DAILY_ASSETS):
                figures += automation_figures(instance, warehouse_url, fleet, partitions)
    return {"figures": figures, "seed_s": seconds, "events": seeder.events, "runs": seeder.runs, "memory": memory}


def narrower_window_figures(env: dict[str, str], documents: dict, tenant_count: int, window_days: int) -> list[Figure]:
    """The UI's queries through a code location with a shorter window over the same events (old days stay logged)."""
    server = Webserver({**env, "MLOPS_PARTITION_WINDOW_DAYS": str(window_days)})
    try:
        figures = []
        for name, run in query_figures(server, documents).items():
            cold, warm, _ = cold_and_warm(run)
            figures.append(Figure(f"{name}, {window_days}-day window", tenant_count * window_days, cold, warm))
        return figures
    finally:
        server.stop()


def seed_yesterday(seeder: Seeder, tenants: list[str], window: list[date], fleet: Fleet) -> None:
    """Yesterday's daily cycle, stored while the webserver runs (what the first visit of the day meets)."""
    fleet.cursor_before_day[window[-1]] = seeder.storage.get_maximum_record_id() or 0
    seed_day(seeder, tenants, window[-1], alarm=True)
    fleet.days = window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--baseline-tenants", type=int, default=10, help="0: no baseline run")
    parser.add_argument("--window-days", type=int, default=90)
    parser.add_argument(
        "--daily-assets", nargs="+", help="daily assets to materialize (default all; sensors are timed only then)"
    )
    parser.add_argument("--also-window", type=int, help="also time the UI queries with this shorter window")
    parser.add_argument("--database", default="bench_partitions")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    os.environ["MLOPS_PARTITION_WINDOW_DAYS"] = str(args.window_days)  # read when the definitions are built
    from mlops_assets.automation.jobs import DAILY_ASSETS

    args.daily_assets = args.daily_assets or DAILY_ASSETS
    if set(args.daily_assets) - set(DAILY_ASSETS):
        parser.error(f"--daily-assets: choose from {DAILY_ASSETS}")
    documents = ui_queries()
    runs = {count: scenario(count, args, documents) for count in (args.baseline_tenants, args.tenants) if count}
    report(runs, args.baseline_tenants, args.window_days)


def report(runs: dict[int, dict], baseline_tenants: int, window_days: int) -> None:
    baseline = {figure.what: figure for figure in runs.get(baseline_tenants, {}).get("figures", [])}
    print(f"\nwindow {window_days} days; warm = median of {WARM_REPEATS}; limit of a tick: {SENSOR_TIMEOUT_S} s\n")
    versus = f"vs {baseline_tenants} tenants (warm)" if baseline_tenants else "vs baseline"
    print(f"| what | tenants | partitions per asset | cold s | warm s | {versus} | note |")
    print("|---|---|---|---|---|---|---|")
    for count, run in runs.items():
        for figure in run["figures"]:
            small = baseline.get(figure.what)
            mine, theirs = figure.warm or figure.cold, small and (small.warm or small.cold)
            ratio = f"{mine / theirs:.1f}x" if count != baseline_tenants and theirs else ""
            warm = f"{figure.warm:.2f}" if figure.warm is not None else ""
            cells = [figure.what, count, f"{figure.partitions:,}", f"{figure.cold:.2f}", warm, ratio, figure.note]
            print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print()
    for count, run in runs.items():
        memory = ", ".join(f"{role} {mib:.0f} MiB" for role, mib in sorted(run["memory"].items()))
        print(
            f"{count} tenants: seeded {run['events']:,} events, {run['runs']:,} runs in {run['seed_s']:.0f} s; "
            f"peak memory (VmHWM): {memory}"
        )


if __name__ == "__main__":
    main()
