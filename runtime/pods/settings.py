"""What the pod controllers need to know of the node and the configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PodSettings:
    """``state_dir`` holds per-sandbox and per-container directories (mounts, pinned
    namespaces, bundles); it lives on a tmpfs-like runtime directory and does not survive a
    reboot. ``cgroup_v2`` tells whether containers get cgroup v2 semantics."""

    state_dir: Path
    sandbox_image: str
    default_handler: str
    handlers: tuple[str, ...]
    shm_size: int = 64 * 1024 * 1024
    always_infra: bool = False
    cgroup_driver: str = "cgroupfs"
    cgroup_v2: bool = False
    default_cgroup_parent: str = "/pinnace"
    network_timeout: float = 120.0
    stop_timeout_on_remove: float = 0.0

    def handler(self, requested: str) -> str:
        """The handler a pod runs with: the requested one, or the default for ""."""
        return requested or self.default_handler
