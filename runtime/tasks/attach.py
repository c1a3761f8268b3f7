"""A client of conmon's attach socket: the stdio of a container or of an exec session.

conmon listens on ``<socket dir>/<cuuid>/attach`` (a SOCK_SEQPACKET socket; the directory
entry is a symlink to the bundle, which keeps the path short). Protocol:

- to conmon: each packet is raw bytes for the process's stdin. Shutting down our write side
  (``SHUT_WR``) makes conmon close the process's stdin, unless it was started with
  ``--leave-stdin-open`` (a container without ``stdin_once``).
- from conmon: each packet is one byte naming the pipe (conmon's ``stdpipe_t``: 2 stdout,
  3 stderr; a terminal's output is stdout) followed by the data. conmon writes blocking,
  so a reader that stops reading holds the process's output back instead of growing a
  buffer anywhere.
- conmon closes the connection when the process ends.

Terminal size goes through the bundle's ``ctl`` FIFO instead (see ``conmon.signal_ctl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

STDOUT = 2
STDERR = 3
# conmon reads and writes at most this much per packet (its CONN_SOCK_BUF_SIZE is 32 KiB;
# one more for the pipe byte), so a larger receive buffer is never needed.
_PACKET = 32 * 1024 + 1


class AttachedStdio:
    """A connected attach socket. Create with :func:`connect`."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._stdin_closed = False

    async def read(self) -> tuple[int, bytes] | None:
        """The next output packet as (pipe, data); None once conmon closed the connection."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet = await loop.sock_recv(self._sock, _PACKET)
            except (ConnectionResetError, OSError):
                return None
            if not packet:
                return None
            if len(packet) > 1:
                return packet[0], packet[1:]

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin (in packets conmon reads whole)."""
        if self._stdin_closed or not data:
            return
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        for pos in range(0, len(view), _PACKET - 1):
            try:
                await loop.sock_sendall(self._sock, view[pos : pos + _PACKET - 1])
            except (BrokenPipeError, ConnectionResetError):
                self._stdin_closed = True
                return

    def close_stdin(self) -> None:
        """No more input: conmon closes the process's stdin (see the module docstring)."""
        if not self._stdin_closed:
            self._stdin_closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the socket, out of the loop's selector first (as ``exec_session._Lines``
        does: a socket closed while registered would leave its fd number deaf for the
        next file that gets it)."""
        fd = self._sock.fileno()
        if fd >= 0:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing registered
                loop = asyncio.get_running_loop()
                loop.remove_reader(fd)
                loop.remove_writer(fd)
        with contextlib.suppress(OSError):
            self._sock.close()


async def connect(path: Path) -> AttachedStdio:
    """Connect to the attach socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, str(path))
    except BaseException:
        sock.close()
        raise
    return AttachedStdio(sock)
