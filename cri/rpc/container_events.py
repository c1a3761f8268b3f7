"""GetContainerEvents: the CRI stream behind kubelet's evented PLEG. Each container (and pod
sandbox) lifecycle fact from the event exchange becomes one response carrying the pod's status
and its containers' statuses as they are after the fact.

The kubelet keys every event by ``pod_sandbox_status.metadata.uid`` and drops events without
it, and it builds the pod's status from ``containers_statuses`` (an event with empty statuses
made it think containers were gone). A fact can be handled after its pod's record is removed
(RemovePodSandbox deletes the containers, then the sandbox), so each stream remembers the last
status it knew of each pod and sends that one, NOTREADY, for a pod already removed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc import containers
from cri.rpc.deps import Deps
from cri.translate import pods
from runtime.events import types as ev

_TOPICS = (
    'topic=="/containers/create"',
    'topic=="/tasks/start"',
    'topic=="/tasks/exit"',
    'topic=="/containers/delete"',
    'topic=="/sandboxes/start"',
    'topic=="/sandboxes/stop"',
    'topic=="/sandboxes/delete"',
)


def _classify(event: ev.Event, deps: Deps) -> tuple[str, int, str] | None:
    """(the container or sandbox id, the CRI event type, the sandbox id) of a fact."""
    if isinstance(event, ev.ContainerCreate):
        return event.container_id, pb.CONTAINER_CREATED_EVENT, event.sandbox_id
    if isinstance(event, ev.TaskStart | ev.TaskExit):
        container = deps.pods.get_container(event.container_id)
        if container is None:
            return None
        kind = (
            pb.CONTAINER_STARTED_EVENT
            if isinstance(event, ev.TaskStart)
            else pb.CONTAINER_STOPPED_EVENT
        )
        return event.container_id, kind, container.sandbox_id
    if isinstance(event, ev.ContainerDelete):
        return event.container_id, pb.CONTAINER_DELETED_EVENT, event.sandbox_id
    if isinstance(event, ev.SandboxStart):
        return event.sandbox_id, pb.CONTAINER_STARTED_EVENT, event.sandbox_id
    if isinstance(event, ev.SandboxStop):
        return event.sandbox_id, pb.CONTAINER_STOPPED_EVENT, event.sandbox_id
    if isinstance(event, ev.SandboxDelete):
        return event.sandbox_id, pb.CONTAINER_DELETED_EVENT, event.sandbox_id
    return None


async def get_container_events(
    deps: Deps, request: pb.GetEventsRequest, context: Any
) -> AsyncIterator[pb.ContainerEventResponse]:
    async with deps.exchange.subscribe(*_TOPICS) as subscription:
        known = {s.id: pods.sandbox_status(s) for s in deps.pods.list_sandboxes()}
        # initial metadata tells the client it is subscribed: nothing after this is missed
        await context.send_initial_metadata(())
        async for envelope in subscription:
            classified = _classify(envelope.event, deps)
            if classified is None:
                continue
            subject, kind, sandbox_id = classified
            response = pb.ContainerEventResponse(
                container_id=subject,
                container_event_type=kind,  # type: ignore[arg-type]
                created_at=int(envelope.timestamp.timestamp() * 1e9) or time.time_ns(),
            )
            sandbox = deps.pods.get_sandbox(sandbox_id) if sandbox_id else None
            if sandbox is not None:
                known[sandbox_id] = pods.sandbox_status(sandbox)
            status = known.get(sandbox_id)
            if status is None:
                continue  # a pod this stream never knew: nothing to key the event by
            if sandbox is None:
                status.state = pb.SANDBOX_NOTREADY
            response.pod_sandbox_status.CopyFrom(status)
            response.containers_statuses.extend(
                containers.status_of(deps, c) for c in deps.pods.containers_of(sandbox_id)
            )
            if kind == pb.CONTAINER_DELETED_EVENT and subject == sandbox_id:
                known.pop(sandbox_id, None)
            yield response
