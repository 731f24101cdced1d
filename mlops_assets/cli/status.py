"""`mlops status`: every tenant's state at a glance; the exit code tells a cron job or monitor whether to alert."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_assets.cli.common import instance, print_table, registry, settings


def fleet_states():
    from mlops_assets.automation.health import fleet_states as states_of

    with instance() as dagster_instance:
        return states_of(dagster_instance, registry(), settings().warehouse_url)


def status(as_json: Annotated[bool, typer.Option("--json", help="one JSON object per tenant")] = False):
    """Each tenant's state: onboarding (step), healthy, stale since D (why), failing (reason, attempts, since),
    needs attention, paused. Exits 1 unless every active tenant is healthy."""
    import json

    states = fleet_states()
    if as_json:
        for state in states:
            typer.echo(json.dumps(state.public_view(), sort_keys=True))
    else:
        print_table(
            ("tenant", "state", "as of", "detail"),
            ((s.tenant_id, s.state, str(s.as_of or "-"), s.summary) for s in states),
            title=f"{sum(s.healthy for s in states)} of {len(states)} tenants healthy",
        )
    if any(state.state not in ("healthy", "paused") for state in states):
        raise typer.Exit(1)
