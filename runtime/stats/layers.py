"""Writable-layer usage of containers, measured in the background and served from memory.

Terms:

- **writable layer**: a container's own snapshot directory (overlay's ``upperdir``): what the
  container wrote, created or copied up over its image. Its **usage** is the allocated bytes
  (``st_blocks`` * 512) and the inodes below that directory, hard links counted once, the
  figures the kubelet's ephemeral-storage limits and disk-pressure eviction act on.
- **walk**: one measurement of one layer, resumable: it keeps its stack of directories still
  to list and its running totals, so it can stop after any number of entries and carry on in
  the next refresh. A layer's published usage changes only when a walk of it completes, so a
  reader never sees a half-counted figure.
- **refresh**: one pass, on a worker thread, that examines at most ``file_budget`` entries
  in total, shared among the walks (layers never measured first, then the stalest). A node
  with millions of files in its containers costs the same per refresh as one with a few; big
  layers just take several refreshes to be re-measured.

:class:`LayerWalk` and :class:`LayerUsageTable` are plain synchronous code (tested on real
directories); :class:`WritableLayers` is the component the composition root starts and stops
as an async context manager: a task that refreshes every ``interval`` seconds, or at once
when poked (a stats RPC asked about a container not measured yet). The walks run in a child
process (``runtime/stats/walker.py``): a walking thread would hold the interpreter lock the
event loop and the stats RPCs need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LayerUsage:
    """One completed measurement of a writable layer (``timestamp_ns``: when it completed)."""

    used_bytes: int
    inodes: int
    timestamp_ns: int


class LayerWalk:
    """A resumable measurement of the tree below ``top`` (see the module docstring)."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self._stack = [str(top)]
        self._seen: set[tuple[int, int]] = set()
        self._bytes = 0
        self._pending: list[os.DirEntry[str]] = []
        self.started_ns = time.time_ns()

    @property
    def done(self) -> bool:
        return not self._stack and not self._pending

    def step(self, budget: int) -> int:
        """Examine up to ``budget`` entries; returns how many it examined (at least one
        directory listing's worth of progress is made whenever budget > 0)."""
        used = 0
        while used < budget and (self._pending or self._stack):
            if not self._pending:
                directory = self._stack.pop()
                try:
                    with os.scandir(directory) as it:
                        self._pending = list(it)
                except (FileNotFoundError, NotADirectoryError, PermissionError):
                    self._pending = []
                used += 1
                continue
            entry = self._pending.pop()
            used += 1
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # removed while we walk: it no longer counts
            ident = (st.st_dev, st.st_ino)
            if ident in self._seen:
                continue
            self._seen.add(ident)
            self._bytes += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                self._stack.append(entry.path)
        return used

    def result(self) -> LayerUsage:
        return LayerUsage(
            used_bytes=self._bytes, inodes=len(self._seen), timestamp_ns=time.time_ns()
        )


class LayerUsageTable:
    """Published usages and walks in progress, by container id. Not thread-safe by itself:
    :meth:`refresh` runs on one worker thread at a time; :meth:`get` only reads a dict entry,
    which is atomic."""

    def __init__(self) -> None:
        self._usage: dict[str, LayerUsage] = {}
        self._walks: dict[str, LayerWalk] = {}

    def get(self, container_id: str) -> LayerUsage | None:
        return self._usage.get(container_id)

    def published(self) -> dict[str, LayerUsage]:
        """A copy of every completed measurement, by container id."""
        return dict(self._usage)

    def total(self) -> tuple[int, int]:
        """Bytes and inodes of every published measurement together."""
        usages = list(self._usage.values())  # a copy: refresh may replace entries meanwhile
        return sum(u.used_bytes for u in usages), sum(u.inodes for u in usages)

    def refresh(self, layers: Mapping[str, Path], *, file_budget: int) -> int:
        """One refresh over ``layers`` (container id → writable-layer directory): forget ids
        no longer listed, start walks where none is running, spend at most ``file_budget``
        entries on them. Returns the number of entries examined."""
        for gone in [cid for cid in self._usage if cid not in layers]:
            del self._usage[gone]
        for gone in [cid for cid in self._walks if cid not in layers]:
            del self._walks[gone]
        for cid, top in layers.items():
            walk = self._walks.get(cid)
            if walk is None or walk.top != top:
                self._walks[cid] = LayerWalk(top)

        def urgency(cid: str) -> tuple[int, int]:
            known = self._usage.get(cid)
            # never measured first, then the stalest figure, then the walk begun earliest
            return (0, 0) if known is None else (1, known.timestamp_ns)

        spent = 0
        for cid in sorted(self._walks, key=urgency):
            if spent >= file_budget:
                break
            walk = self._walks[cid]
            spent += walk.step(file_budget - spent)
            if walk.done:
                self._usage[cid] = walk.result()
                del self._walks[cid]
        return spent


LayerSource = Callable[[], Mapping[str, str]]
"""Container id → snapshot key of the containers whose layers to measure (called on the loop)."""

LayerLocator = Callable[[str], Path | None]
"""Snapshot key → its writable directory, None when it is gone (called on the worker thread)."""


class _WalkerProcess:
    """The child that walks (``runtime/stats/walker.py``), spoken to over its pipes."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None

    async def refresh(self, layers: Mapping[str, str], budget: int) -> dict[str, LayerUsage]:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "runtime.stats.walker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=64 * 1024 * 1024,  # one answer line holds every container's figures
                # out of the daemon's process group: a Ctrl-C at the terminal running pinnaced
                # stops the daemon in order, which then closes the walker's input; the SIGINT
                # itself killed the walker with a traceback in the daemon's log
                start_new_session=True,
            )
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps({"budget": budget, "layers": dict(layers)}) + "\n").encode())
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        if not line:
            raise OSError("the writable-layer walker exited")
        usage = json.loads(line)["usage"]
        return {cid: LayerUsage(int(b), int(i), int(t)) for cid, (b, i, t) in usage.items()}

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # its end of input: it exits
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class WritableLayers:
    """The background component that keeps the containers' layer usage fresh: a task that
    refreshes every ``interval`` seconds (or when poked), the walks done by a child process
    (``in_process=False``, the daemon's way) or a worker thread (tests, tools)."""

    def __init__(
        self,
        *,
        source: LayerSource,
        locate: LayerLocator,
        interval: float = 10.0,
        file_budget: int = 20_000,
        in_process: bool = False,
    ) -> None:
        self._source = source
        self._locate = locate
        self._interval = interval
        self._budget = file_budget
        self._table = LayerUsageTable()
        self._walker = None if in_process else _WalkerProcess()
        self._published: dict[str, LayerUsage] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshed = asyncio.Condition()
        self.refreshes = 0
        self._busy = False

    def usage(self, container_id: str) -> LayerUsage | None:
        """The last completed measurement of the container's layer (None: not measured yet,
        and a refresh is requested). Safe to call from any thread; never waits."""
        found = self._published.get(container_id)
        if found is None:
            self.poke()
        return found

    def total(self) -> tuple[int, int]:
        """Bytes and inodes of all containers' writable layers, as last measured (ImageFsInfo
        adds them instead of walking the layers again). Safe from any thread."""
        usages = list(self._published.values())
        return sum(u.used_bytes for u in usages), sum(u.inodes for u in usages)

    def poke(self) -> None:
        """Refresh now rather than at the next interval. Safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def next_refresh(self) -> None:
        """Return once a refresh that starts after this call has completed (tests, tools)."""
        async with self._refreshed:
            target = self.refreshes + 2 if self._busy else self.refreshes + 1
            self.poke()
            await self._refreshed.wait_for(lambda: self.refreshes >= target)

    async def __aenter__(self) -> WritableLayers:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="writable-layers")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._walker is not None:
            await self._walker.close()
        self._loop = None

    def _locate_all(self, keys: Mapping[str, str]) -> dict[str, Path]:
        layers: dict[str, Path] = {}
        for cid, key in keys.items():
            top = self._locate(key)
            if top is not None:
                layers[cid] = top
        return layers

    def _refresh_here(self, keys: Mapping[str, str]) -> dict[str, LayerUsage]:
        self._table.refresh(self._locate_all(keys), file_budget=self._budget)
        return self._table.published()

    async def _refresh(self, keys: Mapping[str, str]) -> None:
        if self._walker is None:
            self._published = await asyncio.to_thread(self._refresh_here, keys)
            return
        layers = await asyncio.to_thread(self._locate_all, keys)
        try:
            self._published = await self._walker.refresh(
                {cid: str(p) for cid, p in layers.items()}, self._budget
            )
        except (OSError, ValueError, KeyError) as exc:
            # a walker that died is started again at the next refresh
            log.warning("writable-layer walker failed: %s", exc)
            await self._walker.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._busy = True
            try:
                await self._refresh(dict(self._source()))
            except Exception:  # a bad layer must not stop the accounting of the others
                log.exception("writable-layer refresh failed")
            finally:
                self._busy = False
            async with self._refreshed:
                self.refreshes += 1
                self._refreshed.notify_all()
            # the schedule itself: the next refresh is due after the interval or a poke
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
