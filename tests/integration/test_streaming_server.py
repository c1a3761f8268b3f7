"""The streaming server on its own: a self-signed TLS listener on loopback (openssl makes the
pair), the answers before an upgrade, and URLs; no daemon, no containers."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path
from typing import Any

import pytest

from cri.config import StreamingConfig
from cri.streaming.requests import ExecRequest
from cri.streaming.server import StreamingServer
from cri.streaming.tokens import RequestKind

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


class NoContainers:
    async def exec_session(self, *a: Any, **k: Any) -> Any:
        raise AssertionError("not reached")

    async def attach(self, *a: Any, **k: Any) -> Any:
        raise AssertionError("not reached")

    async def resize(self, *a: Any, **k: Any) -> None:
        raise AssertionError("not reached")


class NoDialer:
    async def dial(self, netns: str, port: int) -> Any:
        raise AssertionError("not reached")


async def _ask(port: int, request: bytes) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(request)
    await writer.drain()
    reply = await reader.read(4096)
    writer.close()
    return reply


def test_self_signed_tls_and_the_answers_before_an_upgrade(tmp_path: Path) -> None:
    cfg = StreamingConfig(tls_self_signed=True)
    server = StreamingServer(cfg, containers=NoContainers(), dialer=NoDialer(), state_dir=tmp_path)

    async def run() -> None:
        async with server:
            url = server.url_for(
                RequestKind.EXEC, ExecRequest(container_id="c", cmd=("true",), stdout=True)
            )
            assert url.startswith(f"https://127.0.0.1:{server.port}/exec/")
            upgrade = b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            unknown = await _ask(
                server.port, b"GET /exec/nope HTTP/1.1\r\nHost: x\r\n" + upgrade + b"\r\n"
            )
            assert unknown.startswith(b"HTTP/1.1 404")
            token = url.rsplit("/", 1)[1]
            plain = await _ask(
                server.port, f"GET /exec/{token} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            assert plain.startswith(b"HTTP/1.1 400") and b"upgrade" in plain
            garbage = await _ask(server.port, b"\x16\x03garbage\r\n\r\n")
            assert garbage.startswith(b"HTTP/1.1 400")
            # a missing protocol header after a valid upgrade: 400, and the token is used up
            no_proto = await _ask(
                server.port,
                f"GET /exec/{token} HTTP/1.1\r\nHost: x\r\n".encode() + upgrade + b"\r\n",
            )
            assert no_proto.startswith(b"HTTP/1.1 400")
            again = await _ask(
                server.port,
                f"GET /exec/{token} HTTP/1.1\r\nHost: x\r\n".encode() + upgrade + b"\r\n",
            )
            assert again.startswith(b"HTTP/1.1 404")

    asyncio.run(run())
    assert (tmp_path / "streaming-tls" / "server.crt").exists()
