"""Event types: validation when built, the topic registry and the dict round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from runtime.errors import InvalidArgument, NotFound
from runtime.events import types as t
from runtime.model.network import (
    Bandwidth,
    DnsConfig,
    IPConfig,
    NetworkInterface,
    PortMapping,
    PortProtocol,
)


def test_every_topic_is_registered_once_and_path_like() -> None:
    assert t.EVENT_TYPES["/tasks/exit"] is t.TaskExit
    assert t.EVENT_TYPES["/sandboxes/netns-created"] is t.SandboxNetnsCreated
    assert all(topic.startswith("/") for topic in t.EVENT_TYPES)
    with pytest.raises(NotFound):
        t.event_class("/nope")


def test_events_are_frozen_and_slotted() -> None:
    event = t.SandboxStart(sandbox_id="s1")
    with pytest.raises(AttributeError):
        event.sandbox_id = "s2"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


@pytest.mark.parametrize(
    "build",
    [
        lambda: t.TaskExit(container_id="", pid=1, exit_status=0, exited_at=datetime.now(UTC)),
        lambda: t.TaskExit(container_id="c", pid=1, exit_status=0, exited_at=datetime.now()),
        lambda: PortMapping(PortProtocol.TCP, container_port=0, host_port=80),
        lambda: PortMapping(PortProtocol.TCP, container_port=80, host_port=80, host_ip="x"),
        lambda: t.SandboxNetnsCreated(
            sandbox_id="s", netns_path="relative", pod_name="p", pod_namespace="n", pod_uid="u"
        ),
        lambda: IPConfig(address="10.0.0.300/24"),
        lambda: t.NetworkFailed(sandbox_id="s", message="m", op="ADD"),  # type: ignore[arg-type]
    ],
)
def test_invalid_events_are_rejected_when_built(build) -> None:
    with pytest.raises(InvalidArgument):
        build()


def _netns_created() -> t.SandboxNetnsCreated:
    return t.SandboxNetnsCreated(
        sandbox_id="sb1",
        netns_path="/run/pinnace/sandboxes/sb1/ns/net",
        pod_name="web",
        pod_namespace="default",
        pod_uid="uid-1",
        port_mappings=(PortMapping(PortProtocol.TCP, 80, 8080, "127.0.0.1"),),
        dns=DnsConfig(servers=("10.96.0.10",), searches=("svc.cluster.local",)),
        bandwidth=Bandwidth(ingress_rate=1000, ingress_burst=10),
    )


@pytest.mark.parametrize(
    "event",
    [
        _netns_created(),
        t.TaskExit(container_id="c", pid=7, exit_status=137, exited_at=datetime.now(UTC)),
        t.NetworkAttached(
            sandbox_id="sb1",
            interfaces=(NetworkInterface("eth0", "aa:bb:cc:dd:ee:ff", "/ns"),),
            ips=(IPConfig("10.1.0.2/24", "10.1.0.1", 0), IPConfig("fd00::2/64")),
        ),
        t.NetworkFailed(sandbox_id="sb1", message="boom", op=t.NetworkOp.DEL),
        t.SnapshotCommit(key="k", name="n"),
    ],
)
def test_dict_round_trip_through_json(event: t.Event) -> None:
    data = json.loads(json.dumps(t.event_to_dict(event)))
    assert t.event_from_dict(event.topic, data) == event
    envelope = t.Envelope(event.topic, "k8s.io", datetime.now(UTC), event)
    assert t.envelope_from_dict(json.loads(json.dumps(t.envelope_to_dict(envelope)))) == envelope


def test_event_from_dict_validates() -> None:
    data = t.event_to_dict(_netns_created())
    data["port_mappings"][0]["protocol"] = "icmp"
    with pytest.raises(InvalidArgument, match="protocol"):
        t.event_from_dict("/sandboxes/netns-created", data)
    with pytest.raises(InvalidArgument, match="unknown fields"):
        t.event_from_dict("/sandboxes/start", {"sandbox_id": "s", "extra": 1})
    with pytest.raises(InvalidArgument):
        t.event_from_dict("/sandboxes/start", {})


def test_envelope_topic_must_match_event() -> None:
    with pytest.raises(InvalidArgument):
        t.Envelope("/tasks/exit", "k8s.io", datetime.now(UTC), t.SandboxStart(sandbox_id="s"))
    with pytest.raises(InvalidArgument):
        t.Envelope("/sandboxes/start", "bad ns", datetime.now(UTC), t.SandboxStart("s"))
