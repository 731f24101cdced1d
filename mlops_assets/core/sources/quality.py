"""Quality gates on a screened partition, as pure functions of the screening's result and its context.

Record faults are quarantined row by row (`screening.py`); a gate blocks a tenant's partition only
when the data as a whole is unusable: its shape is broken (`schema_valid`), most of its records were
quarantined, or its volume collapsed (`usable_partition`). The record rules' gates warn: they name
how many rows each rule quarantined, a sample of ids and the fix, and the tenant keeps running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlops_assets.core.sources.reasons import REASONS
from mlops_assets.core.sources.screening import PartitionContext, Screened

UNUSABLE_SHARE = 0.5  # more than half of a partition quarantined: the source or its mapping is broken, not a row
UNUSABLE_MIN_ROWS = 10  # ... and at least this many: a tiny shop's one bad order of two is a record fault
COLLAPSE_RATIO = 10  # a day with under a tenth of the usual volume is an outage or a truncated export
COLLAPSE_MIN_MEDIAN = 50  # ... judged only where a tenth of the usual is still a few orders
SAMPLE = 10  # offending ids named in a description and in metadata


@dataclass(frozen=True)
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    name: str
    resources: tuple[str, ...]
    blocking: bool
    description: str
    evaluate: Callable[[Screened, PartitionContext], Outcome]


def _sample(quarantine: pd.DataFrame) -> list[str]:
    return [str(record_id) for record_id in quarantine["record_id"].dropna().unique()[:SAMPLE]]


def schema_valid(screened: Screened, ctx: PartitionContext) -> Outcome:
    problems = screened.schema_problems
    if problems:
        return Outcome(
            False,
            f"{ctx.subject}: " + "; ".join(problems) + " (fix: the source or the normalizer; re-run the partition)",
            {"problems": problems},
        )
    return Outcome(True, "all required columns present, typed and filled", {"columns": len(screened.frame.columns)})


def usable_partition(screened: Screened, ctx: PartitionContext) -> Outcome:
    """Blocks when the partition as a whole cannot be trusted: most records quarantined, or the volume collapsed."""
    read, quarantined, written = screened.rows_read, len(screened.quarantine), len(screened.frame)
    meta: dict[str, object] = {"rows_read": read, "quarantined": quarantined, "by_reason": screened.by_reason}
    if quarantined > read * UNUSABLE_SHARE and quarantined >= UNUSABLE_MIN_ROWS:
        dominant, count = max(screened.by_reason.items(), key=lambda item: (item[1], item[0]))
        sample = _sample(screened.quarantine[screened.quarantine["reason"] == dominant])
        return Outcome(
            False,
            f"{ctx.subject}: {quarantined} of {read} {ctx.resource} quarantined, {count} of them {dominant}: "
            f"{REASONS[dominant]}; first: {', '.join(sample)}; then re-run the partition",
            {**meta, "dominant_reason": dominant, "sample_ids": sample},
        )
    history = ctx.trailing_row_counts
    median = float(np.median(history)) if history else 0.0
    if ctx.resource == "orders" and median >= COLLAPSE_MIN_MEDIAN and written < median / COLLAPSE_RATIO:
        return Outcome(
            False,
            f"{ctx.subject}: {written} orders against a trailing median of {median:g} a day (fix: the shop's API or "
            "the export returned part of the day; re-run the partition when it is complete)",
            {**meta, "rows": written, "trailing_median": median},
        )
    return Outcome(True, f"{written} of {read} {ctx.resource} usable", meta)


def record_rule(*reasons: str, extra: Callable[[PartitionContext], dict] | None = None):
    """The gate of record rules: fails (as a warning) when they quarantined rows, naming count, ids and the fix."""

    def evaluate(screened: Screened, ctx: PartitionContext) -> Outcome:
        meta = extra(ctx) if extra else {}
        hit = screened.quarantine
        if len(hit):
            hit = hit[hit["reason"].isin(reasons)]
        if hit.empty:
            return Outcome(True, f"no {ctx.resource} quarantined as {' or '.join(reasons)}", meta)
        counts = {reason: int(n) for reason, n in hit["reason"].value_counts().sort_index().items()}
        sample = _sample(hit)
        fixes = "; ".join(f"{reason} ({n}): {REASONS[reason]}" for reason, n in counts.items())
        return Outcome(
            False,
            f"{ctx.subject}: {len(hit)} {ctx.resource} quarantined, the rest kept: {fixes}; first: {', '.join(sample)}",
            {**meta, "quarantined": len(hit), "by_reason": counts, "sample_ids": sample},
        )

    return evaluate


def row_count_in_range(screened: Screened, ctx: PartitionContext) -> Outcome:
    history, rows = ctx.trailing_row_counts, len(screened.frame)
    if len(history) < 7:
        return Outcome(True, f"only {len(history)} trailing days to compare with (needs 7)", {"rows": rows})
    median = float(np.median(history))
    low, high = median / 5 - 10, median * 5 + 10
    meta = {"rows": rows, "trailing_median": median, "low": max(low, 0), "high": high}
    if not low <= rows <= high:
        return Outcome(
            False,
            f"{ctx.subject}: {rows} rows against a trailing median of {median:g} "
            "(fix: look for an outage or a bulk import at the source)",
            meta,
        )
    return Outcome(True, "row count within 5x of the trailing median", meta)


def quarantine_share(screened: Screened, ctx: PartitionContext) -> Outcome:
    quarantined, total = len(screened.quarantine), screened.rows_read
    share = quarantined / total if total else 0.0
    meta = {"quarantined": quarantined, "share": round(share, 4), "by_reason": screened.by_reason}
    if share > 0.05:
        return Outcome(
            False,
            f"{ctx.subject}: {quarantined} of {total} records quarantined {screened.by_reason} "
            "(fix: read the errors under the lake's quarantine/ and fix the source or its column mapping)",
            meta,
        )
    return Outcome(True, f"{quarantined} records quarantined", meta)


def _outlier_metadata(ctx: PartitionContext) -> dict:
    return ctx.outliers.metadata() if ctx.outliers else {"median_order_value": None}


BOTH, ORDERS = ("orders", "customers"), ("orders",)
GATES: tuple[Gate, ...] = (
    Gate("schema_valid", BOTH, True, "Required fields present and typed", schema_valid),
    Gate("usable_partition", BOTH, True, "Most records usable and the volume not collapsed", usable_partition),
    Gate("unique_ids", BOTH, False, "No id twice with conflicting content", record_rule("conflicting_duplicate")),
    Gate(
        "non_negative_amounts",
        ORDERS,
        False,
        "No negative amounts, refunds matched and within totals",
        record_rule("negative_amount", "over_refunded", "unmatched_refund"),
    ),
    Gate("currency_matches_tenant", ORDERS, False, "Orders in the tenant's currency", record_rule("foreign_currency")),
    Gate("timestamps_in_day", BOTH, False, "Rows belong to the partition's day", record_rule("outside_day")),
    Gate(
        "no_extreme_outliers",
        ORDERS,
        False,
        "No order far above the tenant's usual values (robust limit)",
        record_rule("extreme_outlier", extra=_outlier_metadata),
    ),
    Gate("row_count_in_range", ORDERS, False, "Volume within 5x of the trailing 14 days", row_count_in_range),
    Gate("quarantine_share", BOTH, False, "At most 5% of records quarantined", quarantine_share),
)


def gates_for(resource: str) -> list[Gate]:
    return [gate for gate in GATES if resource in gate.resources]
