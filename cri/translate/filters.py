"""List filters of the CRI (ListPodSandbox, ListContainers and the stats lists), applied to
the runtime's sandboxes and containers.

Terms:

short id
    A prefix of a full id, as crictl prints and accepts them. containerd and CRI-O resolve a
    filter's id to the one full id it is a prefix of; an id that is a prefix of several (and
    equal to none) or of nothing matches nothing. :meth:`SandboxFilter.apply` and
    :meth:`ContainerFilter.apply` do the same. ``matches`` alone is the per-item test (a
    prefix test), for callers that have a single item.
label selector
    Every key must be present among the item's labels with the same value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.errors import InvalidArgument
from runtime.model.pods import Container, ContainerState, Sandbox, SandboxState

__all__ = ["ContainerFilter", "SandboxFilter", "labels_match", "resolve_id"]

_SANDBOX_STATES = {pb.SANDBOX_READY: SandboxState.READY, pb.SANDBOX_NOTREADY: SandboxState.NOTREADY}
_CONTAINER_STATES = {
    pb.CONTAINER_CREATED: ContainerState.CREATED,
    pb.CONTAINER_RUNNING: ContainerState.RUNNING,
    pb.CONTAINER_EXITED: ContainerState.EXITED,
    pb.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
}


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Every key of ``selector`` is in ``labels`` with the same value."""
    return all(k in labels and labels[k] == v for k, v in selector.items())


def resolve_id(prefix: str, ids: Iterable[str]) -> str | None:
    """The one full id ``prefix`` names among ``ids``: an exact match wins, else the only id
    it is a prefix of; None when it names none or several."""
    found = None
    for full in ids:
        if full == prefix:
            return full
        if full.startswith(prefix):
            if found is not None and found != full:
                found = ""  # ambiguous, unless an exact match turns up later
            elif found is None:
                found = full
    return found or None


@dataclass(frozen=True, slots=True)
class SandboxFilter:
    """A sandbox filter; empty fields match everything."""

    id: str = ""
    state: SandboxState | None = None
    label_selector: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_pb(cls, msg: pb.PodSandboxFilter | pb.PodSandboxStatsFilter | None) -> SandboxFilter:
        """From a ListPodSandbox (or ListPodSandboxStats) filter; None matches everything."""
        if msg is None:
            return cls()
        state = None
        if isinstance(msg, pb.PodSandboxFilter) and msg.HasField("state"):
            try:
                state = _SANDBOX_STATES[msg.state.state]
            except KeyError:
                raise InvalidArgument(f"filter.state: unknown value {msg.state.state}") from None
        return cls(id=msg.id, state=state, label_selector=dict(msg.label_selector))

    def matches(self, sandbox: Sandbox) -> bool:
        """Per-item test; the id is a prefix test (see :meth:`apply` for short ids)."""
        return (
            sandbox.id.startswith(self.id)
            and (self.state is None or sandbox.state is self.state)
            and labels_match(sandbox.config.labels, self.label_selector)
        )

    def apply(self, items: Iterable[Sandbox]) -> list[Sandbox]:
        """The sandboxes the filter selects, with a short id resolved first."""
        items = list(items)
        if not self.id:
            return [s for s in items if self.matches(s)]
        full = resolve_id(self.id, (s.id for s in items))
        if full is None:
            return []
        return [s for s in items if s.id == full and self.matches(s)]


@dataclass(frozen=True, slots=True)
class ContainerFilter:
    """A container filter; empty fields match everything. ``pod_sandbox_id`` may be short."""

    id: str = ""
    state: ContainerState | None = None
    pod_sandbox_id: str = ""
    label_selector: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_pb(cls, msg: pb.ContainerFilter | pb.ContainerStatsFilter | None) -> ContainerFilter:
        """From a ListContainers (or ListContainerStats) filter; None matches everything."""
        if msg is None:
            return cls()
        state = None
        if isinstance(msg, pb.ContainerFilter) and msg.HasField("state"):
            try:
                state = _CONTAINER_STATES[msg.state.state]
            except KeyError:
                raise InvalidArgument(f"filter.state: unknown value {msg.state.state}") from None
        return cls(
            id=msg.id,
            state=state,
            pod_sandbox_id=msg.pod_sandbox_id,
            label_selector=dict(msg.label_selector),
        )

    def matches(self, container: Container) -> bool:
        """Per-item test; ids are prefix tests (see :meth:`apply` for short ids)."""
        return (
            container.id.startswith(self.id)
            and container.sandbox_id.startswith(self.pod_sandbox_id)
            and (self.state is None or container.state is self.state)
            and labels_match(container.config.labels, self.label_selector)
        )

    def apply(
        self, items: Iterable[Container], *, sandbox_ids: Collection[str] | None = None
    ) -> list[Container]:
        """The containers the filter selects, with short ids resolved first. A short
        ``pod_sandbox_id`` is resolved among ``sandbox_ids`` (every known sandbox, as
        containerd resolves it against its sandbox store), or, when None, among the
        containers' sandboxes."""
        items = list(items)
        container_id = sandbox_id = None
        if self.id:
            container_id = resolve_id(self.id, (c.id for c in items))
            if container_id is None:
                return []
        if self.pod_sandbox_id:
            known = sandbox_ids if sandbox_ids is not None else {c.sandbox_id for c in items}
            sandbox_id = resolve_id(self.pod_sandbox_id, known)
            if sandbox_id is None:
                return []
        return [
            c
            for c in items
            if (container_id is None or c.id == container_id)
            and (sandbox_id is None or c.sandbox_id == sandbox_id)
            and self.matches(c)
        ]
