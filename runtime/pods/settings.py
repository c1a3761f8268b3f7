"""What the pod controllers need to know of the node and the configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.cgroups.host import HostResources
from runtime.cgroups.mounts import CgroupDriver
from runtime.oci.lsm import HostSecurityModules
from runtime.tasks.features import HandlerFeatures


@dataclass(frozen=True, slots=True)
class PodSettings:
    """``state_dir`` holds per-sandbox and per-container directories (mounts, pinned
    namespaces, bundles); it lives on a tmpfs-like runtime directory and does not survive a
    reboot. ``cgroup_v2`` tells whether containers get cgroup v2 semantics. ``host_resources``
    is what the node can apply (resources it cannot are dropped, hugepage limits only when
    ``tolerate_missing_hugetlb_controller``). ``handler_features`` is what each handler's
    OCI runtime stated at start (``<binary> features``); ``security_modules`` the host's
    enabled AppArmor / SELinux."""

    state_dir: Path
    sandbox_image: str
    default_handler: str
    handlers: tuple[str, ...]
    shm_size: int = 64 * 1024 * 1024
    always_infra: bool = False
    cgroup_driver: CgroupDriver = CgroupDriver.CGROUPFS
    cgroup_v2: bool = False
    default_cgroup_parent: str = "/pinnace"
    stop_timeout_on_remove: float = 0.0
    host_resources: HostResources = field(default_factory=HostResources)
    tolerate_missing_hugetlb_controller: bool = True
    handler_features: Mapping[str, HandlerFeatures] = field(default_factory=dict)
    security_modules: HostSecurityModules = field(default_factory=HostSecurityModules)

    def handler(self, requested: str) -> str:
        """The handler a pod runs with: the requested one, or the default for ""."""
        return requested or self.default_handler

    def features(self, handler: str) -> HandlerFeatures:
        """What the OCI runtime of ``handler`` ("" for the default) stated it can do."""
        return self.handler_features.get(self.handler(handler), HandlerFeatures())
