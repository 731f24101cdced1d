"""Text charts for run metadata: markdown renders in Dagster's UI at no cost per tenant-day."""

from __future__ import annotations

import math

import numpy as np

SPARK = "▁▂▃▄▅▆▇█"


def _bar(share: float, width: int = 20) -> str:
    return "█" * round(share * width) or "·"


def _sparkline(values: list[float], low: float = 0.5, high: float = 1.0) -> str:
    scaled = [(v - low) / (high - low) for v in values]
    return "".join(" " if not math.isfinite(v) else SPARK[min(7, max(0, int(v * 8)))] for v in scaled)


def score_histogram_markdown(reference: np.ndarray, current: np.ndarray, title: str) -> str:
    """Score histograms as a markdown table: a matplotlib PNG cost 250 ms per tenant-day, more than the drift test."""
    bins = np.linspace(0, 1, 11)
    shares = [np.histogram(scores, bins)[0] / max(len(scores), 1) for scores in (reference, current)]
    rows = [f"**{title}**", "", "| probability | reference | today |", "|---|---|---|"]
    rows += [
        f"| {low:.1f}-{high:.1f} | `{_bar(ref)}` {ref:.0%} | `{_bar(cur)}` {cur:.0%} |"
        for low, high, ref, cur in zip(bins[:-1], bins[1:], *shares, strict=True)
    ]
    return "\n".join(rows)


def trend_markdown(days: list[str], series: dict[str, list[float]], floor: float, title: str) -> str:
    """A sparkline per series (AUC 0.5 to 1) and the last two weeks as a table."""
    rows = [f"**{title}** (floor {floor})", ""]
    rows += [f"- {label}: `{_sparkline(values)}`" for label, values in series.items()]
    rows += ["", "| day | " + " | ".join(series) + " |", "|---|" + "---|" * len(series)]
    recent = range(max(0, len(days) - 14), len(days))
    rows += [f"| {days[k]} | " + " | ".join(f"{values[k]:.3f}" for values in series.values()) + " |" for k in recent]
    return "\n".join(rows)
