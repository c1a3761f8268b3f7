"""Port forwarding: bytes between a client's streams and TCP connections dialled inside the
pod's network namespace.

``portforward.k8s.io`` over SPDY (also tunnelled in a WebSocket): for each connection the
client opens two streams with headers ``streamType`` (``error`` or ``data``), ``port`` and
``requestID``; the pair with one request id is one TCP connection to that port. A failed
dial is reported as text on the error stream and both streams end; otherwise bytes are
copied both ways, a FIN from either side half-closes the other.

The channel-per-port WebSocket protocol: ports come in the ``ports`` query parameter (one
connection per port for the whole session); see ``websocket`` for the framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cri.config import StreamingConfig
from cri.streaming import http1
from cri.streaming.requests import PortForwardRequest
from cri.streaming.spdy import session as sp
from cri.streaming.spdy.frames import RstStatus
from cri.streaming.spdy.headers import get
from cri.streaming.spdy_conn import SpdyConnection, StreamTransport
from runtime.errors import PinnaceError

if TYPE_CHECKING:
    from cri.streaming.websocket import WsConnection

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
_READ = 256 * 1024
# Bytes from the client queued for one pod connection before we stop reading the client.
_QUEUE = 8


class Dialer(Protocol):
    """Connects to ``port`` on localhost inside the network namespace ``netns`` (a file;
    empty: the host's). Raises PinnaceError saying why when nothing accepts."""

    async def dial(self, netns: str, port: int) -> socket.socket: ...


@dataclass(slots=True)
class _Pair:
    """One forwarded connection: the data and error streams of one request id."""

    port: int
    data_id: int = 0
    error_id: int = 0
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(_QUEUE))
    task: asyncio.Task[None] | None = None


class SpdyPortForward:
    """The port-forward protocol's stream handling on one SPDY session."""

    def __init__(self, conn: SpdyConnection, request: PortForwardRequest, dialer: Dialer) -> None:
        self.conn = conn
        self.request = request
        self.dialer = dialer
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}

    async def on_event(self, event: sp.Event) -> None:
        s = self.conn.session
        match event:
            case sp.StreamOpened(sid, headers, _ended):
                kind = (get(headers, "streamtype") or "").lower()
                port_text = get(headers, "port") or ""
                rid = get(headers, "requestid") or str(sid)
                if kind not in ("data", "error") or not port_text.isdigit():
                    s.reset(sid, RstStatus.PROTOCOL_ERROR)
                    return
                port = int(port_text)
                if not 0 < port < 65536 or (self.request.ports and port not in self.request.ports):
                    s.reset(sid, RstStatus.REFUSED_STREAM)
                    return
                pair = self.pairs.setdefault(rid, _Pair(port))
                if kind == "data":
                    pair.data_id = sid
                else:
                    pair.error_id = sid
                self.by_stream[sid] = pair
                s.reply(sid)
                if pair.data_id and pair.error_id and pair.task is None:
                    pair.task = asyncio.create_task(self._forward(rid, pair))
            case sp.DataReceived(sid, data):
                got = self.by_stream.get(sid)
                if got is not None and sid == got.data_id:
                    await got.queue.put(data)
                s.acknowledge(sid, len(data))
            case sp.StreamEnded(sid):
                ended = self.by_stream.get(sid)
                if ended is not None and sid == ended.data_id:
                    await ended.queue.put(None)
            case sp.StreamReset(sid, _):
                # The client gave up on the connection: close it both ways at once.
                gone = self.by_stream.get(sid)
                if gone is not None and gone.task is not None:
                    gone.task.cancel()

    async def _forward(self, rid: str, pair: _Pair) -> None:
        try:
            try:
                sock = await self.dialer.dial(self.request.netns, pair.port)
            except PinnaceError as e:
                message = f"error forwarding port {pair.port} to pod {self.request.sandbox_id}: {e}"
                await self.conn.send(pair.error_id, message.encode(), fin=True)
                if self.conn.session.is_open(pair.data_id):
                    self.conn.session.end_stream(pair.data_id)
                    await self.conn.flush()
                return
            reset = await copy_both(
                sock,
                pair.queue,
                lambda data: self.conn.send(pair.data_id, data),
                lambda: self._end(pair),
            )
            if reset is not None and self.conn.session.is_open(pair.error_id):
                message = f"error forwarding port {pair.port}: {reset}"
                await self.conn.send(pair.error_id, message.encode(), fin=True)
        finally:
            self.pairs.pop(rid, None)
            for sid in (pair.data_id, pair.error_id):
                self.by_stream.pop(sid, None)
                if self.conn.session.is_open(sid):
                    self.conn.session.reset(sid, RstStatus.CANCEL)

    async def _end(self, pair: _Pair) -> None:
        for sid in (pair.data_id, pair.error_id):
            if self.conn.session.is_open(sid):
                self.conn.session.end_stream(sid)
        await self.conn.flush()

    def cancel_all(self) -> None:
        for pair in list(self.pairs.values()):
            if pair.task is not None:
                pair.task.cancel()


async def copy_both(
    sock: socket.socket,
    incoming: asyncio.Queue[bytes | None],
    send: _Send,
    end: _End,
) -> str | None:
    """Copy the client's bytes (``incoming``; None is its FIN) into ``sock`` and the
    socket's bytes out through ``send``; ``end`` half-closes the client's side at the
    socket's EOF. Returns when both directions are done: None, or what broke the pod's
    connection (a reset) for the caller to report."""
    reader, writer = await asyncio.open_connection(sock=sock, limit=_READ)

    async def to_pod() -> None:
        while True:
            data = await incoming.get()
            if data is None:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    async def from_pod() -> None:
        while True:
            data = await reader.read(_READ)
            if not data:
                await end()
                return
            if not await send(data):
                raise _ClientGone

    tasks = [asyncio.create_task(to_pod()), asyncio.create_task(from_pod())]
    broken: str | None = None
    try:
        await asyncio.gather(*tasks)
    except _ClientGone:
        pass
    except ConnectionResetError as e:
        broken = str(e) or "connection reset"
    except (ConnectionError, OSError) as e:
        broken = str(e) or type(e).__name__
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        writer.close()
    return broken


class _ClientGone(Exception):
    """The client's side of a forwarded connection went away: nothing left to report to."""


class _Send(Protocol):
    async def __call__(self, data: bytes) -> bool:
        """Send to the client; False when the client's side is gone."""
        ...


class _End(Protocol):
    async def __call__(self) -> None: ...


async def _run_spdy(conn: SpdyConnection, handler: SpdyPortForward, initial: bytes) -> None:
    try:
        await conn.run(handler.on_event, initial)
    finally:
        handler.cancel_all()
        await conn.close()


async def serve_spdy(
    request: PortForwardRequest,
    head: http1.RequestHead,
    initial: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    dialer: Dialer,
    cfg: StreamingConfig,
) -> None:
    """Port-forward over a SPDY upgrade of this connection."""
    from cri.streaming import remotecommand as rc

    offered = rc.split_header_values(head.get_all(rc.HEADER_PROTOCOL))
    if PROTOCOL not in offered:
        writer.write(http1.response(
            403, f"unable to upgrade: client supports {offered}, server accepts {[PROTOCOL]}",
            headers=[(rc.HEADER_ACCEPTED, PROTOCOL)],
        ))  # fmt: skip
        await writer.drain()
        return
    writer.write(http1.switching_protocols([
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), (rc.HEADER_PROTOCOL, PROTOCOL),
    ]))  # fmt: skip
    conn = SpdyConnection(StreamTransport(reader, writer), idle_timeout=cfg.idle_timeout)
    await _run_spdy(conn, SpdyPortForward(conn, request, dialer), initial)


class _WsTunnel:
    """A ByteTransport carrying SPDY in binary WebSocket messages."""

    def __init__(self, ws: WsConnection) -> None:
        self.ws = ws

    async def receive(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg is None:
                return b""
            if isinstance(msg, bytes) and msg:
                return msg

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


async def serve_tunneled(
    request: PortForwardRequest, ws: WsConnection, dialer: Dialer, cfg: StreamingConfig
) -> None:
    """``SPDY/3.1+portforward.k8s.io``: the SPDY protocol inside the WebSocket."""
    conn = SpdyConnection(_WsTunnel(ws), idle_timeout=cfg.idle_timeout)
    await _run_spdy(conn, SpdyPortForward(conn, request, dialer), b"")


def query_ports(query: str) -> list[int]:
    """The ``ports`` query parameter(s): ``ports=80,8080`` or repeated."""
    ports: list[int] = []
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key == "ports":
            for part in value.split(","):
                if part.strip().isdigit() and 0 < int(part) < 65536:
                    ports.append(int(part))
    return ports


async def serve_ws_channels(
    request: PortForwardRequest, head: http1.RequestHead, ws: WsConnection, dialer: Dialer
) -> None:
    """The channel-per-port protocol: one connection per port for the whole session."""
    ports = query_ports(head.query) or list(request.ports)
    if not ports:
        await ws.close(1008, "no ports: give ?ports=N")
        return
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await ws.send_channel(2 * i, prefix)
        await ws.send_channel(2 * i + 1, prefix)
    queues: list[asyncio.Queue[bytes | None]] = [asyncio.Queue(_QUEUE) for _ in ports]

    async def one(i: int, port: int) -> None:
        try:
            sock = await dialer.dial(request.netns, port)
        except PinnaceError as e:
            msg = f"error forwarding port {port} to pod {request.sandbox_id}: {e}"
            await ws.send_channel(2 * i + 1, msg.encode())
            return

        async def send(data: bytes) -> bool:
            await ws.send_channel(2 * i, data)
            return not ws.closed

        async def end() -> None:
            return

        await copy_both(sock, queues[i], send, end)

    workers = [asyncio.create_task(one(i, p)) for i, p in enumerate(ports)]

    async def all_workers() -> None:
        await asyncio.gather(*workers, return_exceptions=True)

    all_done = asyncio.create_task(all_workers())

    async def read() -> None:
        while True:
            msg = await ws.receive()
            if msg is None:
                for q in queues:
                    with contextlib.suppress(asyncio.QueueFull):
                        q.put_nowait(None)
                return
            if isinstance(msg, str) or not msg:
                continue
            channel, data = msg[0], msg[1:]
            if channel % 2 == 0 and channel // 2 < len(queues):
                idx = channel // 2
                await queues[idx].put(bytes(data))

    reading = asyncio.create_task(read())
    try:
        await asyncio.wait({reading, all_done}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (reading, all_done, *workers):
            t.cancel()
        for t in (reading, all_done, *workers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
