"""`mlops shop-emulator`: synthetic shops behind the Shopify Admin REST API shape, in the foreground or, for
the demo, in a background process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlops_assets.cli.common import console, fail
from mlops_assets.core.tenants.ids import InvalidTenantId, validate_tenant_id
from mlops_assets.sim.demo_shops import DEMO_CALENDAR_DAYS

EMULATOR_TOKEN_ENV = "MLOPS_EMULATOR_TOKEN"
DEMO_TOKEN = "shpat_demo_emulator_token"


def _build_emulator(shops, host: str, port: int, token: str, faults, bucket: tuple[int, float], as_of_request: bool):
    from tqdm import tqdm

    from mlops_assets.sim.shop_emulator import EmulatedShop, LeakyBucket, ShopApiEmulator
    from mlops_assets.sim.shops import SyntheticShop

    emulated = {}
    for spec in tqdm(shops, desc="generating shops", unit="shop", disable=None):
        emulated[spec.name] = EmulatedShop(SyntheticShop(spec), token, LeakyBucket(*bucket), as_of_request)
    try:
        return ShopApiEmulator(emulated, host=host, port=port, faults=faults)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc} (fix: pick another --port)")
        raise


def _emulator_token() -> str:
    return os.environ.get(EMULATOR_TOKEN_ENV) or DEMO_TOKEN


def shop_emulator(
    host: str = "127.0.0.1",
    port: int = 8765,
    shop: Annotated[list[str], typer.Option(help="NAME[:CUSTOMERS[:SEED]], repeatable; default: the demo shops")] = [],  # noqa: B006
    timezone: str = "UTC",
    currency: str = "USD",
    end_date: Annotated[str | None, typer.Option(help="last day of history (default: yesterday)")] = None,
    history_days: int = 730,
    error_rate: Annotated[float, typer.Option(help="share of requests answered 5xx")] = 0.0,
    latency_ms: float = 0.0,
    drop_rate: Annotated[float, typer.Option(help="share of connections dropped without an answer")] = 0.0,
    malformed_body_rate: float = 0.0,
    malformed_record_rate: float = 0.0,
    outlier_order_rate: Annotated[
        float, typer.Option(help="share of orders served with a fat-finger total (10^6 times too large)")
    ] = 0.0,
    bucket_capacity: int = 40,
    leak_per_s: float = 2.0,
    as_of_request: Annotated[
        bool, typer.Option(help="answer as the shop did at updated_at_max (replays of past days), not final states")
    ] = False,
    calendar_days: Annotated[
        int, typer.Option(help="demo shops: the `mlops demo --days` they were replayed with (sets the drift day)")
    ] = DEMO_CALENDAR_DAYS,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="NAME[@YYYY-MM-DD]: every shop served drifts by the preset NAME of `sim.scenarios.SCENARIOS` "
            "(channel_flip, currency_switch, ...) from that day (default: 30 days before the end)"
        ),
    ] = None,
):
    """Serve synthetic shops with the Shopify Admin REST API shape; the token is read from $MLOPS_EMULATOR_TOKEN."""
    from dataclasses import replace

    from mlops_assets.sim.demo_shops import demo_shops
    from mlops_assets.sim.scenarios import parse_scenario
    from mlops_assets.sim.shop_emulator import Faults
    from mlops_assets.sim.shops import ShopSpec

    end = date.fromisoformat(end_date) if end_date else datetime.now(UTC).date() - timedelta(days=1)
    specs = []
    for item in shop:
        name, *rest = item.split(":")
        try:
            validate_tenant_id(name)
            specs.append(
                ShopSpec(
                    name,
                    customers=int(rest[0]) if rest else 2000,
                    seed=int(rest[1]) if len(rest) > 1 else 0,
                    end=end,
                    history_days=history_days,
                    timezone=timezone,
                    currency=currency,
                )
            )
        except (InvalidTenantId, ValueError) as exc:
            fail(f"--shop {item!r}: {exc}")
    specs = specs or [demo.spec for demo in demo_shops(end, calendar_days)]
    if scenario:
        try:
            drift = parse_scenario(scenario, default_start=end - timedelta(days=30))
            specs = [replace(spec, scenario=drift) for spec in specs]
        except ValueError as exc:
            fail(f"--scenario {scenario!r}: {exc}")
    faults = Faults(
        error_rate,
        latency_ms,
        drop_rate,
        malformed_body_rate,
        malformed_record_rate,
        outlier_order_rate=outlier_order_rate,
    )
    emulator = _build_emulator(
        specs, host, port, _emulator_token(), faults, (bucket_capacity, leak_per_s), as_of_request
    )
    for spec in specs:
        console.print(
            f"{spec.name}: {emulator.shop_url(spec.name)}  "
            f"({spec.customers} customers, {spec.timezone}, {spec.currency}"
            + (f", {type(spec.scenario).__name__} from {spec.scenario.start})" if spec.scenario else ")")
        )
    if EMULATOR_TOKEN_ENV not in os.environ:
        console.print(f"token: ${EMULATOR_TOKEN_ENV} is unset, accepting the demo token {DEMO_TOKEN!r}")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


def start_background_emulator(port: int, days: int, log: Path) -> subprocess.Popen:
    """`mlops shop-emulator` serving the demo shops from its own process (the second core builds and
    serves the shops while this one runs the pipeline), in replay mode with Shopify Plus limits."""
    command = [
        sys.executable, "-m", "mlops_assets.cli", "shop-emulator", "--port", str(port), "--as-of-request",
        "--calendar-days", str(days), "--bucket-capacity", "400", "--leak-per-s", "20",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_emulator(process: subprocess.Popen, port: int, log: Path, timeout_s: float = 120.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"the shop emulator stopped: {log.read_text()[-600:]} (fix: pick another --port)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    fail(f"the shop emulator did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")
