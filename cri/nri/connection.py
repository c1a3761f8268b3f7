"""One plugin's connection: the sans-IO multiplexer and ttrpc over an asyncio stream.

The only module that reads or writes a plugin's socket. Conn 1 carries calls pinnace makes
to the plugin (:meth:`PluginConnection.call`); conn 2 carries the plugin's calls to pinnace,
handed to the ``serve`` callback one task each. Every call has a deadline; a call that
misses it raises :class:`CallTimeout` and its late answer is dropped. When the peer closes,
breaks the protocol or the socket fails, every pending call fails with
:class:`ConnectionClosed` and ``closed`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as PbMessage

from cri.nri import mux, ttrpc

log = logging.getLogger(__name__)

PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin"
RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime"
_READ_SIZE = 256 * 1024

M = TypeVar("M", bound=PbMessage)
Serve = Callable[[ttrpc.IncomingRequest], Awaitable[bytes]]


class ConnectionClosed(Exception):
    """The plugin's connection is gone."""


class CallTimeout(Exception):
    """The plugin did not answer within the request timeout."""


class PluginConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        serve: Serve,
        label: str = "plugin",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._serve = serve
        self.label = label
        self._demux = mux.Demultiplexer()
        self._client = ttrpc.ClientSide()
        self._client_reader = ttrpc.MessageReader()
        self._server = ttrpc.ServerSide()
        self._server_reader = ttrpc.MessageReader()
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()
        self._read_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._read_task = asyncio.ensure_future(self._read_loop())

    async def call(
        self,
        method: str,
        request: PbMessage,
        response: type[M],
        *,
        timeout: float,  # noqa: ASYNC109 - carried to the plugin in timeout_nano too
    ) -> M:
        """Call ``Plugin.<method>``; RpcError for a non-OK status or an answer that does not
        decode (the plugin's fault, reported like an error it returned)."""
        if self.closed.is_set():
            raise ConnectionClosed(f"{self.label}: connection closed")
        c = self._client.request(
            PLUGIN_SERVICE,
            method,
            request.SerializeToString(),
            timeout_nano=int(timeout * 1e9),
        )
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[c.stream_id] = fut
        try:
            self._send(mux.PLUGIN_SERVICE_CONN, c.data)
            async with asyncio.timeout(timeout):
                payload = await fut
        except TimeoutError:
            raise CallTimeout(f"{self.label}: {method} not answered within {timeout:g}s") from None
        finally:
            self._pending.pop(c.stream_id, None)
            self._client.forget(c.stream_id)
        try:
            return response.FromString(payload)
        except DecodeError as exc:
            raise ttrpc.RpcError(
                ttrpc.Code.INTERNAL, f"{self.label}: undecodable {method} response: {exc}"
            ) from None

    def _send(self, conn_id: int, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionClosed(f"{self.label}: connection closed")
        self._writer.write(mux.encode(conn_id, data))

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    break
                for frame in self._demux.receive_data(data):
                    self._dispatch(frame)
        except (mux.MuxProtocolError, ttrpc.TtrpcProtocolError) as exc:
            log.warning("%s: protocol error, dropping the connection: %s", self.label, exc)
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection failed: %s", self.label, exc)
        finally:
            self._fail_pending()

    def _dispatch(self, frame: mux.Frame) -> None:
        if frame.conn_id == mux.PLUGIN_SERVICE_CONN:
            for msg in self._client_reader.receive_data(frame.payload):
                answer = self._client.receive(msg)
                if answer is None:
                    continue
                stream_id, result = answer
                fut = self._pending.get(stream_id)
                if fut is None or fut.done():
                    continue
                if isinstance(result, ttrpc.RpcError):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        elif frame.conn_id == mux.RUNTIME_SERVICE_CONN:
            for msg in self._server_reader.receive_data(frame.payload):
                got = self._server.receive(msg)
                if isinstance(got, bytes):
                    self._send(mux.RUNTIME_SERVICE_CONN, got)
                elif got is not None:
                    task = asyncio.ensure_future(self._answer(got))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        # frames on conns nobody opened are dropped, as the Go multiplexer does

    async def _answer(self, req: ttrpc.IncomingRequest) -> None:
        try:
            if req.service != RUNTIME_SERVICE:
                data = self._server.error(
                    req.stream_id, ttrpc.Code.UNIMPLEMENTED, f"service {req.service}"
                )
            else:
                data = await self._serve(req)
        except ttrpc.RpcError as exc:
            data = self._server.error(req.stream_id, int(exc.code), exc.message)
        except DecodeError as exc:  # the plugin's bytes, not our bug
            data = self._server.error(
                req.stream_id,
                ttrpc.Code.INVALID_ARGUMENT,
                f"undecodable {req.method} request: {exc}",
            )
        except Exception as exc:
            log.exception("%s: %s.%s failed", self.label, req.service, req.method)
            data = self._server.error(req.stream_id, ttrpc.Code.INTERNAL, str(exc))
        with contextlib.suppress(ConnectionClosed):
            self._send(mux.RUNTIME_SERVICE_CONN, data)

    def _fail_pending(self) -> None:
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"{self.label}: connection closed"))
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self) -> None:
        self._fail_pending()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        for task in list(self._tasks):
            task.cancel()
