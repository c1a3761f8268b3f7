"""Dialling a port on localhost inside a pod's network namespace (for port-forward).

The connect happens on a throwaway thread that joined the namespace
(:func:`runtime.sandbox.namespaces.run_in_namespaces`), never on the event loop's thread; the
socket stays in the pod's namespace after the thread is gone. IPv4 ``127.0.0.1`` is tried
first, then IPv6 ``::1`` (a server may listen on only one of them). Host-network pods (no
namespace file) dial on the host.
"""

from __future__ import annotations

import socket
from pathlib import Path

from runtime.errors import FailedPrecondition, NotFound
from runtime.sandbox.namespaces import NamespaceKind, run_in_namespaces

CONNECT_TIMEOUT = 10.0


def _connect_localhost(port: int) -> socket.socket:
    """Blocking: connect to ``port`` on the loopback addresses of this thread's netns."""
    errors: list[str] = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect((host, port))
        except OSError as e:
            sock.close()
            errors.append(f"{host}: {e.strerror or e}")
            continue
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise FailedPrecondition(f"dial localhost:{port} failed ({'; '.join(errors)})")


class NamespaceDialer:
    """``cri.streaming.portforward.Dialer`` over pinned network namespaces."""

    async def dial(self, netns: str, port: int) -> socket.socket:
        if not 0 < port < 65536:
            raise FailedPrecondition(f"port {port} is not between 1 and 65535")
        if not netns:
            return await run_in_namespaces({}, lambda: _connect_localhost(port))
        try:
            return await run_in_namespaces(
                {NamespaceKind.NET: Path(netns)}, lambda: _connect_localhost(port)
            )
        except FileNotFoundError:
            raise NotFound(f"the pod's network namespace {netns} is gone") from None
