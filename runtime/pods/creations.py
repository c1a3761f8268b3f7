"""Creations keyed by kubelet's name of a pod or container, run once.

kubelet gives up on a create after its deadline and sends the same request again. The first
creation keeps going (its task is shielded from the caller's cancellation); the retry waits for
it and receives its result. A retry after it finished receives the existing object when the
config is the same, and AlreadyExists naming the holder when another object has the name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from runtime.errors import AlreadyExists
from runtime.pods.store import NameRegistry

T = TypeVar("T")


class Creations(Generic[T]):
    """Creations of one kind of object (``what``: "pod sandbox", "container") in flight."""

    def __init__(self, names: NameRegistry, what: str) -> None:
        self._names = names
        self._what = what
        self._inflight: dict[str, asyncio.Task[T]] = {}

    async def create_once(
        self,
        key: str,
        new_id: str,
        create: Callable[[str], Awaitable[T]],
        *,
        existing: Callable[[str], T | None],
        same: Callable[[T], bool],
    ) -> T:
        """Run ``create(new_id)`` under ``key`` unless a creation of that name is running or
        done; ``existing(holder_id)`` finds a finished one, ``same`` says if it is what the
        caller asks for. The name is released again if the creation fails."""
        flight = self._inflight.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        holder = self._names.holder(key)
        if holder is not None:
            record = existing(holder)
            if record is not None and same(record):
                return record
            raise AlreadyExists(
                f"{self._what} name {key!r} is already used by {holder}; remove it first or "
                "use another attempt number"
            )
        self._names.reserve(key, new_id)
        flight = asyncio.ensure_future(create(new_id))
        self._inflight[key] = flight

        def landed(task: asyncio.Task[T]) -> None:
            self._inflight.pop(key, None)
            if task.cancelled() or task.exception() is not None:
                self._names.release(key, new_id)

        flight.add_done_callback(landed)
        return await asyncio.shield(flight)
