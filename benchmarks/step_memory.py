"""Where a run's memory goes: the peak resident memory of each Dagster step, sampled beside the run.

A thread reads this process's high-water mark (`VmHWM`) every 10 ms and resets it (`/proc/self/clear_refs`),
so each sample is the exact peak since the one before, however short; the runs' event logs (each step's start
and end) assign the samples to steps. Linux only. `fleet.py --step-memory` prints the table. Resetting the
mark also resets `getrusage`'s `ru_maxrss`: the stage's peak is the largest sample.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

INTERVAL_S = 0.01


def _high_water_kib() -> int:
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1))


def _reset_high_water() -> None:
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


@dataclass
class PeakSampler:
    """`(time, peak MiB since the sample before)`, from entering to leaving the block."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        self.samples.append((time.time(), _high_water_kib() / 1024))
        _reset_high_water()

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self._sample()

    def __enter__(self) -> PeakSampler:
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mib(self) -> float:
        return max(peak for _, peak in self.samples)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """Resident memory when a step started (the first sample after it), and its peak."""
        inside = [peak for at, peak in self.samples if start <= at <= end + INTERVAL_S]
        return (inside[0], max(inside)) if inside else (float("nan"), float("nan"))


def step_peaks(instance, since: float, sampler: PeakSampler) -> list[dict]:
    """Each step of the runs created after `since`: its run's tenant range, resident memory at start, peak."""
    import dagster as dg

    from mlops_assets.batching import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    rows = []
    for record in reversed(instance.get_run_records(dg.RunsFilter(created_after=_utc(since)))):
        run = record.dagster_run
        partitions = f"{run.tags.get(ASSET_PARTITION_RANGE_START_TAG)}..{run.tags.get(ASSET_PARTITION_RANGE_END_TAG)}"
        started: dict[str, float] = {}
        for event in instance.all_logs(run.run_id, of_type=kinds):
            if event.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = event.timestamp
                continue
            at_start, peak = sampler.between(started[event.step_key], event.timestamp)
            rows.append({"run": partitions, "step": event.step_key, "start_mib": at_start, "peak_mib": peak,
                         "seconds": event.timestamp - started[event.step_key]})  # fmt: skip
    return rows


def _utc(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def markdown(stage: str, rows: list[dict]) -> str:
    lines = [f"{stage}: peak resident memory by step", "| run | step | s | MiB at start | peak MiB | growth MiB |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for row in rows:
        lines.append(
            f"| {row['run']} | {row['step']} | {row['seconds']:.1f} | {row['start_mib']:.0f} | {row['peak_mib']:.0f} | "
            f"{row['peak_mib'] - row['start_mib']:+.0f} |"
        )
    return "\n".join(lines)
