"""HTTP clients for registry hosts: one ``httpx.AsyncClient`` (and so one connection pool) per
distinct TLS configuration, built lazily, off the event loop (loading CA bundles reads files).

The HTTP stack itself (httpx, httpcore, h11, anyio's asyncio backend: ~100 ms of imports) is
imported when the first client is built, on a thread (:func:`load_http_stack`): a daemon that
has not pulled yet has not paid for it, and its event loop never holds the import.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime import lazy
from runtime.distribution.hosts import RegistryHost
from runtime.errors import InvalidArgument

if TYPE_CHECKING:
    import httpcore
    import httpx
else:
    httpcore = lazy.module("httpcore")
    httpx = lazy.module("httpx")


# httpcore reaches the event loop through anyio, whose asyncio backend (some 30 modules) is
# imported on the first request: 50-90 ms of imports holding the loop in the first pull of a
# daemon's life (seen by the e2e loop watch). It is imported with the rest, on the thread.
def load_http_stack() -> None:
    """Import the HTTP stack now (idempotent; after the first call, dictionary lookups).
    Blocking: the first call takes ~100 ms, so call it on a thread while a loop runs."""
    _settle_sniffio()
    lazy.preload("httpx", "httpcore")
    with contextlib.suppress(ImportError):
        lazy.preload("anyio._backends._asyncio")
    _tune_httpcore()


def _settle_sniffio() -> None:
    """httpcore asks which async library runs it with ``import sniffio`` inside a function it
    calls four times per request, and falls back to asyncio when that fails. anyio 4 no longer
    brings sniffio, and a failed import is not cached: each one searched all of ``sys.path``
    again (~20 stats), 0.5 ms of CPU per registry request here, a fifth of a present-image
    PullImage. Where sniffio is not installed, ``sys.modules["sniffio"] = None`` makes that
    import fail at once, the same ImportError, the same fallback."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed to connect, to wait for the next bytes (read/write), and for a pooled
    connection; a host's ``dial_timeout`` overrides ``connect``."""

    connect: float = 30.0
    read: float = 120.0
    write: float = 120.0
    pool: float = 300.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection pool size per TLS configuration: enough for parallel layer downloads."""

    max_connections: int = 64
    max_keepalive: int = 32
    keepalive_expiry: float = 30.0


_Key = tuple[bool, tuple[Path, ...], tuple[tuple[Path, Path | None], ...], float | None]


# httpcore reads a response body 64 KiB at a time; for layer downloads that is one trip through
# the event loop, h11 and our pipe per 64 KiB. Reading up to 1 MiB per call took a cold pull of
# a 100 MB image from ~160 to ~200 MB/s here (benchmarks/bench_pull.py). httpcore offers no
# per-client knob, so the class attribute is set once, for this process, when a pool is made.
_BODY_READ_SIZE = 1 << 20


def _tune_httpcore() -> None:
    if getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", 0) < _BODY_READ_SIZE:
        httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = _BODY_READ_SIZE


class ClientPool:
    """Gives the ``httpx.AsyncClient`` for a host. ``transport`` replaces the network (tests)."""

    def __init__(
        self,
        *,
        user_agent: str,
        timeouts: Timeouts = Timeouts(),
        limits: Limits = Limits(),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._user_agent = user_agent
        self._timeouts = timeouts
        self._limits = limits
        self._transport = transport
        self._clients: dict[_Key, httpx.AsyncClient] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def client_for(self, host: RegistryHost) -> httpx.AsyncClient:
        key: _Key = (host.skip_verify, host.ca_files, host.client_certs, host.dial_timeout)
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            if self._closed:
                raise RuntimeError("registry client used after aclose()")
            client = self._clients.get(key)
            if client is None:
                await asyncio.to_thread(load_http_stack)
                verify: ssl.SSLContext | bool = True
                if self._transport is None:
                    verify = await asyncio.to_thread(
                        ssl_context,
                        skip_verify=host.skip_verify,
                        ca_files=host.ca_files,
                        client_certs=host.client_certs,
                    )
                client = self._build(verify, host.dial_timeout)
                self._clients[key] = client
        return client

    def _build(
        self, verify: ssl.SSLContext | bool, dial_timeout: float | None
    ) -> httpx.AsyncClient:
        t, lim = self._timeouts, self._limits
        return httpx.AsyncClient(
            verify=verify,
            http1=True,
            http2=False,
            timeout=httpx.Timeout(
                connect=dial_timeout if dial_timeout is not None else t.connect,
                read=t.read,
                write=t.write,
                pool=t.pool,
            ),
            limits=httpx.Limits(
                max_connections=lim.max_connections,
                max_keepalive_connections=lim.max_keepalive,
                keepalive_expiry=lim.keepalive_expiry,
            ),
            headers={"User-Agent": self._user_agent},
            transport=self._transport,
        )

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def ssl_context(
    *,
    skip_verify: bool,
    ca_files: tuple[Path, ...],
    client_certs: tuple[tuple[Path, Path | None], ...],
) -> ssl.SSLContext:
    """A client TLS context: the system roots plus ``ca_files``, our client certificates, and no
    verification at all when ``skip_verify``. Blocking (reads files)."""
    ctx = ssl.create_default_context()
    if not ctx.cert_store_stats().get("x509_ca"):
        try:
            import certifi  # httpx depends on it; used only when the system has no roots

            ctx.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError):
            pass
    for ca in ca_files:
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load CA certificate {ca}: {exc}") from None
    for cert, key in client_certs:
        try:
            ctx.load_cert_chain(str(cert), str(key) if key else None)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load client certificate {cert}: {exc}") from None
    if skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
