"""Plumbing between a download on the event loop and an unpack on a thread.

:class:`ByteFeed` is a bounded pipe: the producer (an asyncio task receiving HTTP chunks) calls
``await afeed(chunk)``, which waits without blocking the loop while the pipe is full; the consumer
thread calls ``read(n)``, which blocks until bytes or the end arrive. Either side can stop the
other: ``fail(exc)`` makes the reader raise ``exc``; ``close_reader()`` (the consumer gave up)
makes further feeding raise Unavailable.

:class:`HashingReader` hashes what passes through it, so the uncompressed digest of a layer (its
diffID) is computed on the way to the unpacker.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading

from runtime.diff.compression import Readable
from runtime.errors import Unavailable

DEFAULT_LIMIT = 8 << 20


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ByteFeed:
    """A thread-safe bounded byte pipe (see the module docstring).

    ``limit`` bounds the bytes buffered; one chunk larger than the limit is still accepted when
    the pipe is empty, so any chunk size makes progress.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._closed = False
        self._reader_closed = False
        self._error: BaseException | None = None
        self._cond = threading.Condition(threading.Lock())
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- producer ---------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._reader_closed:
            raise Unavailable("the layer consumer stopped reading")
        if self._closed or self._error is not None:
            raise Unavailable("feeding a closed byte feed")

    def _has_room(self) -> bool:
        return self._buffered < self._limit

    def _append(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self._cond.notify_all()

    def feed(self, data: bytes) -> None:
        """Append ``data``, blocking while the pipe is full."""
        if not data:
            return
        with self._cond:
            while True:
                self._check_writable()
                if self._has_room():
                    self._append(bytes(data))
                    return
                self._cond.wait()

    async def afeed(self, data: bytes) -> None:
        """Append ``data``, waiting (without blocking the event loop) while the pipe is full."""
        if not data:
            return
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                self._check_writable()
                if self._has_room():
                    self._append(bytes(data))
                    return
                fut: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, fut))
            await fut

    def close(self) -> None:
        """The producer is done: the reader sees the end after the buffered bytes."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """The producer failed: the reader raises ``exc`` (at once; buffered bytes are dropped)."""
        with self._cond:
            self._error = exc
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()
            self._wake_async()

    # -- consumer ---------------------------------------------------------------------------

    def close_reader(self) -> None:
        """The consumer stopped: the producer's next feed raises Unavailable."""
        with self._cond:
            self._reader_closed = True
            self._chunks.clear()
            self._buffered = 0
            self._cond.notify_all()
            self._wake_async()

    def _wake_async(self) -> None:
        waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:  # that loop is closed; nobody is waiting any more
                pass

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until the end if ``n < 0``); ``b""`` at the end."""
        if n is None or n < 0:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        if n == 0:
            return b""
        with self._cond:
            while not self._chunks:
                if self._error is not None:
                    raise self._error
                if self._closed or self._reader_closed:
                    return b""
                self._cond.wait()
            if self._error is not None:
                raise self._error
            first = self._chunks[0]
            if len(first) > n:
                out = first[:n]
                self._chunks[0] = first[n:]
            else:
                parts = [self._chunks.popleft()]
                size = len(first)
                while self._chunks and size + len(self._chunks[0]) <= n:
                    chunk = self._chunks.popleft()
                    parts.append(chunk)
                    size += len(chunk)
                out = parts[0] if len(parts) == 1 else b"".join(parts)
            self._buffered -= len(out)
            self._cond.notify_all()
            self._wake_async()
            return out


class HashingReader:
    """Passes ``read`` through to ``inner`` while hashing the bytes and counting them."""

    def __init__(self, inner: Readable, algorithm: str = "sha256") -> None:
        self._inner = inner
        self._hasher = hashlib.new(algorithm)
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data:
            self._hasher.update(data)
            self.count += len(data)
        return data

    def digest(self) -> str:
        """``<algorithm>:<hex>`` of everything read so far."""
        return f"{self._hasher.name}:{self._hasher.hexdigest()}"
