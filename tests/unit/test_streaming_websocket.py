"""The WebSocket layer: channel framing (binary, base64, text frames, v5 close), whole
messages from any split of the bytes, bounded messages, and fuzzed input."""

from __future__ import annotations

import asyncio
import random

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto import events as we

from cri.streaming import websocket as ws


class FakeWriter:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _pair() -> tuple[WSConnection, WSConnection, bytes]:
    """A client and a server after the handshake; returns the client's first bytes too."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(
        client.send(we.Request(host="x", target="/exec/t", subprotocols=["v5.channel.k8s.io"]))
    )
    req = next(e for e in server.events() if isinstance(e, we.Request))
    client.receive_data(server.send(we.AcceptConnection(subprotocol=req.subprotocols[0])))
    assert isinstance(next(client.events()), we.AcceptConnection)
    return client, server, b""  # fmt: skip


def _receive_all(server: WSConnection, data: bytes) -> tuple[list[bytes | str], bool]:
    """Every message the server side gets from ``data``, and whether it closed."""

    async def run() -> tuple[list[bytes | str], bool]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        conn = ws.WsConnection(server, reader, FakeWriter(), base64_codec=False)  # type: ignore[arg-type]
        out = []
        while (msg := await conn.receive()) is not None:
            out.append(msg)
        return out, conn.closed

    return asyncio.run(run())


def test_messages_are_whole_whatever_the_fragmentation() -> None:
    client, server, _ = _pair()
    data = client.send(we.BytesMessage(data=b"\x00abc", message_finished=False))
    data += client.send(we.BytesMessage(data=b"def", message_finished=True))
    data += client.send(we.TextMessage(data="\x00text"))
    data += client.send(we.BytesMessage(data=bytes([255, 0])))
    msgs, _ = _receive_all(server, data)
    assert msgs == [b"\x00abcdef", "\x00text", bytes([255, 0])]


def test_channel_decoding() -> None:
    assert ws._decode(b"\x01out", base64_codec=False) == (1, b"out")
    assert ws._decode("\x00in", base64_codec=False) == (0, b"in")
    assert ws._decode("0aGk=", base64_codec=True) == (0, b"hi")
    assert ws._decode(b"4ey!9", base64_codec=True) is None  # bad base64 is dropped
    assert ws._decode(b"", base64_codec=False) is None


def test_base64_codec_on_the_way_out() -> None:
    _client, server, _ = _pair()
    writer = FakeWriter()

    async def run() -> None:
        conn = ws.WsConnection(server, asyncio.StreamReader(), writer, base64_codec=True)  # type: ignore[arg-type]
        await conn.send_channel(1, b"hi")

    asyncio.run(run())
    assert writer.data.endswith(b"1aGk=")


def test_a_message_too_large_closes_the_connection() -> None:
    client, server, _ = _pair()
    data = client.send(we.BytesMessage(data=b"\x00" + b"x" * (ws.MAX_MESSAGE + 10)))
    assert _receive_all(server, data) == ([], True)


@pytest.mark.parametrize("seed", range(30))
def test_fuzz_random_and_mutated_frames(seed: int) -> None:
    rng = random.Random(seed)
    client, _server, _ = _pair()
    valid = b"".join(
        client.send(we.BytesMessage(data=bytes([rng.randrange(5)]) + rng.randbytes(50)))
        for _ in range(5)
    )
    mutated = bytearray(valid)
    for _ in range(rng.randrange(1, 6)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    for data in (rng.randbytes(rng.randrange(1, 500)), bytes(mutated)):
        _c, srv, _ = _pair()
        msgs, _ = _receive_all(srv, data)
        for m in msgs:
            ws._decode(m, base64_codec=False)
