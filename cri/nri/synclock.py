"""The plugin sync lock: container creations share it, a plugin's Synchronize takes it alone.

A registering plugin must see every container exactly once: either in its Synchronize
snapshot or through a CreateContainer event. Creations hold the shared side from before
their NRI hook until their record is stored; a Synchronize waits for those in flight, then
holds new ones back until it has sent its snapshot (containerd's adaptation does the same
with a read/write lock). Waiters are served in arrival order, so a registration is not
starved by a stream of creations. Cancellation while waiting leaves the lock as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class SyncLock:
    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._queue: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        await self._acquire(exclusive=False)
        try:
            yield
        finally:
            self._readers -= 1
            self._wake()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        await self._acquire(exclusive=True)
        try:
            yield
        finally:
            self._writer = False
            self._wake()

    async def _acquire(self, *, exclusive: bool) -> None:
        if not self._queue and self._free(exclusive=exclusive):
            self._grant(exclusive=exclusive)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (exclusive, fut)
        self._queue.append(entry)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():  # granted as we were cancelled: give back
                if exclusive:
                    self._writer = False
                else:
                    self._readers -= 1
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(entry)
            self._wake()
            raise

    def _free(self, *, exclusive: bool) -> bool:
        return not self._writer and (not exclusive or self._readers == 0)

    def _grant(self, *, exclusive: bool) -> None:
        if exclusive:
            self._writer = True
        else:
            self._readers += 1

    def _wake(self) -> None:
        while self._queue:
            exclusive, fut = self._queue[0]
            if fut.done():
                self._queue.popleft()
                continue
            if not self._free(exclusive=exclusive):
                return
            self._queue.popleft()
            self._grant(exclusive=exclusive)
            fut.set_result(None)
            if exclusive:
                return
