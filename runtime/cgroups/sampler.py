"""CPU rate from cumulative usage.

**usage_nano_cores** is CPU nanoseconds consumed per wall-clock second between two readings:
1e9 means one core fully busy. The CRI reports it alongside the cumulative ``cpu_usage_ns``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CpuReading:
    """Cumulative CPU usage of one cgroup at a monotonic instant."""

    usage_ns: int
    at_ns: int


class CpuSampler:
    """Keeps the previous reading per key (a container or pod id) and turns the next one into
    usage_nano_cores. Pure: the caller supplies readings and times; forget ids it deletes."""

    def __init__(self) -> None:
        self._last: dict[str, CpuReading] = {}

    def sample(self, key: str, usage_ns: int, at_ns: int) -> int | None:
        """Record a reading and return usage_nano_cores since the previous one, or None for
        the first reading, a reading no later than the previous, or a counter that went back
        (the cgroup was recreated)."""
        prev = self._last.get(key)
        self._last[key] = CpuReading(usage_ns, at_ns)
        if prev is None or at_ns <= prev.at_ns or usage_ns < prev.usage_ns:
            return None
        return (usage_ns - prev.usage_ns) * 1_000_000_000 // (at_ns - prev.at_ns)

    def forget(self, key: str) -> None:
        """Drop the state of ``key`` (its container is gone)."""
        self._last.pop(key, None)
