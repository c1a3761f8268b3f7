"""The Events gRPC API over a real exchange, served in-process through pinnace's own server
(interceptor and error mapping included) on a unix socket."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc import aio

from cri.api.pinnace.events.v1 import events_pb2 as epb
from cri.api.pinnace.events.v1 import events_pb2_grpc as epb_grpc
from cri.cli import events as cli_events
from cri.cli.client import Client
from cri.metrics import Metrics
from cri.rpc import events as events_rpc
from cri.server import build_server
from runtime.events import Envelope, Exchange, event_from_dict, event_to_dict
from runtime.events import types as t
from runtime.model.network import (
    Bandwidth,
    DnsConfig,
    IPConfig,
    NetworkInterface,
    PortMapping,
    PortProtocol,
)

EXITED_AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


class StreamCount:
    """Follows the servicer's live-stream count so a test can await a value (a fact)."""

    def __init__(self) -> None:
        self.value = 0
        self._changed = asyncio.Condition()

    def __call__(self, count: int) -> None:
        self.value = count
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, count: int, *, timeout: float = 10) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.value == count)


@dataclass
class Served:
    exchange: Exchange
    servicer: events_rpc.EventsServicer
    streams: StreamCount
    stub: epb_grpc.EventsStub
    target: str


async def _serve(queue_size: int = 64) -> AsyncIterator[Served]:
    exchange = Exchange()
    streams = StreamCount()
    servicer = events_rpc.servicer(exchange, queue_size=queue_size, on_streams_changed=streams)
    server = build_server(Metrics())
    epb_grpc.add_EventsServicer_to_server(servicer, server)
    # pytest's tmp_path can exceed the 107-byte limit of a unix socket path.
    with tempfile.TemporaryDirectory(prefix="pev-", dir="/tmp") as tmp:
        target = f"unix:{Path(tmp) / 'events.sock'}"
        server.add_insecure_port(target)
        await server.start()
        try:
            async with aio.insecure_channel(target) as channel:
                yield Served(exchange, servicer, streams, epb_grpc.EventsStub(channel), target)
        finally:
            await server.stop(None)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async for s in _serve():
        yield s


@pytest.fixture
async def served_small_queue() -> AsyncIterator[Served]:
    async for s in _serve(queue_size=4):
        yield s


def _exit(container_id: str) -> t.TaskExit:
    return t.TaskExit(container_id=container_id, pid=4242, exit_status=137, exited_at=EXITED_AT)


def _publish_request(event: t.Event, namespace: str = "k8s.io") -> epb.PublishRequest:
    return epb.PublishRequest(
        topic=event.topic, namespace=namespace, event_json=json.dumps(event_to_dict(event))
    )


async def _subscribe(served: Served, *filters: str) -> aio.UnaryStreamCall:
    call = served.stub.Subscribe(epb.SubscribeRequest(filters=list(filters)), timeout=30)
    await call.initial_metadata()  # sent once the subscription exists
    return call


async def test_subscriber_receives_exactly_the_matching_event_intact(served: Served) -> None:
    call = await _subscribe(served, 'topic=="/tasks/exit",namespace=="k8s.io"')
    assert served.exchange.subscriber_count == 1

    await served.stub.Publish(_publish_request(t.ImageCreate(name="busybox:1")), timeout=10)
    await served.stub.Publish(_publish_request(_exit("other-ns"), namespace="moby"), timeout=10)
    reply = await served.stub.Publish(_publish_request(_exit("c1")), timeout=10)
    await served.stub.Publish(_publish_request(_exit("c2")), timeout=10)

    first = await call.read()
    assert (first.topic, first.namespace) == ("/tasks/exit", "k8s.io")
    assert event_from_dict(first.topic, json.loads(first.event_json)) == _exit("c1")
    assert first.timestamp == reply.timestamp
    assert first.timestamp.ToDatetime(tzinfo=UTC).tzinfo is UTC
    # The next one is the next matching event: the image and the other namespace were skipped.
    second = await call.read()
    assert event_from_dict(second.topic, json.loads(second.event_json)) == _exit("c2")
    call.cancel()


async def test_nested_payload_round_trips(served: Served) -> None:
    event = t.SandboxNetnsCreated(
        sandbox_id="sb1",
        netns_path="/run/netns/x",
        pod_name="p",
        pod_namespace="default",
        pod_uid="u1",
        port_mappings=(PortMapping(PortProtocol.UDP, container_port=53, host_port=5353),),
        dns=DnsConfig(servers=("10.0.0.10",), searches=("svc.cluster.local",)),
        bandwidth=Bandwidth(ingress_rate=2**60),  # beyond a double's exact integers
    )
    call = await _subscribe(served)
    served.exchange.publish("k8s.io", event)
    got = await call.read()
    assert event_from_dict(got.topic, json.loads(got.event_json)) == event
    call.cancel()


async def test_invalid_filter_is_invalid_argument_and_leaves_no_subscription(
    served: Served,
) -> None:
    call = served.stub.Subscribe(epb.SubscribeRequest(filters=["topic=="]), timeout=10)
    with pytest.raises(aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid filter" in (info.value.details() or "")
    assert served.exchange.subscriber_count == 0
    assert served.servicer.streams == 0


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (epb.PublishRequest(topic="/tasks/nope", namespace="k8s.io"), "unknown topic"),
        (epb.PublishRequest(topic="", namespace="k8s.io"), "topic is empty"),
        (
            epb.PublishRequest(topic="/images/create", namespace="", event_json='{"name":"x"}'),
            "namespace is empty",
        ),
        (
            epb.PublishRequest(topic="/images/create", namespace="k8s io", event_json="{}"),
            "invalid namespace",
        ),
        (epb.PublishRequest(topic="/images/create", namespace="k8s.io", event_json="{"), "JSON"),
        (
            epb.PublishRequest(topic="/images/create", namespace="k8s.io", event_json="[1]"),
            "must be a JSON object",
        ),
        (
            epb.PublishRequest(topic="/images/create", namespace="k8s.io", event_json="{}"),
            "name",
        ),
        (
            epb.PublishRequest(
                topic="/tasks/start", namespace="k8s.io", event_json='{"container_id":"c"}'
            ),
            "pid",
        ),
        (
            epb.PublishRequest(
                topic="/tasks/start",
                namespace="k8s.io",
                event_json='{"container_id":"c","pid":"1"}',
            ),
            "expected int",
        ),
        (
            epb.PublishRequest(
                topic="/images/create", namespace="k8s.io", event_json='{"name":"x","bogus":1}'
            ),
            "unknown fields",
        ),
    ],
)
async def test_invalid_publish_is_invalid_argument(
    served: Served, request_: epb.PublishRequest, message: str
) -> None:
    call = await _subscribe(served)
    with pytest.raises(aio.AioRpcError) as info:
        await served.stub.Publish(request_, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")
    # Nothing was published: the next envelope the subscriber sees is this marker.
    served.exchange.publish("k8s.io", t.ImageDelete(name="marker"))
    assert json.loads((await call.read()).event_json) == {"name": "marker"}
    call.cancel()


async def test_client_cancel_removes_the_subscription(served: Served) -> None:
    calls = [await _subscribe(served, 'topic~="^/tasks/"') for _ in range(2)]
    await served.streams.until(2)
    assert served.exchange.subscriber_count == 2

    calls[0].cancel()
    await served.streams.until(1)
    assert served.exchange.subscriber_count == 1

    # The other stream is unaffected.
    served.exchange.publish("k8s.io", _exit("c9"))
    got = await calls[1].read()
    assert json.loads(got.event_json)["container_id"] == "c9"

    calls[1].cancel()
    await served.streams.until(0)
    assert served.exchange.subscriber_count == 0


async def test_slow_subscriber_is_dropped_with_unavailable(served_small_queue: Served) -> None:
    served = served_small_queue
    call = await _subscribe(served)
    # publish is synchronous: the stream cannot read between these, so it falls 5 behind a
    # queue of 4 and is dropped.
    for i in range(10):
        served.exchange.publish("k8s.io", t.SandboxStart(sandbox_id=f"sb{i}"))
    got = [json.loads((await call.read()).event_json)["sandbox_id"] for _ in range(4)]
    assert got == ["sb0", "sb1", "sb2", "sb3"]
    with pytest.raises(aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "subscriber too slow: dropped" in (info.value.details() or "")
    await served.streams.until(0)
    assert served.exchange.subscriber_count == 0


async def test_closing_the_exchange_ends_streams_cleanly(served: Served) -> None:
    call = await _subscribe(served)
    served.exchange.publish("k8s.io", t.SandboxStop(sandbox_id="last"))
    served.exchange.close()  # what the daemon does at shutdown
    assert json.loads((await call.read()).event_json) == {"sandbox_id": "last"}
    assert await call.read() is aio.EOF
    assert await call.code() == grpc.StatusCode.OK
    await served.streams.until(0)


# --- the CLI: `pinnace events` ------------------------------------------------------------


def _envelope(event: t.Event) -> epb.Envelope:
    return events_rpc.envelope_message(
        Envelope(topic=event.topic, namespace="k8s.io", timestamp=EXITED_AT, event=event)
    )


def test_human_line_flattens_the_event() -> None:
    event = t.SandboxNetnsCreated(
        sandbox_id="sb1",
        netns_path="/run/netns/x",
        pod_name="web 1",
        pod_namespace="default",
        pod_uid="",
        dns=DnsConfig(servers=("10.0.0.10", "10.0.0.11")),
    )
    line = cli_events.render_line(_envelope(event))
    assert line == (
        "2024-05-06T07:08:09.123456+00:00  k8s.io  /sandboxes/netns-created  "
        'sandbox_id=sb1 netns_path=/run/netns/x pod_name="web 1" pod_namespace=default '
        "dns.servers=10.0.0.10,10.0.0.11"
    )


def test_human_line_indexes_lists_of_objects() -> None:
    event = t.NetworkAttached(
        sandbox_id="sb1",
        interfaces=(NetworkInterface(name="eth0", mac="aa:bb:cc:dd:ee:ff"),),
        ips=(IPConfig(address="10.1.0.2/24", interface=0),),
    )
    fields = cli_events.render_line(_envelope(event)).split("  ", 3)[3]
    assert fields == (
        "sandbox_id=sb1 interfaces.0.name=eth0 interfaces.0.mac=aa:bb:cc:dd:ee:ff "
        "ips.0.address=10.1.0.2/24 ips.0.interface=0"
    )


def test_json_line_is_one_object_with_the_event() -> None:
    line = cli_events.render_json(_envelope(_exit("c1")))
    assert "\n" not in line
    data = json.loads(line)
    assert data == {
        "timestamp": "2024-05-06T07:08:09.123456+00:00",
        "namespace": "k8s.io",
        "topic": "/tasks/exit",
        "event": event_to_dict(_exit("c1")),
    }


def test_parser_collects_filters_and_output() -> None:
    parser = argparse.ArgumentParser(prog="pinnace")
    cli_events.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["events", "-f", "topic==/tasks/exit", "--filter", "namespace==x"])
    assert args.filters == ["topic==/tasks/exit", "namespace==x"]
    assert args.output == "table" and args.func is cli_events.cmd_events
    assert parser.parse_args(["events", "-o", "json"]).filters == []


async def test_follow_prints_matching_events_until_the_stream_ends(served: Served) -> None:
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        client = Client(served.target)
        try:
            return cli_events.follow(
                client, ['topic~="^/tasks/"'], json_lines=True, out=out, err=err
            )
        finally:
            client.close()

    follower = asyncio.ensure_future(asyncio.to_thread(run))
    await served.streams.until(1)
    served.exchange.publish("k8s.io", t.ImageCreate(name="skipped"))
    served.exchange.publish("k8s.io", _exit("c1"))
    served.exchange.close()  # the daemon's shutdown ends the stream; follow returns 0
    assert await asyncio.wait_for(follower, 30) == 0
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"]["container_id"] for line in lines] == ["c1"]
    assert (
        err.getvalue() == "pinnace: pinnaced ended the event stream (it stopped or is restarting)\n"
    )
