"""What every benchmark shares: result rows, summaries, percentiles and the project's root.

A benchmark area (``startup``, ``moves``...) returns a :class:`Section`: rows of repeated
measurements (one value per repeat; the table shows their median and min-max), ratio rows
whose values are per-round ratios of two configurations measured side by side, and notes
(recommendations, failures, caveats). Everything is plain data, so the suite can print it
and write it to JSON.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT", "Row", "Section", "cpu_seconds_of", "live_descendants_cpu_s", "percentile", "ratios", "rss_kib_of",
    "unavailable",
]

ROOT = Path(__file__).resolve().parents[2]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Row:
    """One metric: a value per repeat (the table shows median and min-max), or an error."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    target: str = ""  # the target, shown beside the value
    error: str | None = None  # why there is no value (e.g. kaggle-environments failed to install)
    is_ratio: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def min(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def max(self) -> float:
        return max(self.values) if self.values else math.nan

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "unit": self.unit, "target": self.target}
        if self.values:
            d.update(median=self.median, min=self.min, max=self.max, n=len(self.values), values=self.values)
        if self.error:
            d["error"] = self.error
        if self.is_ratio:
            d["ratio"] = True
        return d


def unavailable(name: str, unit: str, error: str, target: str = "") -> Row:
    """A row that could not be measured, saying why."""
    return Row(name, unit, target=target, error=error)


@dataclass(slots=True)
class Section:
    """The result of one benchmark area."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # raw detail for the JSON file
    seconds: float = 0.0

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "seconds": round(self.seconds, 1), "rows": [r.to_json() for r in self.rows],
                "notes": self.notes, "extra": self.extra}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Per-round ratios of two configurations measured side by side."""
    return [a / b for a, b in zip(numerators, denominators, strict=True) if b]


def rss_kib_of(pid: int) -> int:
    """Resident memory of a process (``VmRSS`` in ``/proc/<pid>/status``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds_of(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def live_descendants_cpu_s() -> float:
    """utime + stime + reaped children's, of every live process below this one (from /proc)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    me, total = os.getpid(), 0
    for pid in ticks:
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor != me:
            ancestor = parents.get(ancestor, 0)
        if ancestor == me:
            total += ticks[pid]
    return total / os.sysconf("SC_CLK_TCK")
