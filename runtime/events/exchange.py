"""The event exchange: publishers hand it facts, subscribers read them through bounded queues.

Terms:

publish
    Synchronous and non-blocking: the envelope is put on the queue of every subscriber whose
    filters match, in the order ``publish`` was called. A publisher never awaits a subscriber.
    Publish only facts that are already durable (after the sqlite commit, after the mount).
subscription
    A bounded queue plus filters. Iterating it yields envelopes in publish order. A subscriber
    that falls ``queue_size`` envelopes behind is *dropped*: it stops receiving, is given
    everything it had queued, and then its iterator raises ``SubscriberDropped``. Leaving the
    ``async with`` block (or ``close()``) unsubscribes; the iterator then ends.
waiting for a fact
    Subscribe first, then cause the fact, then await it — so the fact cannot be published in
    between and missed::

        async with exchange.subscribe('topic=="/network/attached"',
                                      f'event.sandbox_id=="{sid}"') as sub:
            exchange.publish("k8s.io", SandboxNetnsCreated(...))
            envelope = await sub.next(timeout=30)

    ``Exchange.wait_for(..., trigger=...)`` packages exactly that sequence.

Threads: everything runs on the event loop the exchange is first used on. Other threads call
``publish_threadsafe``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from runtime.errors import DeadlineExceeded, FailedPrecondition, Internal, Unavailable
from runtime.events.filters import Matcher, parse_any
from runtime.events.types import Envelope, Event, validate_namespace


class SubscriberDropped(Unavailable):
    """The subscriber fell too far behind and was unsubscribed; events after it were lost.
    Resubscribe and rebuild state from a list (the way kubelet relists)."""


class _Terminal:
    """What ends a subscription's stream; lives in the queue's reserved last slot."""

    __slots__ = ("dropped",)

    def __init__(self, *, dropped: bool) -> None:
        self.dropped = dropped


class Subscription:
    """A subscriber's view of the exchange: an async iterator of envelopes and an async
    context manager that unsubscribes on exit. Made by ``Exchange.subscribe``."""

    def __init__(self, exchange: Exchange, matcher: Matcher, queue_size: int) -> None:
        self._exchange = exchange
        self._matcher = matcher
        self._capacity = queue_size
        # One slot more than the capacity, reserved for the terminal marker, so that closing
        # or dropping always fits without discarding what the subscriber has not read yet.
        self._queue: asyncio.Queue[Envelope | _Terminal] = asyncio.Queue(queue_size + 1)
        self._terminal: _Terminal | None = None

    @property
    def closed(self) -> bool:
        """True once unsubscribed or dropped (queued envelopes may still be read)."""
        return self._terminal is not None

    @property
    def dropped(self) -> bool:
        """True if the exchange dropped this subscriber for falling behind."""
        return self._terminal is not None and self._terminal.dropped

    def _offer(self, envelope: Envelope) -> None:
        """Called by publish: enqueue if wanted; drop the subscriber when it is full."""
        if self._terminal is not None or not self._matcher(envelope):
            return
        if self._queue.qsize() >= self._capacity:
            self._exchange.dropped_total += 1
            self._end(dropped=True)
            return
        self._queue.put_nowait(envelope)

    def _end(self, *, dropped: bool) -> None:
        if self._terminal is not None:
            return
        self._terminal = _Terminal(dropped=dropped)
        self._queue.put_nowait(self._terminal)
        self._exchange._forget(self)

    def close(self) -> None:
        """Unsubscribe. Envelopes already queued can still be read; then iteration ends."""
        self._end(dropped=False)

    # A deadline parameter (not only asyncio.timeout around the call) because running out of
    # time is DeadlineExceeded, the runtime's error, not TimeoutError.
    async def next(self, *, timeout: float | None = None) -> Envelope:  # noqa: ASYNC109
        """The next envelope. DeadlineExceeded after ``timeout`` seconds without one;
        SubscriberDropped if dropped; FailedPrecondition if closed and drained."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            raise DeadlineExceeded(f"no matching event within {timeout} s") from None
        if isinstance(item, _Terminal):
            self._queue.put_nowait(item)  # keep the stream ended for later calls
            if item.dropped:
                raise SubscriberDropped(
                    f"event subscriber dropped: more than {self._capacity} events unread"
                )
            raise FailedPrecondition("event subscription is closed")
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.next()
        except FailedPrecondition:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Exchange:
    """Fan-out of events to subscribers with bounded per-subscriber queues.

    ``clock`` returns the (timezone-aware) publish time; tests pass a fixed one.
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._subscribers: dict[Subscription, None] = {}  # insertion-ordered set
        #: subscribers dropped for falling behind, since start (for metrics)
        self.dropped_total = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop, self._loop_thread = loop, threading.get_ident()
        elif self._loop is not loop:
            raise Internal("event exchange used from two event loops")

    def _forget(self, subscription: Subscription) -> None:
        self._subscribers.pop(subscription, None)

    def publish(self, namespace: str, event: Event) -> Envelope:
        """Deliver ``event`` to every matching subscriber now; never blocks or awaits.

        Must be called on the exchange's event loop thread (elsewhere: ``publish_threadsafe``).
        Returns the envelope that was delivered.
        """
        if not isinstance(event, Event):
            raise Internal(f"publish of a non-event {event!r}")
        envelope = Envelope(
            topic=event.topic,
            namespace=validate_namespace(namespace),
            timestamp=self._clock(),
            event=event,
        )
        if self._loop_thread is not None and threading.get_ident() != self._loop_thread:
            raise Internal("Exchange.publish called off the event loop; use publish_threadsafe")
        for subscription in list(self._subscribers):
            subscription._offer(envelope)
        return envelope

    def publish_threadsafe(self, namespace: str, event: Event) -> None:
        """``publish`` from any thread: scheduled on the exchange's loop. Before anyone has
        subscribed there is no loop and nobody to deliver to, so the event is discarded."""
        validate_namespace(namespace)
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self.publish(namespace, event)
            return
        loop.call_soon_threadsafe(self.publish, namespace, event)

    def subscribe(self, *filters: str | Matcher, queue_size: int = 1024) -> Subscription:
        """A new subscription receiving envelopes that match any of ``filters`` (all when
        none), from this moment on. Filters are strings (see ``filters``) or callables."""
        if queue_size < 1:
            raise Internal("queue_size must be at least 1")
        self._bind()
        matcher = parse_any(filters)
        subscription = Subscription(self, matcher, queue_size)
        self._subscribers[subscription] = None
        return subscription

    async def wait_for(
        self,
        *filters: str | Matcher,
        trigger: Callable[[], Awaitable[Any] | Any] | None,
        timeout: float,  # noqa: ASYNC109 (see Subscription.next)
    ) -> Envelope:
        """Subscribe, then call ``trigger`` (sync or async), then return the first matching
        envelope. DeadlineExceeded after ``timeout`` seconds.

        ``trigger`` is required so that the action that causes the fact runs only after the
        subscription exists; pass ``None`` only to wait for a fact someone else will cause
        later (anything published before this call is not seen).
        """
        async with self.subscribe(*filters, queue_size=64) as subscription:
            if trigger is not None:
                result = trigger()
                if inspect.isawaitable(result):
                    await result
            return await subscription.next(timeout=timeout)

    def close(self) -> None:
        """End every subscription (daemon shutdown): iterators finish after draining."""
        for subscription in list(self._subscribers):
            subscription.close()

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are live (for metrics)."""
        return len(self._subscribers)
