"""HTTP/1.1 for the streaming server with h11, sans-IO: the request head in, responses out.

Every streaming request is a GET that asks to upgrade (to SPDY/3.1 or WebSocket); a request
with a body is not one of ours. The head is bounded (``MAX_HEAD``) so a client cannot make us
buffer without end before we have routed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import h11

MAX_HEAD = 16 * 1024


class BadRequest(Exception):
    """The client's request is not valid HTTP/1.1 (or too large): answer 400."""


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in order

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def get(self, name: str) -> str:
        values = self.get_all(name)
        return values[0] if values else ""

    def has_token(self, name: str, token: str) -> bool:
        """Whether header ``name`` lists ``token`` (comma-separated, case-insensitive)."""
        return any(p.strip().lower() == token for v in self.get_all(name) for p in v.split(","))


class RequestReader:
    """Feed bytes until ``feed`` returns the request head; ``raw`` is everything fed (a
    WebSocket handshake re-reads it) and ``trailing`` what came after the head."""

    def __init__(self) -> None:
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.raw = bytearray()

    def feed(self, data: bytes) -> RequestHead | None:
        self.raw += data
        self._conn.receive_data(data)
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as e:
            raise BadRequest(str(e)) from None
        if event is h11.NEED_DATA:
            if len(self.raw) > MAX_HEAD:
                raise BadRequest("request head too large")
            return None
        if not isinstance(event, h11.Request):
            raise BadRequest("expected a request")
        return RequestHead(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("ascii", "replace"),
            headers=tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers
            ),
        )

    @property
    def trailing(self) -> bytes:
        data, _closed = self._conn.trailing_data
        return bytes(data)


def response(status: int, text: str = "", *, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A complete response with a plain-text body, closing the connection."""
    body = (text + "\n").encode() if text else b""
    conn = h11.Connection(h11.SERVER)
    # h11 must have seen a request before it writes a response; give it a minimal one.
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    hdrs = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        *headers,
    ]
    out = conn.send(h11.Response(status_code=status, headers=hdrs)) or b""
    out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    return out


def switching_protocols(headers: Iterable[tuple[str, str]]) -> bytes:
    """The 101 response that hands the connection to another protocol."""
    lines = ["HTTP/1.1 101 Switching Protocols"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
