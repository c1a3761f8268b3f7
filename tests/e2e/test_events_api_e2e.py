"""pinnace's Events API against a real pinnaced: one client publishes, another subscribes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
import pytest

from cri.api.pinnace.events.v1 import events_pb2 as epb
from cri.api.pinnace.events.v1 import events_pb2_grpc as epb_grpc
from runtime.events import event_from_dict, event_to_dict
from runtime.events import types as t
from tests.support.daemon import cri_channel


def test_publish_from_one_client_reaches_a_subscriber_on_another(pinnaced) -> None:
    daemon = pinnaced()
    subscriber_channel = cri_channel(daemon.socket)
    publisher_channel = cri_channel(daemon.socket)
    try:
        subscriber = epb_grpc.EventsStub(subscriber_channel)
        publisher = epb_grpc.EventsStub(publisher_channel)
        call = subscriber.Subscribe(
            epb.SubscribeRequest(filters=['topic=="/tasks/exit",event.container_id=="c1"']),
            timeout=60,
        )
        call.initial_metadata()  # the daemon sends it once the subscription exists
        wanted = t.TaskExit(
            container_id="c1",
            pid=4242,
            exit_status=137,
            exited_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        )
        for event in (t.ImageCreate(name="skipped:1"), wanted):
            publisher.Publish(
                epb.PublishRequest(
                    topic=event.topic,
                    namespace="k8s.io",
                    event_json=json.dumps(event_to_dict(event)),
                ),
                timeout=30,
            )
        envelope = next(call)
        assert (envelope.topic, envelope.namespace) == ("/tasks/exit", "k8s.io")
        assert event_from_dict(envelope.topic, json.loads(envelope.event_json)) == wanted

        with pytest.raises(grpc.RpcError) as info:
            publisher.Publish(
                epb.PublishRequest(topic="/no/such", namespace="k8s.io", event_json="{}"),
                timeout=30,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        call.cancel()
    finally:
        subscriber_channel.close()
        publisher_channel.close()
