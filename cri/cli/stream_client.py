"""The client side of the streaming protocols for the ``pinnace`` CLI: an HTTP upgrade to
SPDY/3.1, then the remote-command or port-forward streams, on the same sans-IO SPDY session
the server uses (``cri.streaming.spdy``) driven by asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import cri.streaming.spdy.session as sp
from cri.streaming.spdy.errors import StreamClosedError
from runtime.errors import FailedPrecondition, Unavailable

_READ = 256 * 1024


@dataclass
class _ClientStream:
    id: int
    replied: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    on_data: Callable[[bytes], Awaitable[None]] | None = None
    data: bytearray = field(default_factory=bytearray)


class SpdyClientSession:
    """An upgraded connection with a client-side SPDY session."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.session = sp.Session(
            client=True, stream_window=1024 * 1024, session_window=8 * 1024 * 1024
        )
        self._reader = reader
        self._writer = writer
        self._streams: dict[int, _ClientStream] = {}
        self._window = asyncio.Event()
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, url: str, protocol: str) -> tuple[SpdyClientSession, str]:
        """Upgrade ``url`` offering ``protocol``; returns the session and what was agreed."""
        parts = urllib.parse.urlsplit(url)
        ctx = None
        if parts.scheme == "https":
            # The server's certificate may be self-signed (tls_self_signed): the token in the
            # URL, fetched over the daemon's socket, is what authorizes this connection.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if ctx else 80)
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx, limit=_READ)
        except OSError as e:
            raise Unavailable(f"cannot reach the streaming server at {host}:{port}: {e}") from e
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        writer.write(
            (
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: Upgrade\r\n"
                f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status != 101:
            body = b""
            with contextlib.suppress(Exception):
                body = await asyncio.wait_for(reader.read(4096), 5)
            writer.close()
            raise FailedPrecondition(
                f"the streaming server refused: HTTP {status} {body.decode(errors='replace')}"
            )
        client = cls(reader, writer)
        client._task = asyncio.create_task(client._run())
        return client, headers.get("x-stream-protocol-version", "")

    async def _flush(self) -> None:
        data = self.session.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def _run(self) -> None:
        try:
            while True:
                data = await self._reader.read(_READ)
                if not data:
                    return
                for event in self.session.receive_data(data):
                    await self._dispatch(event)
                await self._flush()
        except (ConnectionError, OSError):
            return
        finally:
            self.closed.set()
            self._window.set()
            for s in self._streams.values():
                s.ended.set()
                s.replied.set()

    async def _dispatch(self, event: sp.Event) -> None:
        match event:
            case sp.StreamReplied(sid, _):
                if sid in self._streams:
                    self._streams[sid].replied.set()
            case sp.DataReceived(sid, data):
                s = self._streams.get(sid)
                if s is not None:
                    if s.on_data is not None:
                        await s.on_data(data)
                    else:
                        s.data += data
                self.session.acknowledge(sid, len(data))
            case sp.StreamEnded(sid) | sp.StreamReset(sid, _):
                if sid in self._streams:
                    self._streams[sid].ended.set()
                    self._streams[sid].replied.set()
            case sp.WindowOpened():
                self._window.set()

    async def open(
        self,
        headers: dict[str, str],
        on_data: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> _ClientStream:
        sid = self.session.open_stream(list(headers.items()))
        stream = _ClientStream(sid, on_data=on_data)
        self._streams[sid] = stream
        await self._flush()
        return stream

    async def send(self, stream: _ClientStream, data: bytes, *, fin: bool = False) -> None:
        pos = 0
        while not self.closed.is_set():
            try:
                pos += self.session.send_data(stream.id, data[pos:], fin=fin)
            except StreamClosedError:
                return
            await self._flush()
            if pos >= len(data):
                return
            self._window.clear()
            await self._window.wait()

    async def reset(self, stream: _ClientStream) -> None:
        """Abandon ``stream`` both ways (RST_STREAM)."""
        self.session.reset(stream.id)
        stream.ended.set()
        await self._flush()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.goaway()
            await self._flush()
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def exit_code_of(status: bytes) -> int:
    """The exit code a v4 error-stream status reports (0 for Success or nothing)."""
    if not status:
        return 0
    try:
        obj = json.loads(status)
    except ValueError:
        return 1
    if obj.get("status") == "Success":
        return 0
    for cause in (obj.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(ValueError):
                return int(cause.get("message", "1"))
    return 1


def status_message(status: bytes) -> str:
    try:
        obj = json.loads(status)
    except ValueError:
        return status.decode(errors="replace")
    return str(obj.get("message", ""))
