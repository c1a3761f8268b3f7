"""pinnace.events.v1.Events: the daemon's event exchange over gRPC.

Terms:

stream
    One ``Subscribe`` call: an exchange subscription whose envelopes are written to the client
    until the client cancels, the daemon closes the exchange (shutdown), or the subscriber is
    dropped for reading too slowly (then the call ends with UNAVAILABLE).
event JSON
    An event's fields as a JSON object, exactly ``runtime.events.types.event_to_dict``; the
    proto explains why JSON text rather than ``google.protobuf.Struct``.

Publishers are trusted: the socket is root-only, so any known topic may be published, including
pinnace's own lifecycle topics; such an event is indistinguishable from one the daemon
published. Validation is about well-formedness (a known topic, a valid event), not authority.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from cri.api.pinnace.events.v1 import events_pb2 as epb
from cri.api.pinnace.events.v1 import events_pb2_grpc as epb_grpc
from runtime.errors import InvalidArgument, NotFound
from runtime.events import Envelope, Exchange, SubscriberDropped, Subscription
from runtime.events.filters import parse
from runtime.events.types import (
    EVENT_TYPES,
    event_class,
    event_from_dict,
    event_to_dict,
    validate_namespace,
)

DEFAULT_QUEUE_SIZE = 1024
"""How many envelopes a stream may fall behind before it is dropped."""


def _timestamp(envelope: Envelope) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(envelope.timestamp)
    return stamp


def envelope_message(envelope: Envelope) -> epb.Envelope:
    """The wire form of ``envelope``."""
    return epb.Envelope(
        timestamp=_timestamp(envelope),
        namespace=envelope.namespace,
        topic=envelope.topic,
        event_json=json.dumps(event_to_dict(envelope.event), separators=(",", ":")),
    )


def _event_data(text: str, topic: str) -> dict[str, Any]:
    if not text:
        return {}  # an event whose fields all have defaults, or a clear "missing field" error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"Publish {topic}: event_json is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"Publish {topic}: event_json must be a JSON object, got {type(data).__name__}"
        )
    return data


class EventsServicer(epb_grpc.EventsServicer):
    """pinnace.events.v1.Events over one ``Exchange``.

    ``on_streams_changed`` (optional) is called with the number of live ``Subscribe`` streams
    each time one opens or closes, on the event loop (a metrics gauge, a test awaiting a fact).
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        on_streams_changed: Callable[[int], None] | None = None,
    ) -> None:
        self._exchange = exchange
        self._queue_size = queue_size
        self._on_streams_changed = on_streams_changed
        self._streams: dict[Subscription, None] = {}

    @property
    def streams(self) -> int:
        """How many ``Subscribe`` streams are live."""
        return len(self._streams)

    def _changed(self) -> None:
        if self._on_streams_changed is not None:
            self._on_streams_changed(len(self._streams))

    def _open(self, subscription: Subscription) -> None:
        self._streams[subscription] = None
        self._changed()

    def _release(self, subscription: Subscription) -> None:
        """Unsubscribe and forget the stream; idempotent (the RPC's done callback and the
        stream's own ``finally`` both call it, whichever runs first wins)."""
        subscription.close()
        if subscription in self._streams:
            del self._streams[subscription]
            self._changed()

    async def Subscribe(
        self, request: epb.SubscribeRequest, context: Any
    ) -> AsyncIterator[epb.Envelope]:
        # Filters are parsed before anything is written, so a bad one fails the call with
        # INVALID_ARGUMENT instead of ending an already-started stream.
        matchers = [parse(text).match for text in request.filters]
        subscription = self._exchange.subscribe(*matchers, queue_size=self._queue_size)
        self._open(subscription)
        # A cancelled call may leave this generator suspended at a write and never resumed;
        # the done callback unsubscribes at once rather than whenever it is collected.
        context.add_done_callback(lambda _call: self._release(subscription))
        try:
            # The subscription exists: tell the client, which may now cause what it awaits.
            await context.send_initial_metadata(())
            async for envelope in subscription:
                yield envelope_message(envelope)
        except SubscriberDropped:
            raise SubscriberDropped(
                f"subscriber too slow: dropped after falling more than {self._queue_size} "
                "events behind; events since were lost: resubscribe and relist"
            ) from None
        finally:
            self._release(subscription)

    async def Publish(self, request: epb.PublishRequest, context: Any) -> epb.PublishResponse:
        return publish(self._exchange, request)


def publish(exchange: Exchange, request: epb.PublishRequest) -> epb.PublishResponse:
    """Validate and publish one event; InvalidArgument says what is wrong with it."""
    topic = request.topic
    if not topic:
        raise InvalidArgument("Publish: topic is empty")
    try:
        event_class(topic)
    except NotFound:
        raise InvalidArgument(
            f"Publish: unknown topic {topic!r}; known topics: {', '.join(sorted(EVENT_TYPES))}"
        ) from None
    if not request.namespace:
        raise InvalidArgument("Publish: namespace is empty; events happen in one, e.g. k8s.io")
    validate_namespace(request.namespace)
    event = event_from_dict(topic, _event_data(request.event_json, topic))
    envelope = exchange.publish(request.namespace, event)
    return epb.PublishResponse(timestamp=_timestamp(envelope))


def servicer(
    exchange: Exchange,
    *,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    on_streams_changed: Callable[[int], None] | None = None,
) -> EventsServicer:
    """The Events servicer over ``exchange`` (register it with
    ``events_pb2_grpc.add_EventsServicer_to_server``)."""
    return EventsServicer(exchange, queue_size=queue_size, on_streams_changed=on_streams_changed)
