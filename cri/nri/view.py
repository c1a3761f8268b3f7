"""The pod layer as NRI sees it: records from memory, specs from bundles, updates and
evictions through the controllers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from runtime import oci
from runtime.model.pods import Container, Resources, Sandbox
from runtime.pods.service import PodService

log = logging.getLogger(__name__)


class PodServiceView:
    """:class:`cri.nri.adaptation.PodView` over a :class:`PodService`."""

    def __init__(self, pods: PodService) -> None:
        self._pods = pods

    def sandboxes(self) -> list[Sandbox]:
        return self._pods.list_sandboxes()

    def containers(self) -> list[Container]:
        return self._pods.list_containers()

    def sandbox(self, sandbox_id: str) -> Sandbox | None:
        return self._pods.get_sandbox(sandbox_id)

    def container(self, container_id: str) -> Container | None:
        return self._pods.get_container(container_id)

    def spec(self, container: Container) -> dict[str, Any] | None:
        try:
            return oci.read_spec(Path(container.bundle) / "config.json")
        except (OSError, ValueError):
            return None

    async def update_resources(self, container_id: str, resources: Resources) -> None:
        await self._pods.containers.update_resources(container_id, resources, run_hooks=False)

    async def evict(self, container_id: str, reason: str) -> None:
        # An eviction stops the container at once; kubelet sees it exit and acts on it.
        await self._pods.containers.stop(container_id, timeout=0)
