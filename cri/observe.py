"""Metrics read from the daemon's state and facts rather than counted at call sites.

* ``pinnace_pods{state}``, ``pinnace_containers{state}``: read from the pod store at scrape
  time (every state exported, zero included), so they can never drift from what List answers.
* ``pinnace_event_subscribers``, ``pinnace_event_subscribers_dropped_total``: the exchange's
  live subscriptions and how many it dropped for falling behind.
* ``pinnace_cni_duration_seconds{operation,result}``: CNI ADD and DEL time, from the events
  that bracket them (``/sandboxes/netns-created`` → ``/network/attached`` or
  ``/network/failed``; ``/sandboxes/netns-removing`` → ``/network/detached``), measured on
  the envelopes' publish times.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from runtime.events.exchange import Exchange, SubscriberDropped

#: What the state collector reads: {"pods": {state: n}, "containers": {state: n}}.
StateCounts = Callable[[], Mapping[str, Mapping[str, int]]]

_CNI_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _StateCollector(Collector):
    def __init__(self, counts: StateCounts, exchange: Exchange) -> None:
        self._counts = counts
        self._exchange = exchange

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        for kind, what in (("pods", "Pod sandboxes"), ("containers", "Containers")):
            family = GaugeMetricFamily(f"pinnace_{kind}", f"{what} by state.", labels=["state"])
            for state, n in sorted(counts.get(kind, {}).items()):
                family.add_metric([state], n)
            yield family
        yield GaugeMetricFamily(
            "pinnace_event_subscribers",
            "Live subscriptions to the event exchange.",
            value=self._exchange.subscriber_count,
        )
        yield CounterMetricFamily(
            "pinnace_event_subscribers_dropped",
            "Subscribers the event exchange dropped for falling behind.",
            value=self._exchange.dropped_total,
        )


class Observer:
    """Registers the collectors on ``registry`` and, as a component (``async with``), follows
    the exchange for CNI timings."""

    def __init__(self, registry: CollectorRegistry, exchange: Exchange, counts: StateCounts):
        self._exchange = exchange
        registry.register(_StateCollector(counts, exchange))
        self.cni_duration = Histogram(
            "pinnace_cni_duration_seconds",
            "Time a pod's CNI ADD (attach) or DEL (detach) took, by result.",
            ["operation", "result"],
            buckets=_CNI_BUCKETS,
            registry=registry,
        )
        self._task: asyncio.Task[None] | None = None

    async def _follow(self) -> None:
        started: dict[tuple[str, str], float] = {}
        ends = {
            "/network/attached": ("add", "ok"),
            "/network/failed": ("add", "error"),
            "/network/detached": ("del", "ok"),
        }
        begins = {"/sandboxes/netns-created": "add", "/sandboxes/netns-removing": "del"}
        while True:
            subscription = self._exchange.subscribe(
                *(f'topic=="{t}"' for t in (*begins, *ends)), queue_size=4096
            )
            try:
                async with subscription:
                    async for envelope in subscription:
                        sandbox = str(getattr(envelope.event, "sandbox_id", ""))
                        at = envelope.timestamp.timestamp()
                        if envelope.topic in begins:
                            started[(begins[envelope.topic], sandbox)] = at
                        elif envelope.topic in ends:
                            operation, result = ends[envelope.topic]
                            began = started.pop((operation, sandbox), None)
                            if began is not None:
                                self.cni_duration.labels(operation, result).observe(at - began)
                return
            except SubscriberDropped:
                started.clear()

    async def __aenter__(self) -> Observer:
        self._task = asyncio.ensure_future(self._follow())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
