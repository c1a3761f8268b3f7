"""The streaming server: the one place pinnace listens on TCP for exec, attach and
port-forward. Each connection is one request: ``GET /<exec|attach|portforward>/<token>``
asking to upgrade to SPDY/3.1 (``Connection: Upgrade``, ``Upgrade: SPDY/3.1``) or to a
WebSocket. The token (from the Exec/Attach/PortForward RPC) is consumed on use.

Answers before an upgrade: 400 for a request that is not a valid upgrade, 404 for an
unknown, used or expired token, 403 (listing ours in ``X-Accepted-Stream-Protocol-Versions``)
when the client speaks none of our stream protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
import subprocess
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from cri.config import StreamingConfig
from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest, StreamRequest
from cri.streaming.tokens import RequestKind, TokenCache
from runtime import lazy
from runtime.errors import FailedPrecondition, PinnaceError
from runtime.tasks.attach import AttachedStdio
from runtime.tasks.exec_session import ExecSession

if TYPE_CHECKING:
    from cri.streaming import bridge, http1, portforward, spdy_conn, websocket
    from cri.streaming import remotecommand as rc
else:
    # The protocols (h11, wsproto, SPDY and the bridges: ~60 ms of imports) are imported when
    # the first connection arrives, on a thread (``_accept``), not with the daemon's start.
    bridge = lazy.module("cri.streaming.bridge")
    http1 = lazy.module("cri.streaming.http1")
    portforward = lazy.module("cri.streaming.portforward")
    spdy_conn = lazy.module("cri.streaming.spdy_conn")
    websocket = lazy.module("cri.streaming.websocket")
    rc = lazy.module("cri.streaming.remotecommand")
_PROTOCOLS = (
    "cri.streaming.bridge",
    "cri.streaming.http1",
    "cri.streaming.portforward",
    "cri.streaming.spdy_conn",
    "cri.streaming.websocket",
    "cri.streaming.remotecommand",
)

log = logging.getLogger(__name__)

_HEAD_TIMEOUT = 30.0


class Containers(Protocol):
    """What the server needs of the pod layer (``runtime.pods.containers``)."""

    async def exec_session(
        self, container_id: str, argv: list[str], *, tty: bool, stdin: bool
    ) -> ExecSession: ...

    async def attach(self, container_id: str) -> AttachedStdio: ...

    async def resize(self, container_id: str, *, rows: int, cols: int) -> None: ...


class StreamingServer:
    """Listens (an async context manager) and issues URLs (``url_for``)."""

    def __init__(
        self,
        cfg: StreamingConfig,
        *,
        containers: Containers,
        dialer: portforward.Dialer,
        state_dir: Path,
    ) -> None:
        self._cfg = cfg
        self._containers = containers
        self._dialer = dialer
        self._state_dir = state_dir
        self._tokens: TokenCache[StreamRequest] = TokenCache(
            ttl=cfg.token_timeout, capacity=cfg.max_tokens
        )
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._protocols_loaded = False
        self.port = 0

    # ---- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> StreamingServer:
        ctx = await asyncio.to_thread(self._tls_context) if self._cfg.tls else None
        try:
            self._server = await asyncio.start_server(
                self._accept, self._cfg.address, self._cfg.port, ssl=ctx, limit=1024 * 1024
            )
        except OSError as exc:  # one clear line for the operator, not a bind traceback
            taken = exc.errno == errno.EADDRINUSE
            raise FailedPrecondition(
                f"streaming {self._cfg.address}:{self._cfg.port}: cannot listen:"
                f" {exc.strerror or exc}"
                + (
                    " (another process has it; choose another with --stream-port or"
                    " [streaming] port, 0 for any free one)"
                    if taken
                    else ""
                )
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("streaming server on %s", self.base_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def dialer(self) -> portforward.Dialer:
        return self._dialer

    @property
    def cfg(self) -> StreamingConfig:
        return self._cfg

    def _tls_context(self) -> ssl.SSLContext:
        cert, key = self._cfg.tls_cert, self._cfg.tls_key
        if cert is None or key is None:
            cert, key = self._self_signed()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def _self_signed(self) -> tuple[Path, Path]:
        """A fresh key pair for this run (openssl), valid for the listen address."""
        d = self._state_dir / "streaming-tls"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert, key = d / "server.crt", d / "server.key"
        san = "IP:127.0.0.1,IP:::1,DNS:localhost"
        if self._host_is_ip(self._cfg.address):
            san += f",IP:{self._cfg.address}"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "365", "-subj", "/CN=pinnace-streaming", "-addext",
             f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return cert, key

    @staticmethod
    def _host_is_ip(host: str) -> bool:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    @property
    def base_url(self) -> str:
        host = self._cfg.address
        if host in ("0.0.0.0", "::", ""):
            # Unspecified: name an address the node answers on, so the URL has a host.
            try:
                host = socket.gethostbyname(socket.gethostname())
            except OSError:
                host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._cfg.tls else "http"
        return f"{scheme}://{host}:{self.port}"

    def url_for(self, kind: RequestKind, request: StreamRequest) -> str:
        return f"{self.base_url}/{kind.value}/{self._tokens.issue(kind, request)}"

    # ---- connections --------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if not self._protocols_loaded:
                await asyncio.to_thread(lazy.preload, *_PROTOCOLS)
                self._protocols_loaded = True
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:
            log.exception("streaming connection failed")
        finally:
            self._connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_reader = http1.RequestReader()
        try:
            head = await asyncio.wait_for(self._read_head(reader, head_reader), _HEAD_TIMEOUT)
        except TimeoutError:
            return
        except http1.BadRequest as e:
            writer.write(http1.response(400, f"bad request: {e}"))
            await writer.drain()
            return
        if head is None:
            return
        answer = self._route(head)
        if isinstance(answer, bytes):
            writer.write(answer)
            await writer.drain()
            return
        kind, request = answer
        if websocket.is_websocket(head):
            await websocket.serve(self, kind, request, head, head_reader, reader, writer)
            return
        if isinstance(request, PortForwardRequest):
            await portforward.serve_spdy(
                request, head, head_reader.trailing, reader, writer,
                dialer=self._dialer, cfg=self._cfg,
            )  # fmt: skip
            return
        await self._remote_command_spdy(request, head, head_reader.trailing, reader, writer)

    async def _read_head(
        self, reader: asyncio.StreamReader, head_reader: http1.RequestReader
    ) -> http1.RequestHead | None:
        while True:
            data = await reader.read(4096)
            if not data:
                return None
            head = head_reader.feed(data)
            if head is not None:
                return head

    def _route(self, head: http1.RequestHead) -> bytes | tuple[RequestKind, StreamRequest]:
        parts = head.path.strip("/").split("/")
        if len(parts) != 2:
            return http1.response(404, f"no such streaming endpoint {head.path}")
        try:
            kind = RequestKind(parts[0])
        except ValueError:
            return http1.response(404, f"no such streaming endpoint {head.path}")
        # The kubelet's streaming server routes GET and POST alike (kubectl exec POSTs).
        if head.method not in ("GET", "POST"):
            return http1.response(400, f"{head.method} is not an upgrade request; use GET")
        spdy = head.has_token("connection", "upgrade") and head.get("upgrade").lower() in (
            "spdy/3.1",
        )
        if not spdy and not websocket.is_websocket(head):
            return http1.response(
                400,
                "unable to upgrade: missing upgrade headers in request (want Connection: "
                "Upgrade with Upgrade: SPDY/3.1 or websocket)",
            )
        request = self._tokens.consume(kind, parts[1])
        if request is None:
            return http1.response(404, "unknown, used or expired streaming token")
        return kind, request

    # ---- exec and attach over SPDY --------------------------------------------------------

    async def _remote_command_spdy(
        self,
        request: StreamRequest,
        head: http1.RequestHead,
        initial: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        assert isinstance(request, ExecRequest | AttachRequest)
        offered = rc.split_header_values(head.get_all(rc.HEADER_PROTOCOL))
        if not offered:
            writer.write(http1.response(
                400, f"unable to upgrade: {rc.HEADER_PROTOCOL} is required"))  # fmt: skip
            await writer.drain()
            return
        protocol = rc.negotiate(offered, rc.SPDY_PROTOCOLS)
        if protocol is None:
            writer.write(http1.response(
                403,
                f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                f"server accepts {list(rc.SPDY_PROTOCOLS)}",
                headers=[(rc.HEADER_ACCEPTED, p) for p in rc.SPDY_PROTOCOLS],
            ))  # fmt: skip
            await writer.drain()
            return
        writer.write(http1.switching_protocols([
            ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), (rc.HEADER_PROTOCOL, protocol),
        ]))  # fmt: skip
        conn = spdy_conn.SpdyConnection(
            spdy_conn.StreamTransport(reader, writer), idle_timeout=self._cfg.idle_timeout
        )
        streams = spdy_conn.RemoteCommandStreams(
            conn,
            expected=spdy_conn.expected_streams(
                protocol, stdin=request.stdin, stdout=request.stdout,
                stderr=request.stderr, tty=request.tty,
            ),
        )  # fmt: skip
        reading = asyncio.create_task(conn.run(streams.on_event, initial))
        try:
            ready = asyncio.create_task(streams.ready.wait())
            await asyncio.wait(
                {ready, reading}, timeout=self._cfg.stream_creation_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            ready.cancel()
            if not streams.ready.is_set():
                log.info("streaming: client did not open its streams in time")
                return
            reading.add_done_callback(lambda _t: streams.client_gone_nowait())
            await self.remote_command(streams, request, protocol)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            await conn.close()

    async def remote_command(
        self, streams: bridge.ClientStreams, request: ExecRequest | AttachRequest, protocol: str
    ) -> None:
        """Run the exec or attach behind ``request`` against negotiated ``streams`` (any
        transport); reports failures to start on the error stream."""
        if isinstance(request, ExecRequest):
            await self._exec(streams, request, protocol)
        else:
            await self._attach(streams, request, protocol)

    async def _exec(self, streams: bridge.ClientStreams, req: ExecRequest, protocol: str) -> None:
        try:
            session = await self._containers.exec_session(
                req.container_id, list(req.cmd), tty=req.tty, stdin=req.stdin
            )
        except PinnaceError as e:
            await _report(streams, protocol, f"exec in {req.container_id} failed: {e}")
            return
        try:

            async def resize(size: rc.TerminalSize) -> None:
                session.resize(rows=size.height, cols=size.width)

            async def status() -> bytes:
                return rc.exit_status(protocol, await session.wait(), req.cmd)

            await bridge.run(streams, session.stdio, tty=req.tty, resize=resize, exit_status=status)
        finally:
            await asyncio.shield(session.release())

    async def _attach(
        self, streams: bridge.ClientStreams, req: AttachRequest, protocol: str
    ) -> None:
        try:
            stdio = await self._containers.attach(req.container_id)
        except PinnaceError as e:
            await _report(streams, protocol, f"attach to {req.container_id} failed: {e}")
            return
        try:

            async def resize(size: rc.TerminalSize) -> None:
                await self._containers.resize(req.container_id, rows=size.height, cols=size.width)

            async def status() -> bytes:
                return rc.exit_status(protocol, 0)

            await bridge.run(streams, stdio, tty=req.tty, resize=resize, exit_status=status)
        finally:
            stdio.close()


async def _report(streams: bridge.ClientStreams, protocol: str, message: str) -> None:
    log.info("streaming: %s", message)
    if streams.has(rc.Channel.ERROR):
        await streams.send(rc.Channel.ERROR, rc.error_status(protocol, message))
        await streams.close_channel(rc.Channel.ERROR)
