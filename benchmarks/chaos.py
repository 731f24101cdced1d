"""Chaos: a fleet with faulty tenants through the weekly retrain and the daily cycle, beside the same fleet without
faults, on the production profile (issue 15: no tenant can hurt another).

Two deployments of one fleet (each its own PostgreSQL databases, S3 bucket and Dagster instance; one moto
server and one Shopify emulator serve both), set up alike by `fleet.py`'s setup: history and window files,
and last week's production model per tenant (`fleet.donor_models`, cutoff 8 days back), so the weekly
retrain is a retrain. A few tenants are file tenants (their export beside the deployment). In the faulty
deployment 5% of the tenants (at least one of each fault) have one fault each:

- `unreadable-input`: one of the tenant's raw_orders day files is corrupt at rest from the start, so its
  features fail in both cycles (fix: `mlops ingest --tenant T --from D --to D`, then `mlops tenants retry T`);
- `corrupt-model`: after the weekly retrain its production model is a version whose artifacts are corrupt, so
  the daily predictions fail (fix: `mlops train --tenant T --cutoff C`, then `mlops tenants retry T`);
- `revoked-token`: the shop answers 401 in the daily cycle: permanent, held, no retries (fix: the new token in
  its variable, then `mlops tenants retry T`);
- `5xx-storm`: a second emulator answers every request of its shop 5xx, past the client's retry budget;
- `broken-export`: a file tenant whose export is an HTML error page.

The last two are transient: the storm ends and the export is written again when the faulty daily cycle has
ended, and the healing sensor's decision (`cycle_retry_requests`) is evaluated every 5 minutes, as the daemon
does, on a clock that skips the idle minutes between ticks (the runs it asks for execute for real); the time
to heal is that clock's. Then the documented commands fix the three others and one more tick runs them.

Printed: the share of healthy tenants predicted for the day (and identical to the fault-free deployment's
predictions), each faulty tenant's state and reason in fleet health, the time to heal, and the wall and CPU
ratio faulty / fault-free of each cycle (stages alternate between the deployments, each in a fresh process).

    .venv/bin/python benchmarks/chaos.py --tenants 20
    .venv/bin/python benchmarks/chaos.py --tenants 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import fleet
from production import BIN, SHOP_TOKEN, Deployment, start_emulator, start_s3, stop, wait_for_port

FAULTS = ("unreadable-input", "revoked-token", "5xx-storm", "broken-export", "corrupt-model")
TRANSIENT = ("5xx-storm", "broken-export")
# What fleet health must say of each faulty tenant (its own cause, not another tenant's).
CAUSES = {
    "unreadable-input": "not a readable Parquet file",
    "revoked-token": "401",
    "5xx-storm": "HTTP 5",
    "broken-export": "export",
    "corrupt-model": "could not be loaded",
}
REVOKED_ENV, STORM_ENV = "CHAOS_REVOKED_TOKEN", "CHAOS_STORM_URL"
FILE_TENANT_EVERY = 10  # every tenth tenant is a file tenant (on both sides); the broken export is one of them
SENSOR_INTERVAL = timedelta(minutes=5)  # the healing sensor's minimum interval
MODEL_CUTOFF_DAYS = 8  # last week's model: the weekly retrain at yesterday's cutoff replaces it


def plan(tenant_ids: list[str], count: int) -> tuple[dict[str, str], set[str]]:
    """The faulty tenants spread over the fleet, each with its fault, and the file tenants."""
    step = len(tenant_ids) / count
    faulty = [tenant_ids[int(step * k + step / 2)] for k in range(count)]
    faults = {tenant_id: FAULTS[k % len(FAULTS)] for k, tenant_id in enumerate(faulty)}
    files = set(tenant_ids[FILE_TENANT_EVERY // 2 :: FILE_TENANT_EVERY])
    files |= {tenant_id for tenant_id, fault in faults.items() if fault == "broken-export"}
    files -= {tenant_id for tenant_id, fault in faults.items() if fault in ("revoked-token", "5xx-storm")}
    return faults, files


def of_fault(faults: dict[str, str], fault: str) -> list[str]:
    return sorted(tenant_id for tenant_id, kind in faults.items() if kind == fault)


# --- phases, each in a child process with one deployment's environment --------------------------------------


def _export_path(tenant_id: str) -> Path:
    return Path(os.environ["MLOPS_HOME"]) / "exports" / f"{tenant_id}.csv"


def write_export(shops: dict[str, int], tenant_id: str, day: date) -> Path:
    """The shop's orders as its merchant's CSV export."""
    seed = list(shops).index(tenant_id)
    orders = fleet.synthetic_shop(seed, tenant_id, shops[tenant_id], day).raw_orders()
    path = _export_path(tenant_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = orders.rename(columns={"created_at": "timestamp", "total_price": "amount"})
    frame[["order_id", "customer_id", "timestamp", "amount"]].to_csv(path, index=False)
    return path


def prepare(shops: dict[str, int], day: date, faulty: bool, faults: dict[str, str], files: set[str]) -> None:
    """Setup as fleet.py's, last week's models, the file tenants; in the faulty deployment, the faults that exist
    before the first cycle."""
    import mlops_assets.cli.common as cli
    from mlops_assets.core.lake import files as lake
    from mlops_assets.core.tenants.registry import Tenant, file_settings, shopify_settings
    from mlops_assets.settings import Settings

    fleet.setup(shops, day)
    fleet.donor_models(sorted(shops), day - timedelta(days=MODEL_CUTOFF_DAYS))
    registry = cli.registry()
    for tenant_id in sorted(files):
        settings = file_settings(str(write_export(shops, tenant_id, day)))
        registry.upsert(Tenant(tenant_id, tenant_id, "file", settings, horizon_days=fleet.HORIZON))
    if not faulty:
        return
    for tenant_id in of_fault(faults, "revoked-token"):
        settings = shopify_settings(f"{os.environ['FLEET_EMULATOR_URL']}/shops/{tenant_id}", REVOKED_ENV)
        registry.upsert(Tenant(tenant_id, tenant_id, "shopify", settings, horizon_days=fleet.HORIZON))
    for tenant_id in of_fault(faults, "5xx-storm"):
        settings = shopify_settings(f"{os.environ[STORM_ENV]}/shops/{tenant_id}", fleet.TOKEN_ENV)
        registry.upsert(Tenant(tenant_id, tenant_id, "shopify", settings, horizon_days=fleet.HORIZON))
    for tenant_id in of_fault(faults, "broken-export"):
        _export_path(tenant_id).write_text("<html><body>502 Bad Gateway</body></html>\n")
    settings = Settings.from_env()
    root = lake.lake_root(settings.lake_url, settings.s3_endpoint_url)
    for tenant_id in of_fault(faults, "unreadable-input"):
        path = lake.partition_path(root, "raw_orders", tenant_id, day - timedelta(days=3))
        lake.write_atomic(path, path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated at rest


def corrupt_models(tenant_ids: list[str]) -> None:
    """Each tenant's production model replaced by a version whose artifacts are corrupt (written over by a bad
    disk or a botched copy); its own files, since the setup's models are copies that share theirs."""
    import boto3

    from mlops_assets.core.ml.tracking import PRODUCTION, ModelRegistry, model_name
    from mlops_assets.settings import Settings

    settings = Settings.from_env()
    models = ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifact_uri, settings.s3_endpoint_url)
    bucket = settings.lake_url.removeprefix("s3://").split("/")[0]
    for tenant_id in tenant_ids:
        serving = models.alias_version(tenant_id, PRODUCTION)
        key = f"corrupt-models/{tenant_id}"
        boto3.client("s3", endpoint_url=settings.s3_endpoint_url).put_object(
            Bucket=bucket, Key=f"{key}/MLmodel", Body=b"\x00corrupt"
        )
        corrupt = models.client.create_model_version(model_name(tenant_id), f"s3://{bucket}/{key}", serving.run_id)
        models.set_alias(tenant_id, PRODUCTION, corrupt.version)


def run_cycle(cycle: str, day: date) -> dict:
    """The schedule's runs of the cycle (as the daemon launches them), measured."""
    import mlops_assets.cli.common as cli
    from mlops_assets.automation.decisions import cycle_requests

    def work() -> dict:
        with cli.instance() as instance:
            requests = cycle_requests(cycle, instance, cli.registry(), day)
        succeeded = fleet.execute_requests(requests)
        return {"runs": len(requests), "failed_runs": succeeded.count(False)}

    figures = fleet.measured(f"{cycle}-{os.environ['CHAOS_SIDE']}", work)
    return {**figures, **figures.pop("result")}


def _digest(frame) -> str | None:
    if frame.empty:
        return None
    rows = frame.sort_values("customer_id")[["customer_id", "repurchase_probability"]]
    return hashlib.sha256(rows.to_csv(index=False, float_format="%.12g").encode()).hexdigest()


def outcome(tenant_ids: list[str], day: date) -> dict:
    """Per tenant: a digest of its predictions of `day` (None: none), whether the weekly retrain decided its model
    at yesterday's cutoff, and its state and reason in fleet health."""
    import dagster as dg

    import mlops_assets.cli.common as cli
    from mlops_assets.automation.health import fleet_states
    from mlops_assets.core.warehouse.prediction_store import read_partition

    url = cli.settings().warehouse_url
    with cli.instance() as instance:
        states = fleet_states(instance, cli.registry(), url)
        decided = instance.get_materialized_partitions(dg.AssetKey("production_model"))
    cutoff = (day - timedelta(days=1)).isoformat()
    return {
        "predicted": {tenant_id: _digest(read_partition(url, tenant_id, day)) for tenant_id in tenant_ids},
        "retrained": sorted(t for t in tenant_ids if f"{cutoff}|{t}" in decided),
        "states": {state.tenant_id: [state.state, state.reason or state.summary] for state in states},
    }


def _mlops(*args: str) -> None:
    subprocess.run([str(BIN / "mlops"), *args], check=True, stdout=subprocess.DEVNULL)


def heal(shops: dict[str, int], faults: dict[str, str], day: date) -> dict:
    """The transient faults are over: the healing sensor's decision every 5 minutes until they have healed; then
    the documented commands for the others and one more tick."""
    import dagster as dg

    import mlops_assets.cli.common as cli
    from mlops_assets.automation.healing import cycle_retry_requests
    from mlops_assets.automation.jobs import STAGE_TAG
    from mlops_assets.core.warehouse.prediction_store import latest_prediction_days
    from mlops_assets.partitions import TenantDayPartitions

    for tenant_id in of_fault(faults, "broken-export"):
        write_export(shops, tenant_id, day)
    settings, registry = cli.settings(), cli.registry()
    first_day = TenantDayPartitions.from_settings(settings).first_day
    transient = [t for t in faults if faults[t] in TRANSIENT]
    skipped = timedelta(0)  # idle time between ticks that the clock skips

    def now() -> datetime:
        return datetime.now(UTC) + skipped

    def predicted(tenant_ids) -> bool:
        latest = latest_prediction_days(settings.warehouse_url)
        return all(latest.get(tenant_id) == day for tenant_id in tenant_ids)

    def tick() -> list[str]:
        with cli.instance() as instance:
            requests, notes = cycle_retry_requests(instance, registry, first_day, now())
        fleet.execute_requests(requests)
        runs.extend(sorted({f"{r.tags['dagster/asset_partition_range_start']}..{r.run_key}" for r in requests}))
        return notes

    with cli.instance() as instance:
        last = instance.get_run_records(dg.RunsFilter(tags={STAGE_TAG: "daily"}), limit=1)[0]
    ended, started, runs, notes = datetime.fromtimestamp(last.end_time, UTC), time.perf_counter(), [], []
    while not predicted(transient) and skipped < timedelta(days=2):
        skipped += SENSOR_INTERVAL
        notes = tick()
    healed_after = now() - ended
    figures = {
        "healed": predicted(transient), "healed_after_s": healed_after.total_seconds(),
        "real_s": time.perf_counter() - started, "retry_runs": len(runs),
        "held": [note for note in notes if "failed permanently" in note],
    }  # fmt: skip

    os.environ[REVOKED_ENV] = SHOP_TOKEN  # the merchant reinstalled the app: its new token
    for tenant_id in of_fault(faults, "unreadable-input"):
        broken = (day - timedelta(days=3)).isoformat()
        _mlops("ingest", "--tenant", tenant_id, "--from", broken, "--to", broken)
    for tenant_id in of_fault(faults, "corrupt-model"):
        _mlops("train", "--tenant", tenant_id, "--cutoff", (day - timedelta(days=1)).isoformat())
    for tenant_id in faults:
        if faults[tenant_id] not in TRANSIENT:
            _mlops("tenants", "retry", tenant_id)
    tick()
    latest = latest_prediction_days(settings.warehouse_url)
    unhealed = sorted(tenant_id for tenant_id in faults if latest.get(tenant_id) != day)
    return {**figures, "fixed_all": not unhealed, "unhealed": unhealed, "runs": runs}


# --- orchestration -------------------------------------------------------------------------------------------


def child(env: dict[str, str], *args: str) -> dict:
    """A phase in a fresh process; what it reports."""
    report = Path(env["MLOPS_HOME"]) / "report.json"
    subprocess.run([sys.executable, __file__, *args, "--report", str(report)], env=env, check=True)
    return json.loads(report.read_text())


def run_phase(args, shops: dict[str, int], day: date) -> dict | None:
    faults, files = plan(sorted(shops), args.faulty)
    faulty = os.environ["CHAOS_SIDE"] == "faulty"
    if args.phase == "prepare":
        return prepare(shops, day, faulty, faults, files)
    if args.phase in ("weekly", "daily"):
        return run_cycle(args.phase, day - timedelta(days=1) if args.phase == "weekly" else day)
    if args.phase == "corrupt-models":
        return corrupt_models(of_fault(faults, "corrupt-model"))
    if args.phase == "outcome":
        return outcome(sorted(shops), day)
    return heal(shops, faults, day)


def summary(shops, faults, results) -> None:
    clean, faulty = results["clean"]["outcome"], results["faulty"]["outcome"]
    healthy = [t for t in sorted(shops) if t not in faults]
    predicted = [t for t in healthy if faulty["predicted"][t]]
    same = [t for t in predicted if faulty["predicted"][t] == clean["predicted"][t]]
    retrained = [t for t in healthy if t in faulty["retrained"]]
    print(f"\n{len(shops)} tenants, {len(faults)} faulty: {', '.join(f'{t} {f}' for t, f in sorted(faults.items()))}")
    print(f"- healthy tenants predicted for the day: {len(predicted)}/{len(healthy)} "
          f"({100 * len(predicted) / len(healthy):.0f}%), identical to the fault-free run: {len(same)}/{len(healthy)}; "
          f"retrained by the weekly run: {len(retrained)}/{len(healthy)} "
          f"(fault-free: {len(clean['retrained'])}/{len(shops)})")  # fmt: skip
    unhealthy = [t for t in healthy if faulty["states"][t][0] in ("failing", "needs_attention")]
    print(f"- healthy tenants shown failing: {len(unhealthy)} {unhealthy}")
    named = 0
    for tenant_id, fault in sorted(faults.items()):
        state, reason = faulty["states"][tenant_id]
        ok = state in ("failing", "needs_attention") and CAUSES[fault] in reason
        named += ok
        print(f"  {tenant_id} {fault}: {state}, named: {ok}: {reason[:200]}")
    print(f"- faulty tenants named with their cause: {named}/{len(faults)}")
    heal = results["faulty"]["heal"]
    print(
        f"- transient faults ({', '.join(TRANSIENT)}) healed: {heal['healed']} after {heal['healed_after_s'] / 60:.1f} "
        f"min on the sensor clock ({heal['real_s']:.0f} s of it real: decisions and retry runs), "
        f"{heal['retry_runs']} retry runs; held as permanent: {len(heal['held'])}; after the documented commands "
        f"every tenant predicted: {heal['fixed_all']} {heal['unhealed'] or ''}"
    )
    print("\n| cycle | runs (failed) fault-free | runs (failed) faulty | wall s fault-free | wall s faulty | "
          "CPU s fault-free | CPU s faulty | wall ratio | CPU ratio |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cycle in ("weekly", "daily"):
        a, b = results["clean"][cycle], results["faulty"][cycle]
        print(f"| {cycle} | {a['runs']} ({a['failed_runs']}) | {b['runs']} ({b['failed_runs']}) | {a['wall_s']:.1f} | "
              f"{b['wall_s']:.1f} | {a['cpu_s']:.1f} | {b['cpu_s']:.1f} | **{b['wall_s'] / a['wall_s']:.2f}** | "
              f"**{b['cpu_s'] / a['cpu_s']:.2f}** |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--faulty", type=int, help="faulty tenants (default: 5%%, at least one of each fault)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--concurrent-runs", type=int, default=1, help="Dagster runs at a time, each its own process")
    parser.add_argument("--tenants-per-run", type=int, default=250)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.faulty = args.faulty or max(len(FAULTS), round(args.tenants * 0.05))
    shops = fleet.fleet(args.tenants, 0)
    if args.phase:
        reported = run_phase(args, shops, date.fromisoformat(args.day))
        Path(args.report).write_text(json.dumps(reported))
        return

    day = datetime.now(UTC).date() - timedelta(days=1)
    faults, _ = plan(sorted(shops), args.faulty)
    storm = set(of_fault(faults, "5xx-storm"))
    home = Path(tempfile.mkdtemp(prefix="chaos-"))
    s3, s3_port = start_s3()
    emulator, emulator_port = start_emulator(shops, day, home / "emulator.log")
    storm_emulator, storm_port = start_emulator(shops, day, home / "storm.log", error_rate=1.0, only=storm)
    envs, deployments = {}, []
    for side in ("clean", "faulty"):
        deployment = Deployment(
            args.pg, f"chaos{os.getpid()}_{side}", home / side, s3_port, f"http://127.0.0.1:{emulator_port}"
        ).create()
        deployments.append(deployment)
        envs[side] = {
            **deployment.env(), "CHAOS_SIDE": side, REVOKED_ENV: "shpat_revoked",
            STORM_ENV: f"http://127.0.0.1:{storm_port}", "FLEET_CONCURRENT_RUNS": str(args.concurrent_runs),
            "MLOPS_TENANTS_PER_RUN": str(args.tenants_per_run),
        }  # fmt: skip
    common = ["--tenants", str(args.tenants), "--faulty", str(args.faulty), "--day", day.isoformat()]
    results: dict[str, dict] = {"clean": {}, "faulty": {}}
    try:
        started = time.perf_counter()
        for side in envs:
            child(envs[side], *common, "--phase", "prepare")
        wait_for_port(emulator_port, emulator, "shop emulator")
        wait_for_port(storm_port, storm_emulator, "storm emulator")
        print(f"setup {time.perf_counter() - started:.0f} s", flush=True)
        for phase in ("weekly", "corrupt-models", "daily", "outcome"):
            for side in envs:
                if phase != "corrupt-models" or side == "faulty":
                    results[side][phase] = child(envs[side], *common, "--phase", phase)
                    print(side, phase, {k: v for k, v in (results[side][phase] or {}).items() if k != "states"})
        stop(storm_emulator)  # the storm is over
        storm_emulator, _ = start_emulator(shops, day, home / "storm.log", port=storm_port, only=storm)
        wait_for_port(storm_port, storm_emulator, "storm emulator")
        results["faulty"]["heal"] = child(envs["faulty"], *common, "--phase", "heal")
    finally:
        stop(emulator, storm_emulator, s3)
    summary(shops, faults, results)
    (home / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults: {home / 'results.json'}")
    for deployment in deployments:
        deployment.drop()


if __name__ == "__main__":
    main()
