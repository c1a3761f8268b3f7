"""NRI plugins as the runtime side keeps them, and the protocol's fixed facts: event numbers
and names, the event mask, plugin name and index rules (containerd's), settings, and how a
Synchronize is cut into chunks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cri.api.nri.v1alpha1 import api_pb2 as npb
from cri.nri.connection import PluginConnection
from runtime.errors import FailedPrecondition
from runtime.model.pods import Container, Resources, Sandbox

NRI_VERSION = "v0.12.2"
ALL_EVENTS = (1 << (npb.LAST - 1)) - 1
# fullmatch: "$" would let a trailing newline through, which containerd's checks refuse
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_INDEX = re.compile(r"[0-9]{2}")
# the largest Synchronize request pinnace sends (ttrpc refuses messages over 4 MiB)
_SYNC_CHUNK_BYTES = (4 << 20) - (64 << 10)

EVENT_NAMES: dict[int, str] = {
    npb.RUN_POD_SANDBOX: "RunPodSandbox",
    npb.UPDATE_POD_SANDBOX: "UpdatePodSandbox",
    npb.POST_UPDATE_POD_SANDBOX: "PostUpdatePodSandbox",
    npb.STOP_POD_SANDBOX: "StopPodSandbox",
    npb.REMOVE_POD_SANDBOX: "RemovePodSandbox",
    npb.CREATE_CONTAINER: "CreateContainer",
    npb.POST_CREATE_CONTAINER: "PostCreateContainer",
    npb.START_CONTAINER: "StartContainer",
    npb.POST_START_CONTAINER: "PostStartContainer",
    npb.UPDATE_CONTAINER: "UpdateContainer",
    npb.POST_UPDATE_CONTAINER: "PostUpdateContainer",
    npb.STOP_CONTAINER: "StopContainer",
    npb.REMOVE_CONTAINER: "RemoveContainer",
    npb.VALIDATE_CONTAINER_ADJUSTMENT: "ValidateContainerAdjustment",
}
# Notifications an older plugin may only know as StateChange.
STATE_CHANGE_FALLBACK = {
    npb.RUN_POD_SANDBOX,
    npb.POST_UPDATE_POD_SANDBOX,
    npb.STOP_POD_SANDBOX,
    npb.REMOVE_POD_SANDBOX,
    npb.POST_CREATE_CONTAINER,
    npb.START_CONTAINER,
    npb.POST_START_CONTAINER,
    npb.POST_UPDATE_CONTAINER,
    npb.REMOVE_CONTAINER,
}


def check_plugin_name(name: str) -> None:
    if not name:
        raise ValueError("invalid plugin name: name is empty")
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid plugin name {name!r}: use letters, digits and '-_.+'")


def check_plugin_index(index: str) -> None:
    if not _INDEX.fullmatch(index):
        raise ValueError(f"invalid plugin index {index!r}, must be 2 digits")


def event_names(mask: int) -> list[str]:
    return [name for event, name in EVENT_NAMES.items() if mask & (1 << (event - 1))]


@dataclass(frozen=True, slots=True)
class NriSettings:
    """``socket_path`` None: no socket (pre-installed plugins only)."""

    runtime_name: str
    runtime_version: str
    socket_path: Path | None = Path("/var/run/nri/nri.sock")
    plugin_path: Path | None = Path("/opt/nri/plugins")
    plugin_config_path: Path | None = Path("/etc/nri/conf.d")
    registration_timeout: float = 5.0
    request_timeout: float = 10.0


class PodView(Protocol):
    """What the adaptation needs of the pod layer (the composition root provides it)."""

    def sandboxes(self) -> list[Sandbox]: ...

    def containers(self) -> list[Container]: ...

    def sandbox(self, sandbox_id: str) -> Sandbox | None: ...

    def container(self, container_id: str) -> Container | None: ...

    def spec(self, container: Container) -> dict[str, Any] | None:
        """Blocking: the container's OCI spec as written, None when unreadable."""
        ...

    async def update_resources(self, container_id: str, resources: Resources) -> None: ...

    async def evict(self, container_id: str, reason: str) -> None: ...


Recorder = Callable[[str, str, str, float], None]  # plugin, operation, result, seconds


def no_record(plugin: str, operation: str, result: str, seconds: float) -> None:
    return None


@dataclass(eq=False)
class Plugin:
    """One connected plugin."""

    conn: PluginConnection
    index: str = ""
    name: str = ""
    external: bool = True
    events: int = 0
    calls: int = 0
    failures: int = 0
    process: asyncio.subprocess.Process | None = None
    registered: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ready: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.index or '??'}-{self.name or 'plugin'}"

    def wants(self, event: int) -> bool:
        return bool(self.events & (1 << (event - 1)))


class PluginFailed(FailedPrecondition):
    """A plugin answered an event with an error that fails the CRI call."""


def sync_chunks(
    pods: list[npb.PodSandbox], ctrs: list[npb.Container]
) -> list[tuple[list[npb.PodSandbox], list[npb.Container]]]:
    """Pods then containers, cut so each SynchronizeRequest stays under the limit (one
    chunk, possibly empty, when everything fits)."""
    chunks: list[tuple[list[npb.PodSandbox], list[npb.Container]]] = []
    cur_pods: list[npb.PodSandbox] = []
    cur_ctrs: list[npb.Container] = []
    size = 0
    items: list[npb.PodSandbox | npb.Container] = [*pods, *ctrs]
    for item in items:
        n = item.ByteSize() + 8
        if size + n > _SYNC_CHUNK_BYTES and (cur_pods or cur_ctrs):
            chunks.append((cur_pods, cur_ctrs))
            cur_pods, cur_ctrs, size = [], [], 0
        if isinstance(item, npb.PodSandbox):
            cur_pods.append(item)
        else:
            cur_ctrs.append(item)
        size += n
    chunks.append((cur_pods, cur_ctrs))
    return chunks
