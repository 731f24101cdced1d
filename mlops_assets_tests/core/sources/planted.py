"""Contexts and planted faults shared by the rule and gate tests."""

from datetime import date

from mlops_assets.core.sources.screening import PartitionContext

DAY = date(2026, 10, 20)
ZONE = "America/New_York"


def context(resource="orders", **overrides) -> PartitionContext:
    values = dict(resource=resource, tenant_id="acme", day=DAY, timezone=ZONE, currency="USD")
    return PartitionContext(**{**values, **overrides})


def planted(frame, **changes):
    """The frame with `column=(row position, value)` changed."""
    frame = frame.copy()
    for column, (row, value) in changes.items():
        frame.loc[frame.index[row], column] = value
    return frame
