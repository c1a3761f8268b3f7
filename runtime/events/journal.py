"""The daemon's INFO log of state changes: one line per event on the exchange.

Every pod, container, task, image, snapshot and network state change is published as an event
after it is durable, so logging events gives an operator exactly one line per state change,
in the order they happened, from the same facts subscribers see::

    /tasks/exit namespace=k8s.io container_id=3f2a... pid=4242 exit_status=0

Values are the event's top-level fields (nested ones as compact JSON), empty ones left out.
A component: ``async with EventJournal(exchange, logger):`` subscribes on entry and stops on
exit. If it falls behind and is dropped, it says so and subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from types import TracebackType

from runtime.events.exchange import Exchange, SubscriberDropped
from runtime.events.types import Envelope, event_to_dict


def journal_line(envelope: Envelope) -> str:
    """The log line for one envelope."""
    parts = [envelope.topic, f"namespace={envelope.namespace}"]
    for key, value in event_to_dict(envelope.event).items():
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={text}")
    return " ".join(parts)


class EventJournal:
    """Logs every event at INFO on ``logger``."""

    def __init__(self, exchange: Exchange, logger: logging.Logger) -> None:
        self._exchange = exchange
        self._log = logger
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            subscription = self._exchange.subscribe(queue_size=4096)
            try:
                async with subscription:
                    async for envelope in subscription:
                        self._log.info("%s", journal_line(envelope))
                return  # the exchange closed: the daemon is stopping
            except SubscriberDropped:
                self._log.warning("event journal fell behind; some state changes were not logged")

    async def __aenter__(self) -> EventJournal:
        if self._log.isEnabledFor(logging.INFO):
            self._task = asyncio.ensure_future(self._run())
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
