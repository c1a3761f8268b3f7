"""Exit facts: learning of conmon's exit files through inotify and handing them out.

conmon writes ``<exit dir>/<id>`` atomically (temp file, then rename) when a task's process
ends, so the watch looks for ``IN_MOVED_TO`` (and ``IN_CLOSE_WRITE`` for writers that do not
rename). Only ids the hub was told to ``expect`` are read. Each exit is resolved once:
``wait`` futures complete, then callbacks and ``exits()`` iterators receive it. A subscriber's
queue is bounded; one that falls behind is dropped, as on the event exchange, rather than
slowing anyone else.

Why a hub of its own beside the exchange: these are the task layer's raw facts, below the pod
layer. The container controller records each exit (sqlite) before the public fact
(``/tasks/exit``, :class:`runtime.events.types.TaskExit`) is published on the exchange, which
only ever carries facts already durable; subscribers of the exchange never see an exit the
records do not show yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from runtime.errors import DeadlineExceeded
from runtime.events.exchange import SubscriberDropped
from runtime.tasks.inotify import (
    IN_CLOSE_WRITE,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    DirectoryWatch,
    InotifyEvent,
)
from runtime.tasks.interfaces import ExitCallback, ExitFact
from runtime.tasks.statefile import read_exit_code

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 1024


class ExitHub:
    """Turns exit files of expected tasks into :class:`ExitFact` facts.

    ``oom_probe(id)`` is a blocking function telling whether the task's cgroup saw an OOM
    kill; it runs on a thread right after the exit file is read. ``lost_probe(id)`` tells
    likewise whether the exit file was written for a dead conmon (``supervisor_lost``)."""

    def __init__(
        self,
        exit_dir: Path,
        oom_probe: Callable[[str], bool],
        lost_probe: Callable[[str], bool] = lambda _id: False,
    ) -> None:
        self._exit_dir = exit_dir
        self._oom_probe = oom_probe
        self._lost_probe = lost_probe
        self._watch: DirectoryWatch | None = None
        self._futures: dict[str, asyncio.Future[ExitFact]] = {}
        self._loading: set[str] = set()
        self._recheck: set[str] = set()
        self._callbacks: list[ExitCallback] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Begin watching (call on the running loop, after the exit dir exists)."""
        self._watch = DirectoryWatch(self._exit_dir, IN_MOVED_TO | IN_CLOSE_WRITE, self._on_event)
        self._watch.start()

    async def close(self) -> None:
        """Stop watching and finish in-flight loads."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def expect(self, task_id: str) -> None:
        """Start caring about ``task_id``'s exit file, and look at it once in case it exists
        already."""
        if task_id not in self._futures:
            self._futures[task_id] = asyncio.get_running_loop().create_future()
        self._schedule(task_id)

    def preload(self, exit: ExitFact) -> None:
        """Record an exit already known (found at recovery) without publishing it."""
        fut = self._futures.get(exit.id)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._futures[exit.id] = fut
        fut.set_result(exit)

    def forget(self, task_id: str) -> None:
        """Drop ``task_id`` (it was deleted); waiters still pending get cancelled."""
        fut = self._futures.pop(task_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    def known(self, task_id: str) -> ExitFact | None:
        """The exit fact of ``task_id`` if it has been resolved."""
        fut = self._futures.get(task_id)
        if fut is not None and fut.done() and not fut.cancelled():
            return fut.result()
        return None

    def is_expected(self, task_id: str) -> bool:
        """True while ``task_id`` is being watched or its exit is known."""
        return task_id in self._futures

    async def wait(self, task_id: str, timeout: float | None) -> ExitFact:  # noqa: ASYNC109
        """Await the exit of an expected task; DeadlineExceeded after ``timeout`` seconds."""
        fut = self._futures[task_id]
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"task {task_id} did not exit within {timeout}s") from None

    def on_exit(self, callback: ExitCallback) -> Callable[[], None]:
        """Call ``callback(exit)`` for each new exit fact; returns the unsubscribe function."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def exits(self) -> AsyncGenerator[ExitFact, None]:
        """Yield every exit fact published from the first iteration on. The overflow rule is
        the event exchange's: a subscriber more than ``SUBSCRIBER_QUEUE`` facts behind is
        dropped (its iteration ends with SubscriberDropped), never slowing anyone else."""
        # one slot more than the bound, for the marker that ends a dropped subscriber
        queue: asyncio.Queue[ExitFact | None] = asyncio.Queue(SUBSCRIBER_QUEUE + 1)
        unsubscribe: Callable[[], None] = lambda: None  # noqa: E731 - replaced below

        def put(exit: ExitFact) -> None:
            if queue.qsize() >= SUBSCRIBER_QUEUE:
                log.warning("exit subscriber fell %d facts behind; dropped", SUBSCRIBER_QUEUE)
                unsubscribe()
                queue.put_nowait(None)
                return
            queue.put_nowait(exit)

        unsubscribe = self.on_exit(put)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    raise SubscriberDropped(
                        f"exit subscriber dropped: more than {SUBSCRIBER_QUEUE} exits unread"
                    )
                yield item
        finally:
            unsubscribe()

    def _on_event(self, event: InotifyEvent) -> None:
        if event.mask & IN_Q_OVERFLOW:
            for task_id in list(self._futures):
                self._schedule(task_id)
        elif event.name in self._futures:
            self._schedule(event.name)

    def _schedule(self, task_id: str) -> None:
        fut = self._futures.get(task_id)
        if fut is None or fut.done():
            return
        if task_id in self._loading:
            self._recheck.add(task_id)  # an event raced the read in flight: look again
            return
        self._loading.add(task_id)
        t = asyncio.get_running_loop().create_task(self._load(task_id))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _load(self, task_id: str) -> None:
        try:
            found = await asyncio.to_thread(self._read, task_id)
        finally:
            self._loading.discard(task_id)
        fut = self._futures.get(task_id)
        if found is None or fut is None or fut.done():
            if task_id in self._recheck:
                self._recheck.discard(task_id)
                self._schedule(task_id)
            return
        self._recheck.discard(task_id)
        fut.set_result(found)
        for cb in list(self._callbacks):
            try:
                cb(found)
            except Exception:
                log.exception("exit callback failed")

    def _read(self, task_id: str) -> ExitFact | None:
        got = read_exit_code(self._exit_dir / task_id)
        if got is None:
            return None
        code, mtime = got
        try:
            oom = self._oom_probe(task_id)
        except Exception:
            log.debug("oom probe of %s failed", task_id, exc_info=True)
            oom = False
        return ExitFact(
            id=task_id,
            exit_code=code,
            exited_at=mtime,
            oom_killed=oom,
            supervisor_lost=self._lost_probe(task_id),
        )
