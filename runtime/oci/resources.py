"""``linux.resources`` (cgroup limits) and ``process.oomScoreAdj`` from the CRI's resources.

Terms:

memory.swap
    The OCI limit of memory plus swap. The CRI's ``memory_swap_limit_in_bytes`` already is
    that sum (kubelet adds them), so it is copied as is, and only when set.
unified
    cgroup v2 files written verbatim. runc refuses them on a cgroup v1 host, so they are
    dropped there (with a debug log) rather than failing the container.
oom_score_adj
    The daemon cannot lower its children's score below its own without CAP_SYS_RESOURCE,
    and runc fails the container when it tries; a value lower than the daemon's is left
    out, so the container inherits the daemon's (what containerd's restrict mode gives).
"""

from __future__ import annotations

import logging
from typing import Any

from runtime.model.pods import Resources

log = logging.getLogger(__name__)


def resources_spec(resources: Resources | None, *, cgroup_v2: bool) -> dict[str, Any]:
    """cpu, memory, hugepageLimits and unified of ``linux.resources`` (devices not included)."""
    out: dict[str, Any] = {}
    if resources is None:
        return out
    cpu: dict[str, Any] = {}
    if resources.cpu_shares:
        cpu["shares"] = resources.cpu_shares
    if resources.cpu_quota:
        cpu["quota"] = resources.cpu_quota
    if resources.cpu_period:
        cpu["period"] = resources.cpu_period
    if resources.cpuset_cpus:
        cpu["cpus"] = resources.cpuset_cpus
    if resources.cpuset_mems:
        cpu["mems"] = resources.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    memory: dict[str, Any] = {}
    if resources.memory_limit_in_bytes:
        memory["limit"] = resources.memory_limit_in_bytes
    if resources.memory_swap_limit_in_bytes:
        memory["swap"] = resources.memory_swap_limit_in_bytes
    if memory:
        out["memory"] = memory
    if resources.hugepage_limits:
        out["hugepageLimits"] = [
            {"pageSize": h.page_size, "limit": h.limit} for h in resources.hugepage_limits
        ]
    if resources.unified:
        if cgroup_v2:
            out["unified"] = dict(resources.unified)
        else:
            log.debug("dropping cgroup v2 unified resources on a v1 host: %s", resources.unified)
    return out


def oom_score_adj(wanted: int | None, *, host_oom_score_adj: int) -> int | None:
    """``wanted`` when the daemon may set it (not lower than its own score), else None."""
    if wanted is None:
        return None
    if wanted < host_oom_score_adj:
        log.debug(
            "omitting oomScoreAdj %d: lower than the daemon's %d and CAP_SYS_RESOURCE is needed",
            wanted,
            host_oom_score_adj,
        )
        return None
    return wanted
