"""A SPDY/3.1 session on an upgraded connection: the asyncio driver around the sans-IO
``spdy.session.Session``, and the remote-command streams on top of it.

One reader task feeds bytes to the session and hands events to a handler; a handler that is
slow to take data (its bounded queue is full) stops the reader, which stops reading the
socket: that is the backpressure for peers that do not do SPDY flow control. Sending waits
on the transport's drain and, for peers that do, on the stream's window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from cri.streaming import remotecommand as rc
from cri.streaming.bridge import ClientGone, Input, Resize, StdinData, StdinEnd
from cri.streaming.spdy import session as sp
from cri.streaming.spdy.errors import ProtocolError, StreamClosedError
from cri.streaming.spdy.frames import RstStatus
from cri.streaming.spdy.headers import Headers, get

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
# What a flow-controlling peer may send ahead of our acknowledgements. Larger than SPDY's
# 64 KiB so a window is not the limit on a fast link; memory stays bounded regardless, since
# we stop reading the socket while a stream's consumer is behind.
STREAM_WINDOW = 1024 * 1024
SESSION_WINDOW = 8 * 1024 * 1024


class ByteTransport(Protocol):
    """Where a session's bytes go: a TCP connection, or a WebSocket tunnelling SPDY."""

    async def receive(self) -> bytes:
        """The next bytes from the peer; b"" at its end."""
        ...

    async def send(self, data: bytes) -> None:
        """Send and wait until the transport has room again."""
        ...

    async def close(self) -> None: ...


class StreamTransport:
    """A ByteTransport over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def receive(self) -> bytes:
        return await self._reader.read(READ_SIZE)

    async def send(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("closed")
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class SpdyConnection:
    """Drives one server-side session. ``on_event`` is awaited for every event in order;
    ``idle_timeout`` closes the connection after that long with no open stream."""

    def __init__(self, transport: ByteTransport, *, idle_timeout: float) -> None:
        self.session = sp.Session(
            client=False, stream_window=STREAM_WINDOW, session_window=SESSION_WINDOW
        )
        self._t = transport
        self._idle = idle_timeout
        self._window = asyncio.Event()
        self.closed = asyncio.Event()

    async def flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            with contextlib.suppress(ConnectionError, OSError):
                await self._t.send(data)

    async def run(self, on_event: Callable[[sp.Event], Awaitable[None]], initial: bytes) -> None:
        """Read until the peer closes, breaks the protocol or idles out."""
        data = initial
        try:
            while True:
                if data:
                    try:
                        events = self.session.receive_data(data)
                    except ProtocolError as e:
                        log.info("spdy: peer broke the protocol: %s", e)
                        await self.flush()
                        return
                    await self.flush()
                    for event in events:
                        if isinstance(event, sp.WindowOpened):
                            self._window.set()
                        await on_event(event)
                    await self.flush()
                timeout = self._idle if self.session.open_streams == 0 else None
                try:
                    data = await asyncio.wait_for(self._t.receive(), timeout)
                except TimeoutError:
                    log.info("spdy: connection idle for %ss without streams: closing", self._idle)
                    return
                except ConnectionError:
                    return
                if not data:
                    return
        finally:
            self.closed.set()
            self._window.set()

    async def send(self, stream_id: int, data: bytes, *, fin: bool = False) -> bool:
        """Send all of ``data``, waiting for window and for the transport to drain. False
        when the stream or the connection closed first (the rest was not sent)."""
        view = memoryview(data)
        pos = 0
        while not self.closed.is_set():
            if not self.session.is_open(stream_id):
                return False
            try:
                pos += self.session.send_data(stream_id, bytes(view[pos:]), fin=fin)
            except StreamClosedError:
                return False
            await self.flush()
            if pos >= len(data):
                return True
            self._window.clear()
            await self._window.wait()
        return False

    async def close(self) -> None:
        """GOAWAY, flush and close the socket."""
        self.session.goaway()
        await self.flush()
        with contextlib.suppress(ConnectionError, OSError):
            await self._t.close()


class RemoteCommandStreams:
    """The remote-command streams a SPDY client opens (one per ``streamType``). Implements
    ``bridge.ClientStreams``."""

    def __init__(self, conn: SpdyConnection, *, expected: set[rc.Channel]) -> None:
        self.conn = conn
        self.inputs: asyncio.Queue[Input] = asyncio.Queue(maxsize=16)
        self._expected = expected
        self._ids: dict[rc.Channel, int] = {}
        self._by_id: dict[int, rc.Channel] = {}
        self._resize = rc.ResizeDecoder()
        self.ready = asyncio.Event()

    def has(self, channel: rc.Channel) -> bool:
        return channel in self._ids

    async def send(self, channel: rc.Channel, data: bytes) -> None:
        sid = self._ids.get(channel)
        if sid is not None:
            await self.conn.send(sid, data)

    async def close_channel(self, channel: rc.Channel) -> None:
        sid = self._ids.get(channel)
        if sid is not None and self.conn.session.is_open(sid):
            with contextlib.suppress(StreamClosedError):
                self.conn.session.end_stream(sid)
            await self.conn.flush()

    async def on_event(self, event: sp.Event) -> None:
        match event:
            case sp.StreamOpened(sid, headers, _ended):
                self._opened(sid, headers)
            case sp.DataReceived(sid, data):
                channel = self._by_id.get(sid)
                if channel is rc.Channel.STDIN:
                    await self.inputs.put(StdinData(data))
                elif channel is rc.Channel.RESIZE:
                    for size in self._resize.feed(data):
                        await self.inputs.put(Resize(size))
                self.conn.session.acknowledge(sid, len(data))
            case sp.StreamEnded(sid) | sp.StreamReset(sid, _):
                if self._by_id.get(sid) is rc.Channel.STDIN:
                    await self.inputs.put(StdinEnd())
            case sp.GoAwayReceived():
                pass

    def _opened(self, sid: int, headers: Headers) -> None:
        kind = rc.STREAM_TYPES.get((get(headers, "streamtype") or "").lower())
        if kind is None or kind in self._ids:
            log.info("spdy: refusing stream %d of type %r", sid, get(headers, "streamtype"))
            self.conn.session.reset(sid, RstStatus.REFUSED_STREAM)
            return
        self._ids[kind] = sid
        self._by_id[sid] = kind
        self.conn.session.reply(sid)
        if self._expected <= set(self._ids):
            self.ready.set()

    def client_gone_nowait(self) -> None:
        # Never blocks: drop queued input, the bridge only needs to learn the client left.
        while not self.inputs.empty():
            self.inputs.get_nowait()
        self.inputs.put_nowait(ClientGone())


def expected_streams(
    protocol: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool
) -> set[rc.Channel]:
    """The streams a client of ``protocol`` opens for these options (kubelet's count)."""
    want = {rc.Channel.ERROR}
    if stdin:
        want.add(rc.Channel.STDIN)
    if stdout:
        want.add(rc.Channel.STDOUT)
    if stderr:
        want.add(rc.Channel.STDERR)
    if tty and rc.has_resize(protocol):
        want.add(rc.Channel.RESIZE)
    return want
