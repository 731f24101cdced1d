"""`mlops status`: every tenant's state and quarantine at a glance; the exit code tells a cron job or monitor
whether to alert."""

from __future__ import annotations

from typing import Annotated

import typer

from mlops_assets.cli.common import instance, print_table, registry, settings


def fleet_health():
    """Every tenant's state and its quarantine (counts of the last days, a spike), as the health sensor sees them."""
    from mlops_assets.automation.health import fleet_states, quarantines

    warehouse_url = settings().warehouse_url
    with instance() as dagster_instance:
        states = fleet_states(dagster_instance, registry(), warehouse_url)
    return states, quarantines(warehouse_url, [state.tenant_id for state in states])


def _detail(state, quarantine) -> str:
    return f"{state.summary}; {quarantine.spike.summary}" if quarantine.spike else state.summary


def status(as_json: Annotated[bool, typer.Option("--json", help="one JSON object per tenant")] = False):
    """Each tenant's state: onboarding (step), healthy, stale since D (why), failing (reason, attempts, since),
    needs attention, paused; and its quarantine of the last 7 days by reason, with a spike above its usual share.
    Exits 1 unless every active tenant is healthy (a quarantine spike alone does not stop its predictions)."""
    import json

    states, quarantine = fleet_health()
    if as_json:
        for state in states:
            view = {**state.public_view(), "quarantine": quarantine[state.tenant_id].public_view()}
            typer.echo(json.dumps(view, sort_keys=True))
    else:
        spikes = [tenant_id for tenant_id, view in quarantine.items() if view.spike]
        print_table(
            ("tenant", "state", "as of", "detail", "quarantined (7 days)"),
            (
                (s.tenant_id, s.state, str(s.as_of or "-"), _detail(s, quarantine[s.tenant_id]),
                 quarantine[s.tenant_id].short)
                for s in states
            ),
            title=f"{sum(s.healthy for s in states)} of {len(states)} tenants healthy"
            + (f"; quarantine spikes: {', '.join(spikes)}" if spikes else ""),
        )  # fmt: skip
    if any(state.state not in ("healthy", "paused") for state in states):
        raise typer.Exit(1)
