"""The streaming server on its own: a self-signed TLS listener on loopback (openssl makes the
pair), the answers before an upgrade, and URLs; no daemon, no containers."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from cri.config import StreamingConfig
from cri.streaming.requests import ExecRequest, PortForwardRequest
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


def test_a_connection_without_streams_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    cfg = StreamingConfig(idle_timeout=0.5)
    server = StreamingServer(cfg, containers=NoContainers(), dialer=NoDialer(), state_dir=tmp_path)

    async def run() -> tuple[bytes, float]:
        async with server:
            url = server.url_for(
                RequestKind.PORTFORWARD, PortForwardRequest(sandbox_id="p", netns="")
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            path = url.split("/", 3)[3]
            writer.write(
                f"POST /{path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1"
                "\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n".encode()
            )
            started = time.monotonic()
            # The server's own deadline ends this read; ours only bounds a broken server.
            got = await asyncio.wait_for(reader.read(-1), 30)
            writer.close()
            return got, time.monotonic() - started

    got, took = asyncio.run(run())
    assert got.startswith(b"HTTP/1.1 101")
    goaway = b"\x80\x03\x00\x07"  # a SPDY/3 GOAWAY control frame, then the end
    assert goaway in got and took >= 0.4


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_a_url_names_a_host_even_for_an_unspecified_address(tmp_path: Path, address: str) -> None:
    server = StreamingServer(
        StreamingConfig(address=address),
        containers=NoContainers(),
        dialer=NoDialer(),
        state_dir=tmp_path,
    )
    url = server.url_for(
        RequestKind.EXEC, ExecRequest(container_id="c", cmd=("true",), stdout=True)
    )
    host = urllib.parse.urlsplit(url).hostname
    assert host and host not in ("0.0.0.0", "::"), url


def test_tls_with_a_given_key_pair(tmp_path: Path) -> None:
    from tests.support.pki import TestCA

    ca = TestCA(tmp_path / "ca")
    leaf = ca.issue_server("streaming")
    cfg = StreamingConfig(tls_cert=leaf.files.cert, tls_key=leaf.files.key)
    server = StreamingServer(cfg, containers=NoContainers(), dialer=NoDialer(), state_dir=tmp_path)

    async def run() -> tuple[bytes, bytes]:
        async with server:
            # A client that trusts only the test CA and checks the name: the given pair is
            # what the server presents.
            ctx = ssl.create_default_context(cafile=str(ca.ca_pem))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=ctx, server_hostname="localhost"
            )
            ssl_object = writer.get_extra_info("ssl_object")
            presented = ssl_object.getpeercert(binary_form=True)
            writer.write(
                b"GET /exec/nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                b"Upgrade: SPDY/3.1\r\n\r\n"
            )
            reply = await reader.read(4096)
            writer.close()
            return presented, reply

    presented, reply = asyncio.run(run())
    assert presented == leaf.der()
    assert reply.startswith(b"HTTP/1.1 404")
    assert not (tmp_path / "streaming-tls").exists()  # nothing self-signed was made
