"""The NRI connection multiplexer, sans-IO: several byte streams over one socket.

Wire format (containerd/nri ``pkg/net/multiplex``): a sequence of frames, each
``u32 conn id | u32 payload length | payload``, big-endian. Conn 1 carries the plugin's
ttrpc service (the runtime is its client), conn 2 the runtime's (the plugin is its client).
Conn id 0 is reserved.

Two limits come from how the Go side reads and writes:

* The Go reader hands each frame to one ``Read`` of the caller's buffer and fails with
  ENOMEM when the frame is larger; ttrpc reads through a 4096-byte ``bufio.Reader``. So the
  frames pinnace writes carry at most :data:`MAX_WRITE_PAYLOAD` (4096) bytes, and a ttrpc
  message longer than that is cut into several frames (a conn is a byte stream; the cuts
  mean nothing to the reader).
* The Go writer cuts at ttrpc's maximum message plus its header (4 MiB + 10), so frames
  pinnace reads may be that large; a larger length is a protocol error.

:class:`Demultiplexer` is fed whatever the socket returns and yields whole frames in
order; :func:`encode` turns one conn's bytes into frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PLUGIN_SERVICE_CONN = 1
RUNTIME_SERVICE_CONN = 2
HEADER_LENGTH = 8
MAX_WRITE_PAYLOAD = 4096
MAX_READ_PAYLOAD = 10 + (4 << 20)

_HEADER = struct.Struct(">II")


class MuxProtocolError(Exception):
    """The peer sent something the multiplexer cannot accept (the peer's fault)."""


@dataclass(frozen=True, slots=True)
class Frame:
    conn_id: int
    payload: bytes


def encode(conn_id: int, data: bytes, *, max_payload: int = MAX_WRITE_PAYLOAD) -> bytes:
    """The frames carrying ``data`` on ``conn_id``, each payload at most ``max_payload``."""
    if conn_id <= 0:
        raise ValueError(f"conn id {conn_id} is reserved")
    out = bytearray()
    view = memoryview(data)
    for start in range(0, len(view), max_payload):
        chunk = view[start : start + max_payload]
        out += _HEADER.pack(conn_id, len(chunk))
        out += chunk
    return bytes(out)


class Demultiplexer:
    """Reassembles frames from arbitrary pieces of the stream."""

    def __init__(self, *, max_payload: int = MAX_READ_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload

    def receive_data(self, data: bytes) -> list[Frame]:
        """Every frame completed by ``data`` (possibly none, possibly several)."""
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= HEADER_LENGTH:
            conn_id, length = _HEADER.unpack_from(self._buf)
            if length > self._max:
                raise MuxProtocolError(
                    f"mux frame of {length} bytes on conn {conn_id} exceeds {self._max}"
                )
            if conn_id == 0:
                raise MuxProtocolError("mux frame on reserved conn 0")
            end = HEADER_LENGTH + length
            if len(self._buf) < end:
                break
            frames.append(Frame(conn_id, bytes(self._buf[HEADER_LENGTH:end])))
            del self._buf[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)
