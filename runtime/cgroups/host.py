"""Which resource controls the node's OCI runtime can really apply.

The kubelet sends some resources whether or not the node can apply them: a hugepage limit (0)
for every page size the kernel has, ``unified`` cgroup v2 files, and (through annotations) RDT
and block-IO classes. runc fails the whole container on a value it cannot apply (``cannot set
hugetlb limit: container could not join or create cgroup``), so the pod controllers drop such
values (see :func:`runtime.oci.resources.applicable_resources`) using the facts found here.

Terms:

usable hugetlb controller
    runc applies hugepage limits through the hierarchy it manages: in LEGACY and HYBRID mode a
    mounted v1 ``hugetlb`` hierarchy (a hybrid host where hugetlb is attached only to the
    cgroup2 ``unified`` mount does not count: runc in hybrid mode never writes v2 limits); in
    UNIFIED mode ``hugetlb`` listed in the root's ``cgroup.controllers``.
unified controllers
    The controllers whose v2 files (``memory.high``, ``pids.max``, …) the runtime can write:
    those of the root's ``cgroup.controllers`` in UNIFIED mode; None where the controllers are
    v1 (runc refuses ``unified`` there).
resctrl
    The RDT (cache allocation) filesystem; RDT classes need it mounted at ``/sys/fs/resctrl``.

:func:`host_resources` is pure (facts in, answer out); :func:`detect` is the thin reader, run
once at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from runtime.cgroups.mounts import CgroupMode, CgroupMounts

__all__ = ["HostResources", "detect", "host_resources", "page_size_name"]


@dataclass(frozen=True, slots=True)
class HostResources:
    """What the node can apply (see the module docstring). ``hugepage_sizes`` are named as
    the kubelet and runc name them (``2MB``, ``1GB``)."""

    hugetlb: bool = False
    hugepage_sizes: frozenset[str] = frozenset()
    unified_controllers: frozenset[str] | None = None
    rdt: bool = False
    blockio: bool = False


def page_size_name(kib: int) -> str:
    """``2048`` (the kB of ``/sys/kernel/mm/hugepages/hugepages-2048kB``) → ``2MB``; the
    kubelet's and runc's unit names (KB, MB, GB)."""
    for unit, size in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kib % size == 0:
            return f"{kib // size}{unit}"
    return f"{kib}KB"


def host_resources(
    mounts: CgroupMounts,
    *,
    root_controllers: Iterable[str] = (),
    hugepage_dirs: Iterable[str] = (),
    resctrl_mounted: bool = False,
) -> HostResources:
    """Decide from the facts: the cgroup mounts, the names in the v2 root's
    ``cgroup.controllers`` (only read in UNIFIED mode), the directory names under
    ``/sys/kernel/mm/hugepages`` (``hugepages-2048kB``) and whether resctrl is mounted."""
    sizes = set()
    for name in hugepage_dirs:
        digits = name.removeprefix("hugepages-").removesuffix("kB")
        if digits.isdigit():
            sizes.add(page_size_name(int(digits)))
    if mounts.mode is CgroupMode.UNIFIED:
        controllers = frozenset(root_controllers)
        return HostResources(
            hugetlb="hugetlb" in controllers,
            hugepage_sizes=frozenset(sizes),
            unified_controllers=controllers,
            rdt=resctrl_mounted,
            blockio="io" in controllers,
        )
    return HostResources(
        hugetlb="hugetlb" in mounts.v1,
        hugepage_sizes=frozenset(sizes),
        unified_controllers=None,
        rdt=resctrl_mounted,
        blockio="blkio" in mounts.v1,
    )


def detect(
    mounts: CgroupMounts,
    *,
    hugepages: Path = Path("/sys/kernel/mm/hugepages"),
    resctrl: Path = Path("/sys/fs/resctrl"),
) -> HostResources:
    """Read the facts for :func:`host_resources`. Blocking (a few small reads)."""
    controllers: list[str] = []
    if mounts.mode is CgroupMode.UNIFIED and mounts.unified is not None:
        try:
            controllers = (mounts.unified / "cgroup.controllers").read_text().split()
        except OSError:
            controllers = []
    try:
        dirs = [p.name for p in hugepages.iterdir()]
    except OSError:
        dirs = []
    return host_resources(
        mounts,
        root_controllers=controllers,
        hugepage_dirs=dirs,
        resctrl_mounted=(resctrl / "info").is_dir(),
    )
