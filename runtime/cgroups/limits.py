"""Writing resource limits into a cgroup pinnace owns (a pod's cgroup parent), v1 and v2.

Containers get their limits from runc (the OCI spec); the pod-level cgroup above them is
pinnace's own where the kubelet gave no cgroup parent, and the kubelet's in-place pod resize
(``UpdatePodSandboxResources``) changes it. The files, from the CRI's figures:

==========================  =================================  ==============================
CRI figure                  cgroup v1 file                     cgroup v2 file
==========================  =================================  ==============================
cpu_shares                  ``cpu.shares``                     ``cpu.weight`` (converted)
cpu_quota, cpu_period       ``cpu.cfs_period_us``, ``…quota``  ``cpu.max`` ("quota period")
memory_limit_in_bytes       ``memory.limit_in_bytes``          ``memory.max``
memory_swap_limit_in_bytes  ``memory.memsw.limit_in_bytes``    ``memory.swap.max`` (swap only)
==========================  =================================  ==============================

The CRI's swap figure is memory plus swap (as OCI's), so v2's swap-only file gets the
difference. Shares convert to a weight as runc does: ``1 + (shares - 2) * 9999 / 262142``.
cpuset is not written: a pod-level cpuset is not something the kubelet resizes.

:func:`limit_writes` is pure; :func:`apply_limits` is the blocking writer.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from runtime.cgroups.mounts import CgroupMode, CgroupMounts
from runtime.errors import FailedPrecondition
from runtime.model.pods import Resources


@dataclass(frozen=True, slots=True)
class LimitWrite:
    """One value written to one file of one controller; ``optional`` files may be absent
    (swap accounting off) and are then skipped."""

    controller: str
    file: str
    value: str
    optional: bool = False


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) → v2 cpu.weight (1..10000)."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def pod_limits(resources: Resources | None, overhead: Resources | None) -> Resources | None:
    """The limits of a pod's cgroup: its containers' sum (``resources``) plus the runtime
    class's ``overhead`` where both set a figure; None when there is nothing to apply."""
    if resources is None:
        return None
    if overhead is None:
        return resources

    def plus(a: int, b: int) -> int:
        return a + b if a > 0 and b > 0 else a

    return Resources(
        cpu_period=resources.cpu_period,
        cpu_quota=plus(resources.cpu_quota, overhead.cpu_quota),
        cpu_shares=plus(resources.cpu_shares, overhead.cpu_shares),
        memory_limit_in_bytes=plus(resources.memory_limit_in_bytes, overhead.memory_limit_in_bytes),
        memory_swap_limit_in_bytes=plus(
            resources.memory_swap_limit_in_bytes, overhead.memory_swap_limit_in_bytes
        ),
    )


def limit_writes(resources: Resources, mode: CgroupMode) -> list[LimitWrite]:
    """The files to write, in order, for ``resources`` (unset figures are left alone)."""
    r = resources
    out: list[LimitWrite] = []
    if mode is CgroupMode.UNIFIED:
        if r.cpu_shares > 0:
            out.append(LimitWrite("cpu", "cpu.weight", str(shares_to_weight(r.cpu_shares))))
        if r.cpu_quota != 0 or r.cpu_period > 0:
            quota = str(r.cpu_quota) if r.cpu_quota > 0 else "max"
            period = r.cpu_period if r.cpu_period > 0 else 100_000
            out.append(LimitWrite("cpu", "cpu.max", f"{quota} {period}"))
        if r.memory_limit_in_bytes > 0:
            out.append(LimitWrite("memory", "memory.max", str(r.memory_limit_in_bytes)))
            if r.memory_swap_limit_in_bytes > 0:
                swap = max(0, r.memory_swap_limit_in_bytes - r.memory_limit_in_bytes)
                out.append(LimitWrite("memory", "memory.swap.max", str(swap), optional=True))
        return out
    if r.cpu_shares > 0:
        out.append(LimitWrite("cpu", "cpu.shares", str(r.cpu_shares)))
    if r.cpu_period > 0:
        out.append(LimitWrite("cpu", "cpu.cfs_period_us", str(r.cpu_period)))
    if r.cpu_quota != 0:
        out.append(
            LimitWrite("cpu", "cpu.cfs_quota_us", str(r.cpu_quota if r.cpu_quota > 0 else -1))
        )
    if r.memory_limit_in_bytes > 0:
        memory = str(r.memory_limit_in_bytes)
        swap = r.memory_swap_limit_in_bytes
        # v1 refuses memory.limit above memsw.limit: raise memsw first when it grows
        if swap > 0:
            out.append(
                LimitWrite("memory", "memory.memsw.limit_in_bytes", str(swap), optional=True)
            )
        out.append(LimitWrite("memory", "memory.limit_in_bytes", memory))
        if swap > 0:
            out.append(
                LimitWrite("memory", "memory.memsw.limit_in_bytes", str(swap), optional=True)
            )
    return out


def apply_limits(mounts: CgroupMounts, cgroup_path: str, resources: Resources) -> list[str]:
    """Write ``resources`` into ``cgroup_path`` (made where missing). Blocking. Returns the
    files written. FailedPrecondition when the kernel refuses a value (e.g. a memory limit
    below what the pod uses now)."""
    written: list[str] = []
    errors: list[str] = []
    for write in limit_writes(resources, mounts.mode):
        directory = mounts.controller_dir(write.controller, cgroup_path)
        if directory is None:
            errors.append(f"{write.file}: the {write.controller} controller is not mounted")
            continue
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / write.file
        try:
            with open(target, "w") as f:
                f.write(write.value)
        except FileNotFoundError:
            if not write.optional:
                errors.append(f"{target}: no such file")
            continue
        except OSError as exc:
            if write.optional and exc.errno == errno.EINVAL:
                continue  # the swap limit's first write, before the memory limit moved
            errors.append(f"{target} = {write.value}: {exc.strerror}")
            continue
        written.append(str(target))
    if errors:
        raise FailedPrecondition("pod cgroup limits not applied: " + "; ".join(errors))
    return written
