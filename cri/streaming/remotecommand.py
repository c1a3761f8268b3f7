"""The Kubernetes remote command protocols (exec and attach), as facts and pure functions.

Versions, negotiated by ``X-Stream-Protocol-Version`` headers over SPDY (the client lists
what it speaks, in preference order; the first one we speak wins) or by the WebSocket
subprotocol:

- ``channel.k8s.io`` (v1), ``v2.channel.k8s.io``: stdin, stdout, stderr and error streams;
  the error stream carries a plain-text message when the command failed.
- ``v3.channel.k8s.io``: adds the resize stream (JSON ``{"Width": w, "Height": h}`` values).
- ``v4.channel.k8s.io``: the error stream carries a JSON ``metav1.Status``; a non-zero exit
  is ``reason: NonZeroExitCode`` with the code as the message of a cause of type
  ``ExitCode``.
- ``v5.channel.k8s.io``: v4 plus, over WebSocket, the close signal (a message ``[255, n]``)
  that half-closes channel ``n`` (so stdin can reach EOF while output continues).

Over SPDY every stream carries a ``streamType`` header: ``error``, ``stdin``, ``stdout``,
``stderr`` or ``resize``. Over WebSocket they are channels 0-4 in that order (stdin 0,
stdout 1, stderr 2, error 3, resize 4); ``base64.`` variants send text frames whose first
character is the channel digit and the rest base64.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass

V1 = "channel.k8s.io"
V2 = "v2.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
# What we speak over SPDY, best first (kubelet's order).
SPDY_PROTOCOLS = (V5, V4, V3, V2, V1)
HEADER_PROTOCOL = "x-stream-protocol-version"
HEADER_ACCEPTED = "x-accepted-stream-protocol-versions"


class Channel(enum.IntEnum):
    """Stream kinds, numbered as the WebSocket channels are."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4


STREAM_TYPES = {c.name.lower(): c for c in Channel}
CLOSE_SIGNAL = 255


def split_header_values(values: Iterable[str]) -> list[str]:
    """Header values as a list: repeated headers and comma-separated values both count."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def negotiate(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """The first protocol the client offered that we support (the client's preference)."""
    ours = set(supported)
    for proto in offered:
        if proto in ours:
            return proto
    return None


def has_resize(protocol: str) -> bool:
    return protocol not in (V1, V2, "")


def json_status(protocol: str) -> bool:
    """Whether the error stream carries a JSON metav1.Status (v4 and later)."""
    return protocol in (V4, V5)


@dataclass(frozen=True, slots=True)
class TerminalSize:
    width: int
    height: int


class ResizeDecoder:
    """Splits the resize stream's concatenated JSON objects (any split of the bytes) into
    sizes. Garbage is dropped up to the next object; the buffer is bounded."""

    _LIMIT = 4096

    def __init__(self) -> None:
        self._buf = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[TerminalSize]:
        self._buf += data.decode("utf-8", "replace")
        out: list[TerminalSize] = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return out
            try:
                obj, end = self._decoder.raw_decode(text)
            except ValueError:
                if len(text) > self._LIMIT:
                    self._buf = ""
                else:
                    self._buf = text
                return out
            self._buf = text[end:]
            if isinstance(obj, dict):
                w, h = obj.get("Width", obj.get("width")), obj.get("Height", obj.get("height"))
                if isinstance(w, int) and isinstance(h, int) and 0 < w < 65536 and 0 < h < 65536:
                    out.append(TerminalSize(w, h))


def exit_status(protocol: str, exit_code: int, cmd: Iterable[str] = ()) -> bytes:
    """What the error stream carries when the command ended with ``exit_code``: for v4+
    the JSON Status (Success, or NonZeroExitCode with the code), before v4 nothing for
    success and the message text otherwise."""
    if exit_code == 0:
        return b'{"metadata":{},"status":"Success"}' if json_status(protocol) else b""
    message = (
        f"command terminated with non-zero exit code: error executing command "
        f"{list(cmd)}, exit code {exit_code}"
    )
    if not json_status(protocol):
        return message.encode()
    status = {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
    }
    return json.dumps(status, separators=(",", ":")).encode()


def error_status(protocol: str, message: str) -> bytes:
    """The error stream's content for a failure that is not an exit code (the process
    could not start, the container went away)."""
    if not json_status(protocol):
        return message.encode()
    status = {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}
    return json.dumps(status, separators=(",", ":")).encode()
