"""PluginConnection over a socket pair, the peer's bytes written by hand: deadlines, late
answers, a peer that goes away, and calls from the plugin to the runtime."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from cri.api.nri.v1alpha1 import api_pb2 as npb
from cri.nri import ttrpc
from cri.nri.connection import CallTimeout, ConnectionClosed, PluginConnection


def ld(field: int, data: bytes) -> bytes:
    assert len(data) < 128
    return bytes([field << 3 | 2, len(data)]) + data


def frame(conn: int, stream: int, mtype: int, body: bytes) -> bytes:
    msg = struct.pack(">IIBB", len(body), stream, mtype, 0) + body
    return struct.pack(">II", conn, len(msg)) + msg


class Peer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read_message(self) -> tuple[int, int, int, bytes, int]:
        """(conn, stream, type, payload, frame length) of the next message (one frame)."""
        conn, length = struct.unpack(">II", await self.reader.readexactly(8))
        data = await self.reader.readexactly(length)
        mlen, stream, mtype, _ = struct.unpack(">IIBB", data[:10])
        assert mlen == length - 10
        return conn, stream, mtype, data[10:], length


@pytest.fixture
async def pair() -> AsyncIterator[tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]]]:
    a, b = socket.socketpair()
    served: list[ttrpc.IncomingRequest] = []

    async def serve(req: ttrpc.IncomingRequest) -> bytes:
        served.append(req)
        return ttrpc.ServerSide.answer(req.stream_id, b"")

    r, w = await asyncio.open_unix_connection(sock=a)
    conn = PluginConnection(r, w, serve=serve)
    conn.start()
    pr, pw = await asyncio.open_unix_connection(sock=b)
    peer = Peer(pr, pw)
    yield conn, peer, served
    await conn.close()
    pw.close()


async def test_a_call_past_its_deadline_fails_and_its_late_answer_is_dropped(
    pair: tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]],
) -> None:
    conn, peer, _ = pair
    call = asyncio.ensure_future(
        conn.call("Configure", npb.ConfigureRequest(), npb.ConfigureResponse, timeout=0.2)
    )
    c, stream, mtype, payload, _ = await peer.read_message()
    assert (c, stream, mtype) == (1, 1, 1)
    assert b"nri.pkg.api.v1alpha1.Plugin" in payload and b"Configure" in payload
    with pytest.raises(CallTimeout):
        await call
    late = ld(2, b"\x10\x05")  # Response{payload=ConfigureResponse{events=5}}
    peer.writer.write(frame(1, 1, 2, late))
    second = asyncio.ensure_future(
        conn.call("Configure", npb.ConfigureRequest(), npb.ConfigureResponse, timeout=10)
    )
    _, stream, _, _, _ = await peer.read_message()
    assert stream == 3
    peer.writer.write(frame(1, 3, 2, ld(2, b"\x10\x07")))
    assert (await second).events == 7


async def test_a_peer_that_goes_away_fails_pending_calls(
    pair: tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]],
) -> None:
    conn, peer, _ = pair
    call = asyncio.ensure_future(
        conn.call("Synchronize", npb.SynchronizeRequest(), npb.SynchronizeResponse, timeout=10)
    )
    await peer.read_message()
    peer.writer.close()
    with pytest.raises(ConnectionClosed):
        await call
    await asyncio.wait_for(conn.closed.wait(), 10)
    with pytest.raises(ConnectionClosed):
        await conn.call("Shutdown", npb.Empty(), npb.Empty, timeout=1)


async def test_an_error_status_is_raised(
    pair: tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]],
) -> None:
    conn, peer, _ = pair
    call = asyncio.ensure_future(
        conn.call("RunPodSandbox", npb.RunPodSandboxRequest(), npb.Empty, timeout=10)
    )
    await peer.read_message()
    peer.writer.write(frame(1, 1, 2, ld(1, b"\x08\x02" + ld(2, b"boom"))))
    with pytest.raises(ttrpc.RpcError, match="UNKNOWN: boom"):
        await call


async def test_the_plugins_calls_reach_serve_and_get_answers(
    pair: tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]],
) -> None:
    _conn, peer, served = pair
    request = ld(1, b"nri.pkg.api.v1alpha1.Runtime") + ld(2, b"RegisterPlugin")
    peer.writer.write(frame(2, 1, 1, request))
    c, stream, mtype, payload, _ = await peer.read_message()
    assert (c, stream, mtype) == (2, 1, 2) and payload == b"\x0a\x00"
    assert served[0].method == "RegisterPlugin"
    # another service: UNIMPLEMENTED, without bothering serve
    peer.writer.write(frame(2, 3, 1, ld(1, b"other.Service") + ld(2, b"X")))
    _, stream, _, payload, _ = await peer.read_message()
    assert stream == 3 and payload.startswith(b"\x0a") and b"\x08\x0c" in payload
    assert len(served) == 1


async def test_large_requests_go_out_in_frames_of_at_most_4096(
    pair: tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]],
) -> None:
    conn, peer, _ = pair
    pods = [npb.PodSandbox(id=f"p{i}", name="x" * 200) for i in range(100)]
    call = asyncio.ensure_future(
        conn.call("Synchronize", npb.SynchronizeRequest(pods=pods), npb.Empty, timeout=10)
    )
    sizes, total, expected = [], 0, None
    while expected is None or total < expected:
        conn_id, length = struct.unpack(">II", await peer.reader.readexactly(8))
        assert conn_id == 1
        data = await peer.reader.readexactly(length)
        if expected is None:
            expected = struct.unpack(">I", data[:4])[0] + 10
        sizes.append(length)
        total += length
    assert len(sizes) > 1 and max(sizes) <= 4096
    peer.writer.write(frame(1, 1, 2, b""))
    await call


async def test_undecodable_bytes_are_the_peers_fault_not_a_crash(
    pair: tuple[PluginConnection, Peer, list[ttrpc.IncomingRequest]],
) -> None:
    conn, peer, _ = pair
    call = asyncio.ensure_future(
        conn.call("StopPodSandbox", npb.StopPodSandboxRequest(), npb.Empty, timeout=10)
    )
    await peer.read_message()
    # Response{payload=ff ff}: a truncated varint where a StopPodSandboxResponse should be
    peer.writer.write(frame(1, 1, 2, ld(2, b"\xff\xff")))
    with pytest.raises(ttrpc.RpcError, match="undecodable StopPodSandbox response") as err:
        await call
    assert err.value.code == ttrpc.Code.INTERNAL
    assert not conn.closed.is_set()  # the connection carries on


async def test_an_undecodable_request_is_answered_invalid_argument() -> None:
    a, b = socket.socketpair()

    async def serve(req: ttrpc.IncomingRequest) -> bytes:
        npb.RegisterPluginRequest.FromString(req.payload)
        return ttrpc.ServerSide.answer(req.stream_id, b"")

    r, w = await asyncio.open_unix_connection(sock=a)
    conn = PluginConnection(r, w, serve=serve)
    conn.start()
    pr, pw = await asyncio.open_unix_connection(sock=b)
    peer = Peer(pr, pw)
    try:
        request = ld(1, b"nri.pkg.api.v1alpha1.Runtime") + ld(2, b"RegisterPlugin")
        peer.writer.write(frame(2, 1, 1, request + ld(3, b"\x0a\x7f")))  # a name cut short
        _, stream, mtype, payload, _ = await peer.read_message()
        assert (stream, mtype) == (1, 2)
        assert payload.startswith(b"\x0a") and b"\x08\x03" in payload  # status code 3
        assert b"undecodable RegisterPlugin request" in payload
    finally:
        await conn.close()
        pw.close()
