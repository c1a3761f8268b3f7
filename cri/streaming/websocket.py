"""WebSocket (RFC 6455) for exec, attach and port-forward, with ``wsproto`` (sans-IO).

Subprotocols (``Sec-WebSocket-Protocol``; the first one the client offers that we speak
wins, and a client that offers none gets the plain binary channel protocol):

- exec/attach: ``v5.channel.k8s.io`` (v4 plus the close signal ``[255, channel]``),
  ``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``, ``channel.k8s.io``,
  ``base64.channel.k8s.io``. Channels: stdin 0, stdout 1, stderr 2, error 3, resize 4.
  Once open, the server sends an empty message on the lowest output channel the client
  asked for, so the client knows the session is up.
- port-forward: ``SPDY/3.1+portforward.k8s.io`` (binary messages carry a SPDY session's
  bytes: the SPDY port-forward protocol, tunnelled), and the channel-per-port protocol
  (``v4.channel.k8s.io``, ``channel.k8s.io``, ``base64.`` forms): ports in the query string,
  port *i* has data channel 2i and error channel 2i+1, and the first message on every channel
  is the port as two little-endian bytes.

A client offering only other subprotocols gets 403 with the list of ours.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import TYPE_CHECKING

from wsproto import ConnectionType, WSConnection
from wsproto import events as we
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from cri.streaming import http1
from cri.streaming import remotecommand as rc
from cri.streaming.bridge import ClientGone, Input, Resize, StdinData, StdinEnd
from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest, StreamRequest
from cri.streaming.tokens import RequestKind

if TYPE_CHECKING:
    from cri.streaming.server import StreamingServer

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = (
    rc.V5,
    rc.V4,
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
)
TUNNELED_SPDY = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_PROTOCOLS = (
    TUNNELED_SPDY,
    rc.V4,
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
)
# A message larger than this is refused (close 1009): channel messages are small, and
# assembling a message is the one buffer a client could otherwise grow.
MAX_MESSAGE = 4 * 1024 * 1024
_READ = 256 * 1024


def is_websocket(head: http1.RequestHead) -> bool:
    return head.get("upgrade").lower() == "websocket" and head.has_token("connection", "upgrade")


class WsConnection:
    """A server-side WebSocket after the handshake: whole messages in, messages out."""

    def __init__(
        self,
        ws: WSConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        base64_codec: bool,
    ) -> None:
        self._ws = ws
        self._reader = reader
        self._writer = writer
        self.base64 = base64_codec
        self._pending: list[we.Event] = []
        self._parts: list[bytes | str] = []
        self._size = 0
        self.closed = False

    async def _write(self, data: bytes) -> None:
        if data and not self._writer.is_closing():
            self._writer.write(data)
            await self._writer.drain()

    async def send_bytes(self, payload: bytes) -> None:
        if self.closed:
            return
        try:
            await self._write(self._ws.send(we.BytesMessage(data=payload)))
        except LocalProtocolError:
            self.closed = True

    async def send_channel(self, channel: int, data: bytes) -> None:
        """One channel message in the negotiated codec."""
        if self.closed:
            return
        if self.base64:
            text = chr(ord("0") + channel) + base64.b64encode(data).decode()
            try:
                await self._write(self._ws.send(we.TextMessage(data=text)))
            except LocalProtocolError:
                self.closed = True
        else:
            await self.send_bytes(bytes([channel]) + data)

    async def receive(self) -> bytes | str | None:
        """The next whole message; None once the connection ended."""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, we.Message):
                    self._size += len(event.data)
                    if self._size > MAX_MESSAGE:
                        await self.close(1009, "message too large")
                        return None
                    self._parts.append(event.data)
                    if event.message_finished:
                        parts, self._parts, self._size = self._parts, [], 0
                        if isinstance(parts[0], str):
                            return "".join(str(p) for p in parts)
                        return b"".join(bytes(p) for p in parts)  # type: ignore[arg-type]
                elif isinstance(event, we.Ping):
                    await self._write(self._ws.send(event.response()))
                elif isinstance(event, we.CloseConnection):
                    with contextlib.suppress(LocalProtocolError):
                        await self._write(self._ws.send(event.response()))
                    self.closed = True
                    return None
            if self.closed:
                return None
            try:
                data = await self._reader.read(_READ)
            except ConnectionError:
                data = b""
            if not data:
                self.closed = True
                return None
            try:
                self._ws.receive_data(data)
                self._pending.extend(self._ws.events())
            except RemoteProtocolError as e:
                log.info("websocket: peer broke the protocol: %s", e)
                with contextlib.suppress(Exception):
                    await self._write((e.event_hint and self._ws.send(e.event_hint)) or b"")
                self.closed = True
                return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(LocalProtocolError, ConnectionError, OSError):
                await self._write(self._ws.send(we.CloseConnection(code=code, reason=reason)))
        with contextlib.suppress(Exception):
            self._writer.close()


class WsRemoteCommandStreams:
    """Remote-command channels over a WebSocket (``bridge.ClientStreams``)."""

    def __init__(self, conn: WsConnection, request: ExecRequest | AttachRequest) -> None:
        self.conn = conn
        self.inputs: asyncio.Queue[Input] = asyncio.Queue(maxsize=16)
        self._open = {rc.Channel.ERROR}
        for flag, ch in (
            (request.stdout, rc.Channel.STDOUT),
            (request.stderr, rc.Channel.STDERR),
        ):
            if flag:
                self._open.add(ch)
        self._stdin = request.stdin
        self._resize = rc.ResizeDecoder()

    def has(self, channel: rc.Channel) -> bool:
        return channel in self._open

    async def send(self, channel: rc.Channel, data: bytes) -> None:
        if channel in self._open:
            await self.conn.send_channel(int(channel), data)

    async def close_channel(self, channel: rc.Channel) -> None:
        # The server's side ends with the connection; nothing to signal per channel.
        return

    async def read_loop(self) -> None:
        """Decode the client's messages into inputs until it goes away."""
        try:
            while True:
                msg = await self.conn.receive()
                if msg is None:
                    return
                decoded = _decode(msg, base64_codec=self.conn.base64)
                if decoded is None:
                    continue
                channel, data = decoded
                if channel == rc.CLOSE_SIGNAL:
                    if data[:1] == bytes([rc.Channel.STDIN]) and self._stdin:
                        await self.inputs.put(StdinEnd())
                elif channel == rc.Channel.STDIN and self._stdin:
                    await self.inputs.put(StdinData(data))
                elif channel == rc.Channel.RESIZE:
                    for size in self._resize.feed(data):
                        await self.inputs.put(Resize(size))
        finally:
            while not self.inputs.empty():
                self.inputs.get_nowait()
            self.inputs.put_nowait(ClientGone())


def _decode(msg: bytes | str, *, base64_codec: bool) -> tuple[int, bytes] | None:
    if not msg:
        return None
    if isinstance(msg, str):
        if not base64_codec:
            # Text frames on a binary protocol: clients (the kubernetes Python client among
            # them) send str data that way; the first character is the channel byte.
            return ord(msg[0]), msg[1:].encode("utf-8")
        channel = ord(msg[0]) - ord("0")
        try:
            return channel, base64.b64decode(msg[1:], validate=True)
        except (binascii.Error, ValueError):
            return None
    if base64_codec:
        channel = msg[0] - ord("0")
        try:
            return channel, base64.b64decode(msg[1:], validate=True)
        except (binascii.Error, ValueError):
            return None
    return msg[0], bytes(msg[1:])


async def serve(
    server: StreamingServer,
    kind: RequestKind,
    request: StreamRequest,
    head: http1.RequestHead,
    head_reader: http1.RequestReader,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Complete the handshake for ``request`` and run its protocol."""
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(bytes(head_reader.raw))
        events = list(ws.events())
    except RemoteProtocolError as e:
        writer.write(http1.response(400, f"bad websocket handshake: {e}"))
        await writer.drain()
        return
    hs = next((e for e in events if isinstance(e, we.Request)), None)
    if hs is None:
        writer.write(http1.response(400, "bad websocket handshake"))
        await writer.drain()
        return
    supported = PORTFORWARD_PROTOCOLS if kind is RequestKind.PORTFORWARD else EXEC_PROTOCOLS
    offered = list(hs.subprotocols)
    chosen = rc.negotiate(offered, supported)
    if offered and chosen is None:
        writer.write(http1.response(
            403,
            f"requested protocol(s) are not supported: {offered}; supports {list(supported)}",
            headers=[(rc.HEADER_ACCEPTED, p) for p in supported],
        ))  # fmt: skip
        await writer.drain()
        return
    accept = ws.send(we.AcceptConnection(subprotocol=chosen))
    writer.write(accept)
    await writer.drain()
    conn = WsConnection(ws, reader, writer, base64_codec="base64" in (chosen or ""))
    # Frames that came with the handshake are already in wsproto; collect their events.
    conn._pending.extend(ws.events())
    try:
        if isinstance(request, PortForwardRequest):
            from cri.streaming import portforward

            if chosen == TUNNELED_SPDY:
                await portforward.serve_tunneled(request, conn, server.dialer, server.cfg)
            else:
                await portforward.serve_ws_channels(request, head, conn, server.dialer)
            return
        assert isinstance(request, ExecRequest | AttachRequest)
        # The error channel's format follows the version: JSON Status from v4 on.
        if chosen == rc.V5:
            protocol = rc.V5
        elif (chosen or "").startswith("v4."):
            protocol = rc.V4
        else:
            protocol = rc.V1
        streams = WsRemoteCommandStreams(conn, request)
        first = next(
            (c for c in (rc.Channel.STDOUT, rc.Channel.STDERR) if streams.has(c)),
            rc.Channel.ERROR,
        )
        await conn.send_channel(int(first), b"")
        reading = asyncio.create_task(streams.read_loop())
        try:
            await server.remote_command(streams, request, protocol)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
    finally:
        await conn.close()
