"""A sandbox's network, reached through the event exchange.

The sandbox controller does not call CNI. It publishes the fact that a pod's network namespace
exists (``/sandboxes/netns-created``, with the pod's identity and port mappings) and awaits,
with a deadline, the network manager's answer for that sandbox (``/network/attached`` or
``/network/failed``). Teardown is the same in reverse (``/sandboxes/netns-removing`` →
``/network/detached``). Any other subscriber, an SDN agent say, sees the same facts.
"""

from __future__ import annotations

from collections.abc import Mapping

from runtime import units
from runtime.errors import FailedPrecondition, InvalidArgument
from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.model.network import Bandwidth
from runtime.model.pods import Sandbox

INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"


def _bits_per_second(value: str, annotation: str) -> int:
    try:
        return int(units.parse_quantity(value))
    except InvalidArgument:
        raise InvalidArgument(
            f"annotation {annotation}={value!r} is not a quantity like '10M' (bits per second)"
        ) from None


def bandwidth(annotations: Mapping[str, str]) -> Bandwidth | None:
    """The pod's traffic shaping from the usual Kubernetes annotations (None if unset). The
    burst is what kubelet's kubenet used: as large as the rate allows in one second."""
    ingress = annotations.get(INGRESS_ANNOTATION)
    egress = annotations.get(EGRESS_ANNOTATION)
    if not ingress and not egress:
        return None
    ingress_rate = _bits_per_second(ingress, INGRESS_ANNOTATION) if ingress else 0
    egress_rate = _bits_per_second(egress, EGRESS_ANNOTATION) if egress else 0
    return Bandwidth(
        ingress_rate=ingress_rate,
        ingress_burst=ingress_rate,
        egress_rate=egress_rate,
        egress_burst=egress_rate,
    )


class EventNetwork:
    """Attach and detach sandboxes by publishing facts and awaiting the network manager's."""

    def __init__(self, exchange: Exchange, *, timeout: float) -> None:
        self._exchange = exchange
        self._timeout = timeout

    async def attach(self, sandbox: Sandbox) -> tuple[str, ...]:
        """Publish the sandbox's netns; return its IPs once the network manager attached it."""
        meta = sandbox.config.metadata
        fact = ev.SandboxNetnsCreated(
            sandbox_id=sandbox.id,
            netns_path=sandbox.namespace_paths["net"],
            pod_name=meta.name,
            pod_namespace=meta.namespace,
            pod_uid=meta.uid,
            port_mappings=sandbox.config.port_mappings,
            dns=sandbox.config.dns,
            bandwidth=bandwidth(sandbox.config.annotations),
        )
        answer = await self._exchange.wait_for(
            f'topic~="^/network/(attached|failed)$",event.sandbox_id=="{sandbox.id}"',
            trigger=lambda: self._exchange.publish(ev.K8S_NAMESPACE, fact),
            timeout=self._timeout,
        )
        event = answer.event
        if isinstance(event, ev.NetworkFailed):
            raise FailedPrecondition(f"failed to set up the pod network: {event.message}")
        assert isinstance(event, ev.NetworkAttached)
        return tuple(ip.address.split("/", 1)[0] for ip in event.ips)

    async def detach(self, sandbox: Sandbox) -> None:
        """Publish that the sandbox's netns is going; return once it is detached."""
        meta = sandbox.config.metadata
        await self._detach(
            ev.SandboxNetnsRemoving(
                sandbox_id=sandbox.id,
                netns_path=sandbox.namespace_paths.get("net", ""),
                pod_name=meta.name,
                pod_namespace=meta.namespace,
                pod_uid=meta.uid,
                port_mappings=sandbox.config.port_mappings,
            )
        )

    async def detach_orphan(self, sandbox_id: str, netns_path: str) -> None:
        """Detach what a crash left half-made: a sandbox with no record (CNI DEL works from
        the result cached at ADD, or from the current config)."""
        await self._detach(ev.SandboxNetnsRemoving(sandbox_id=sandbox_id, netns_path=netns_path))

    async def _detach(self, fact: ev.SandboxNetnsRemoving) -> None:
        sandbox_id = fact.sandbox_id
        answer = await self._exchange.wait_for(
            f'topic~="^/network/(detached|failed)$",event.sandbox_id=="{sandbox_id}"',
            trigger=lambda: self._exchange.publish(ev.K8S_NAMESPACE, fact),
            timeout=self._timeout,
        )
        if isinstance(answer.event, ev.NetworkFailed):
            raise FailedPrecondition(f"failed to tear down the pod network: {answer.event.message}")
