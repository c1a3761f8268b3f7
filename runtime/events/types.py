"""Typed runtime events, their topics, and their JSON-ish form.

Terms:

event
    A frozen, slotted dataclass reporting one fact that is already durable (a task exited, a
    sandbox's network namespace exists). Each event class has a class-level ``topic``.
topic
    A path-like name for the kind of fact (``/tasks/exit``, ``/sandboxes/netns-created``).
    Exactly one event class per topic (see ``EVENT_TYPES``).
envelope
    What the exchange delivers: the event plus its topic, the containerd-style namespace it
    happened in (``k8s.io``) and the UTC time it was published.

``event_to_dict``/``event_from_dict`` are the transport edge: they turn events into plain
JSON-compatible dicts (tuples become lists, enums their values, datetimes ISO-8601 strings) and
back, validating on the way in. The gRPC Events API maps these dicts.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from runtime.codec import dataclass_from_plain, from_plain, to_plain
from runtime.errors import InvalidArgument, NotFound
from runtime.model.network import (
    Bandwidth,
    DnsConfig,
    IPConfig,
    NetworkInterface,
    PortMapping,
)

# The containerd-style namespace of everything the CRI creates (kubelet's pods, containers and
# images), as containerd's CRI plugin names it. The one definition for the tree.
K8S_NAMESPACE = "k8s.io"

_TOPIC_RE = re.compile(r"^(/[a-z0-9][a-z0-9_.-]*)+$")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,74}[A-Za-z0-9])?$")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidArgument(message)


def _nonempty(value: object, what: str) -> None:
    _require(isinstance(value, str) and value != "", f"{what} must be a non-empty string")


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a valid containerd-style namespace name (``k8s.io``)."""
    _require(
        isinstance(namespace, str) and bool(_NAMESPACE_RE.match(namespace)),
        f"invalid namespace {namespace!r}: letters, digits, '_', '.', '-' (max 76)",
    )
    return namespace


class Event:
    """Base of every event. Subclasses are frozen slotted dataclasses with a ``topic``."""

    __slots__ = ()
    topic: ClassVar[str]


# --- value types carried by events live in runtime.model.network (imported above) ---------


class NetworkOp(enum.Enum):
    """Which CNI operation a network event is about."""

    ADD = "ADD"
    DEL = "DEL"


# --- tasks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskCreate(Event):
    """A task (the process of a container) was created by the OCI runtime."""

    topic: ClassVar[str] = "/tasks/create"
    container_id: str
    pid: int = 0

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")
        _require(self.pid >= 0, "pid must not be negative")


@dataclass(frozen=True, slots=True)
class TaskStart(Event):
    """A task started running."""

    topic: ClassVar[str] = "/tasks/start"
    container_id: str
    pid: int

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")
        _require(self.pid > 0, "pid must be positive")


@dataclass(frozen=True, slots=True)
class TaskExit(Event):
    """A task's process (or one of its execs, ``exec_id`` non-empty) exited."""

    topic: ClassVar[str] = "/tasks/exit"
    container_id: str
    pid: int
    exit_status: int
    exited_at: datetime
    exec_id: str = ""

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")
        _require(self.exited_at.tzinfo is not None, "exited_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class TaskOOM(Event):
    """The kernel's OOM killer acted inside a task's cgroup."""

    topic: ClassVar[str] = "/tasks/oom"
    container_id: str

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")


@dataclass(frozen=True, slots=True)
class TaskDelete(Event):
    """A task was deleted from the OCI runtime; its exit status is final."""

    topic: ClassVar[str] = "/tasks/delete"
    container_id: str
    pid: int = 0
    exit_status: int = 0

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")


# --- containers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerCreate(Event):
    """A container record was created."""

    topic: ClassVar[str] = "/containers/create"
    container_id: str
    image: str = ""
    sandbox_id: str = ""

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")


@dataclass(frozen=True, slots=True)
class ContainerUpdate(Event):
    """A container record (resources, labels) changed."""

    topic: ClassVar[str] = "/containers/update"
    container_id: str

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")


@dataclass(frozen=True, slots=True)
class ContainerDelete(Event):
    """A container record was removed."""

    topic: ClassVar[str] = "/containers/delete"
    container_id: str
    sandbox_id: str = ""

    def __post_init__(self) -> None:
        _nonempty(self.container_id, "container_id")


# --- sandboxes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SandboxCreate(Event):
    """A pod sandbox record was created."""

    topic: ClassVar[str] = "/sandboxes/create"
    sandbox_id: str

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")


@dataclass(frozen=True, slots=True)
class SandboxStart(Event):
    """A pod sandbox is ready (namespaces pinned, network attached)."""

    topic: ClassVar[str] = "/sandboxes/start"
    sandbox_id: str

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")


@dataclass(frozen=True, slots=True)
class SandboxStop(Event):
    """A pod sandbox was stopped."""

    topic: ClassVar[str] = "/sandboxes/stop"
    sandbox_id: str

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")


@dataclass(frozen=True, slots=True)
class SandboxDelete(Event):
    """A pod sandbox was removed."""

    topic: ClassVar[str] = "/sandboxes/delete"
    sandbox_id: str

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")


@dataclass(frozen=True, slots=True)
class SandboxNetnsCreated(Event):
    """A pod's network namespace is pinned at ``netns_path`` and waits for its network.

    The network manager answers with ``NetworkAttached`` or ``NetworkFailed`` for the same
    ``sandbox_id``. ``pod_name``/``pod_namespace``/``pod_uid`` are the Kubernetes pod's identity
    (they become ``K8S_POD_*`` CNI args).
    """

    topic: ClassVar[str] = "/sandboxes/netns-created"
    sandbox_id: str
    netns_path: str
    pod_name: str
    pod_namespace: str
    pod_uid: str
    port_mappings: tuple[PortMapping, ...] = ()
    dns: DnsConfig | None = None
    bandwidth: Bandwidth | None = None

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")
        _require(
            isinstance(self.netns_path, str) and self.netns_path.startswith("/"),
            f"netns_path must be an absolute path, got {self.netns_path!r}",
        )
        _require(isinstance(self.port_mappings, tuple), "port_mappings must be a tuple")
        _require(
            all(isinstance(p, PortMapping) for p in self.port_mappings),
            "port_mappings must hold PortMapping values",
        )


@dataclass(frozen=True, slots=True)
class SandboxNetnsRemoving(Event):
    """A pod's network namespace is about to be unpinned: detach it from the network now.

    ``netns_path`` may be empty when the namespace is already gone (CNI DEL still runs so
    plugins free IPs and rules). The network manager answers with ``NetworkDetached`` or
    ``NetworkFailed`` (op DEL).
    """

    topic: ClassVar[str] = "/sandboxes/netns-removing"
    sandbox_id: str
    netns_path: str = ""
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    port_mappings: tuple[PortMapping, ...] = ()

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")
        _require(
            self.netns_path == "" or self.netns_path.startswith("/"),
            f"netns_path must be empty or absolute, got {self.netns_path!r}",
        )


# --- network --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkAttached(Event):
    """CNI ADD succeeded for a sandbox: the pod's interfaces, addresses and DNS."""

    topic: ClassVar[str] = "/network/attached"
    sandbox_id: str
    interfaces: tuple[NetworkInterface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    dns: DnsConfig | None = None

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")
        _require(isinstance(self.interfaces, tuple), "interfaces must be a tuple")
        _require(isinstance(self.ips, tuple), "ips must be a tuple")


@dataclass(frozen=True, slots=True)
class NetworkFailed(Event):
    """A CNI operation for a sandbox failed; ``message`` names the plugin and its error."""

    topic: ClassVar[str] = "/network/failed"
    sandbox_id: str
    message: str
    op: NetworkOp

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")
        _require(isinstance(self.op, NetworkOp), "op must be a NetworkOp")


@dataclass(frozen=True, slots=True)
class NetworkDetached(Event):
    """CNI DEL succeeded for a sandbox."""

    topic: ClassVar[str] = "/network/detached"
    sandbox_id: str

    def __post_init__(self) -> None:
        _nonempty(self.sandbox_id, "sandbox_id")


# --- images and snapshots -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageCreate(Event):
    """An image record was created."""

    topic: ClassVar[str] = "/images/create"
    name: str

    def __post_init__(self) -> None:
        _nonempty(self.name, "image name")


@dataclass(frozen=True, slots=True)
class ImageUpdate(Event):
    """An image record now points at different content."""

    topic: ClassVar[str] = "/images/update"
    name: str

    def __post_init__(self) -> None:
        _nonempty(self.name, "image name")


@dataclass(frozen=True, slots=True)
class ImageDelete(Event):
    """An image record was removed."""

    topic: ClassVar[str] = "/images/delete"
    name: str

    def __post_init__(self) -> None:
        _nonempty(self.name, "image name")


@dataclass(frozen=True, slots=True)
class SnapshotPrepare(Event):
    """An active snapshot was prepared (``parent`` empty for a base layer)."""

    topic: ClassVar[str] = "/snapshots/prepare"
    key: str
    parent: str = ""

    def __post_init__(self) -> None:
        _nonempty(self.key, "snapshot key")


@dataclass(frozen=True, slots=True)
class SnapshotCommit(Event):
    """An active snapshot ``key`` was committed as ``name``."""

    topic: ClassVar[str] = "/snapshots/commit"
    key: str
    name: str = ""

    def __post_init__(self) -> None:
        _nonempty(self.key, "snapshot key")


@dataclass(frozen=True, slots=True)
class SnapshotRemove(Event):
    """A snapshot was removed."""

    topic: ClassVar[str] = "/snapshots/remove"
    key: str

    def __post_init__(self) -> None:
        _nonempty(self.key, "snapshot key")


_ALL: tuple[type[Event], ...] = (
    TaskCreate,
    TaskStart,
    TaskExit,
    TaskOOM,
    TaskDelete,
    ContainerCreate,
    ContainerUpdate,
    ContainerDelete,
    SandboxCreate,
    SandboxStart,
    SandboxStop,
    SandboxDelete,
    SandboxNetnsCreated,
    SandboxNetnsRemoving,
    NetworkAttached,
    NetworkFailed,
    NetworkDetached,
    ImageCreate,
    ImageUpdate,
    ImageDelete,
    SnapshotPrepare,
    SnapshotCommit,
    SnapshotRemove,
)

EVENT_TYPES: Mapping[str, type[Event]] = types.MappingProxyType({c.topic: c for c in _ALL})
"""The registry: topic → event class. Read-only."""

assert len(EVENT_TYPES) == len(_ALL), "two event classes share a topic"
assert all(_TOPIC_RE.match(t) for t in EVENT_TYPES)


def event_class(topic: str) -> type[Event]:
    """The event class for ``topic``; NotFound for a topic nobody defined."""
    try:
        return EVENT_TYPES[topic]
    except KeyError:
        raise NotFound(f"no event type for topic {topic!r}") from None


@dataclass(frozen=True, slots=True)
class Envelope:
    """An event as delivered: its topic, namespace and the UTC time it was published."""

    topic: str
    namespace: str
    timestamp: datetime
    event: Event = field(repr=True)

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)
        _require(isinstance(self.event, Event), "envelope event must be an Event")
        _require(
            self.topic == self.event.topic,
            f"envelope topic {self.topic!r} does not match event topic {self.event.topic!r}",
        )
        _require(self.timestamp.tzinfo is not None, "envelope timestamp must be timezone-aware")


# --- dict transport -------------------------------------------------------------------------


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-compatible dict of the event's fields (without the topic)."""
    result = to_plain(event)
    assert isinstance(result, dict)
    return result


def event_from_dict(topic: str, data: Mapping[str, Any]) -> Event:
    """Rebuild (and validate) the event for ``topic`` from ``event_to_dict`` output."""
    cls = event_class(topic)
    event = dataclass_from_plain(cls, data, topic)
    assert isinstance(event, Event)
    return event


def envelope_to_dict(envelope: Envelope) -> dict[str, Any]:
    """``{"topic", "namespace", "timestamp", "event"}`` with the event as a plain dict."""
    return {
        "topic": envelope.topic,
        "namespace": envelope.namespace,
        "timestamp": envelope.timestamp.astimezone(UTC).isoformat(),
        "event": event_to_dict(envelope.event),
    }


def envelope_from_dict(data: Mapping[str, Any]) -> Envelope:
    """The inverse of ``envelope_to_dict``."""
    _require(isinstance(data, Mapping), "envelope must be an object")
    for key in ("topic", "namespace", "timestamp", "event"):
        _require(key in data, f"envelope lacks {key!r}")
    topic = data["topic"]
    _require(isinstance(topic, str), "envelope topic must be a string")
    return Envelope(
        topic=topic,
        namespace=data["namespace"],
        timestamp=from_plain(datetime, data["timestamp"], "timestamp"),
        event=event_from_dict(topic, data["event"]),
    )
