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
applied resources
    What the container really gets: :func:`applicable_resources` drops what the node cannot
    apply (hugepage limits without a usable hugetlb controller, when tolerated; ``unified``
    files of controllers the host lacks) and puts the score in effect in ``oom_score_adj``.
    The spec is built from it and ``ContainerStatus.resources`` reports it, so the kubelet
    reads what is in force, not what it asked for.
RDT and block-IO classes
    The CRI has no fields for them; containerd reads them from annotations and a class
    config. pinnace applies neither, so :func:`ignored_class_annotations` names the ones a
    request carried, to be logged and left out, never failing the container.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from runtime.cgroups.host import HostResources
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


# containerd's annotations for RDT and block-IO classes (pod-wide and per container).
CLASS_ANNOTATION_PREFIXES = (
    "rdt.resources.beta.kubernetes.io/",
    "blockio.resources.beta.kubernetes.io/",
    "io.kubernetes.cri.rdt-class",
    "io.kubernetes.cri.blockio-class",
)


def ignored_class_annotations(annotations: Mapping[str, str]) -> list[str]:
    """The RDT / block-IO class annotations in ``annotations`` (applied by nothing here)."""
    return sorted(k for k in annotations if k.startswith(CLASS_ANNOTATION_PREFIXES))


def applicable_resources(
    wanted: Resources | None,
    host: HostResources,
    *,
    tolerate_missing_hugetlb: bool,
    host_oom_score_adj: int,
) -> Resources | None:
    """The part of ``wanted`` the node applies (see "applied resources" above). With
    ``tolerate_missing_hugetlb`` false, hugepage limits are kept even without a controller
    (the OCI runtime then refuses the container, as containerd does with the option off)."""
    if wanted is None:
        return None
    changes: dict[str, Any] = {}
    if wanted.hugepage_limits and not host.hugetlb and tolerate_missing_hugetlb:
        log.debug(
            "dropping hugepage limits %s: no hugetlb controller the OCI runtime can use",
            ", ".join(f"{h.page_size}={h.limit}" for h in wanted.hugepage_limits),
        )
        changes["hugepage_limits"] = ()
    if wanted.unified:
        kept = {k: v for k, v in wanted.unified.items() if _unified_key_ok(k, host)}
        if kept != dict(wanted.unified):
            log.debug(
                "dropping unified keys the host cannot apply: %s",
                sorted(set(wanted.unified) - set(kept)),
            )
            changes["unified"] = kept
    if wanted.oom_score_adj < host_oom_score_adj:
        changes["oom_score_adj"] = host_oom_score_adj  # what the container inherits
    return dataclasses.replace(wanted, **changes) if changes else wanted


def _unified_key_ok(key: str, host: HostResources) -> bool:
    if host.unified_controllers is None:
        return False  # v1 controllers: runc refuses unified files
    controller = key.split(".", 1)[0]
    return controller == "cgroup" or controller in host.unified_controllers
