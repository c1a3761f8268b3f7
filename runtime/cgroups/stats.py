"""Resource usage of one cgroup, for cgroup v1 and v2.

Terms (the CRI's, which follow cAdvisor):

- **cpu_usage_ns**: CPU time consumed by every task of the cgroup, in nanoseconds, cumulative
  (v1 ``cpuacct.usage``; v2 ``cpu.stat`` ``usage_usec`` * 1000).
- **memory_usage**: bytes charged to the cgroup, page cache included (v1
  ``memory.usage_in_bytes``; v2 ``memory.current``).
- **memory_working_set**: ``memory_usage`` minus inactive file pages, floored at zero; the
  figure kubelet evicts on (v1 ``total_inactive_file``; v2 ``inactive_file``).
- **rss**: anonymous memory (v1 ``total_rss``; v2 ``anon``).
- **page_faults** / **major_page_faults**: cumulative counts (``pgfault`` / ``pgmajfault``).
- **pids**: tasks in the cgroup (``pids.current``).
- **oom_kills**: processes the kernel's OOM killer killed in the cgroup (v1
  ``memory.oom_control`` ``oom_kill``; v2 ``memory.events`` ``oom_kill``).
- **swap_usage**: swap the cgroup's pages occupy (v1 ``memory.stat`` ``total_swap``, present
  where swap accounting is on; v2 ``memory.swap.current``).

Parsers are pure functions of file text; :func:`read_stats` and :func:`read_oom_kills` are the
thin, blocking readers (call them through ``asyncio.to_thread``). A figure whose file is
missing is reported as 0: a controller may be unmounted or the cgroup half gone, and stats are
best-effort by nature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.cgroups.mounts import CgroupMode, CgroupMounts, relative_cgroup_path


@dataclass(frozen=True, slots=True)
class CgroupStats:
    """One reading of a cgroup's figures (see the module docstring for each term)."""

    cpu_usage_ns: int
    memory_usage: int
    memory_working_set: int
    rss: int
    page_faults: int
    major_page_faults: int
    pids: int
    oom_kills: int
    swap_usage: int = 0


def parse_flat_keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (``memory.stat``, ``cpu.stat``, ``memory.events``,
    ``memory.oom_control``); lines that are not a key and an integer are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def parse_single_int(text: str) -> int:
    """Parse a one-number file (``memory.current``, ``pids.current``); ``max`` and blanks → 0."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return 0


def stats_from_v1(files: Mapping[str, str]) -> CgroupStats:
    """Build stats from the texts of v1 files, keyed by file name (``cpuacct.usage``,
    ``memory.usage_in_bytes``, ``memory.stat``, ``memory.oom_control``, ``pids.current``);
    missing ones count as empty."""
    mem = parse_flat_keyed(files.get("memory.stat", ""))
    usage = parse_single_int(files.get("memory.usage_in_bytes", ""))
    inactive = mem.get("total_inactive_file", mem.get("inactive_file", 0))
    return CgroupStats(
        cpu_usage_ns=parse_single_int(files.get("cpuacct.usage", "")),
        memory_usage=usage,
        memory_working_set=max(0, usage - inactive),
        rss=mem.get("total_rss", mem.get("rss", 0)),
        page_faults=mem.get("total_pgfault", mem.get("pgfault", 0)),
        major_page_faults=mem.get("total_pgmajfault", mem.get("pgmajfault", 0)),
        pids=parse_single_int(files.get("pids.current", "")),
        oom_kills=parse_flat_keyed(files.get("memory.oom_control", "")).get("oom_kill", 0),
        swap_usage=mem.get("total_swap", mem.get("swap", 0)),
    )


def stats_from_v2(files: Mapping[str, str]) -> CgroupStats:
    """Build stats from the texts of v2 files, keyed by file name (``cpu.stat``,
    ``memory.current``, ``memory.stat``, ``memory.events``, ``pids.current``)."""
    mem = parse_flat_keyed(files.get("memory.stat", ""))
    usage = parse_single_int(files.get("memory.current", ""))
    return CgroupStats(
        cpu_usage_ns=parse_flat_keyed(files.get("cpu.stat", "")).get("usage_usec", 0) * 1000,
        memory_usage=usage,
        memory_working_set=max(0, usage - mem.get("inactive_file", 0)),
        rss=mem.get("anon", 0),
        page_faults=mem.get("pgfault", 0),
        major_page_faults=mem.get("pgmajfault", 0),
        pids=parse_single_int(files.get("pids.current", "")),
        oom_kills=parse_flat_keyed(files.get("memory.events", "")).get("oom_kill", 0),
        swap_usage=parse_single_int(files.get("memory.swap.current", "")),
    )


_V1_FILES = {
    "cpuacct.usage": "cpuacct",
    "memory.usage_in_bytes": "memory",
    "memory.stat": "memory",
    "memory.oom_control": "memory",
    "pids.current": "pids",
}
_V2_FILES = (
    "cpu.stat",
    "memory.current",
    "memory.stat",
    "memory.events",
    "pids.current",
    "memory.swap.current",
)


def _read(path: Path | str | None) -> str:
    if path is None:
        return ""
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # gone, half gone, or the controller is not mounted
        return ""


# what a container's CRI stats need (no pids, no OOM kills): fewer files on the hot path
_BRIEF = frozenset(
    {
        "cpuacct.usage",
        "memory.usage_in_bytes",
        "memory.stat",
        "cpu.stat",
        "memory.current",
        "memory.swap.current",
    }
)


def read_stats(mounts: CgroupMounts, cgroup_path: str, *, brief: bool = False) -> CgroupStats:
    """Read the figures of ``cgroup_path`` (e.g. ``/pinnace/pod/ctr``). Blocking. ``brief``
    reads only CPU and memory (``pids`` and ``oom_kills`` read as 0): what ContainerStats
    carries, read for every container of ListContainerStats. Paths are joined as strings
    once per call."""
    rel = str(relative_cgroup_path(cgroup_path))
    if mounts.mode is CgroupMode.UNIFIED:
        assert mounts.unified is not None
        base = os.path.join(mounts.unified, rel)
        return stats_from_v2(
            {
                name: _read(os.path.join(base, name))
                for name in _V2_FILES
                if not brief or name in _BRIEF
            }
        )
    texts = {}
    for name, controller in _V1_FILES.items():
        if brief and name not in _BRIEF:
            continue
        mount = mounts.v1.get(controller)
        texts[name] = "" if mount is None else _read(os.path.join(mount, rel, name))
    return stats_from_v1(texts)


def read_oom_kills(mounts: CgroupMounts, cgroup_path: str) -> int:
    """How many processes the OOM killer killed in ``cgroup_path``; 0 when unknown. Blocking."""
    d = mounts.controller_dir("memory", cgroup_path)
    if d is None:
        return 0
    name = "memory.events" if mounts.mode is CgroupMode.UNIFIED else "memory.oom_control"
    return parse_flat_keyed(_read(d / name)).get("oom_kill", 0)
