"""A small blocking SPDY/3.1 client for tests: what kubectl/crictl do against a streaming URL.

Written apart from the server's ``cri/streaming/spdy`` code (its own frame packing, header
blocks and zlib contexts) so a shared misreading of the protocol does not pass unnoticed;
only the SPDY/3 dictionary bytes are taken from there (checked against the draft's length
and a hash in the unit tests).
"""

from __future__ import annotations

import json
import queue
import socket
import struct
import threading
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any

from cri.streaming.spdy.headers import DICTIONARY

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9,
)  # fmt: skip


class UpgradeRefused(Exception):
    def __init__(self, status: int, headers: dict[str, list[str]], body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body.decode(errors='replace')}")
        self.status = status
        self.headers = headers
        self.body = body


@dataclass
class ClientStream:
    id: int
    headers: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    replied: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    reset: int | None = None


def _pack_headers(headers: dict[str, str]) -> bytes:
    out = struct.pack(">I", len(headers))
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        out += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
    return out


def _unpack_headers(block: bytes) -> dict[str, str]:
    (n,) = struct.unpack_from(">I", block)
    pos, out = 4, {}
    for _ in range(n):
        (ln,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4 : pos + 4 + ln].decode()
        pos += 4 + ln
        (lv,) = struct.unpack_from(">I", block, pos)
        out[name] = block[pos + 4 : pos + 4 + lv].decode()
        pos += 4 + lv
    return out


class SpdyClient:
    """Connect, upgrade and speak SPDY. Raises UpgradeRefused when the server answers with
    anything but 101."""

    def __init__(
        self,
        url: str,
        *,
        protocols: tuple[str, ...] = ("v4.channel.k8s.io",),
        upgrade: str = "SPDY/3.1",
        timeout: float = 30.0,
        read: bool = True,
        tunnel: Any = None,
    ) -> None:
        """``read=False``: never read after the upgrade (a stalled client). ``tunnel``: an
        already upgraded byte pipe (``sendall``/``recv``/``shutdown``/``close``), e.g. a
        WebSocket carrying SPDY; then ``url`` is not used."""
        if tunnel is not None:
            self.sock = tunnel
            self.protocol = "portforward.k8s.io"
            self.response_headers = {}
            self._setup(b"", read=read)
            return
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname or "127.0.0.1"
        self.sock = socket.create_connection((host, parsed.port or 80), timeout=timeout)
        self.sock.settimeout(timeout)
        target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {parsed.netloc}",
            "Connection: Upgrade",
            f"Upgrade: {upgrade}",
        ] + [f"X-Stream-Protocol-Version: {p}" for p in protocols]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise UpgradeRefused(0, {}, buf)
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        self.response_headers: dict[str, list[str]] = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            self.response_headers.setdefault(k.strip().lower(), []).append(v.strip())
        if status != 101:
            length = int(self.response_headers.get("content-length", ["0"])[0])
            while len(rest) < length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
            self.sock.close()
            raise UpgradeRefused(status, self.response_headers, rest)
        self.protocol = self.response_headers.get("x-stream-protocol-version", [""])[0]
        self._setup(rest, read=read)

    def _setup(self, rest: bytes, *, read: bool) -> None:
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._lock = threading.Lock()
        self._next = 1
        self.streams: dict[int, ClientStream] = {}
        self.goaway = threading.Event()
        self.closed = threading.Event()
        self.pings: queue.Queue[int] = queue.Queue()
        self.window_updates = 0
        self._arrived = threading.Condition()
        self._buf = rest
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        if read:
            self._reader.start()

    # ---- sending --------------------------------------------------------------------------

    def _control(self, ftype: int, flags: int, body: bytes) -> None:
        frame = struct.pack(">HHI", 0x8003, ftype, (flags << 24) | len(body)) + body
        with self._lock:
            self.sock.sendall(frame)

    def open_stream(self, headers: dict[str, str], *, fin: bool = False) -> ClientStream:
        with self._lock:
            sid = self._next
            self._next += 2
            stream = ClientStream(sid, headers)
            self.streams[sid] = stream
            block = self._deflate.compress(_pack_headers(headers))
            block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
            body = struct.pack(">IIBB", sid, 0, 0, 0) + block
            frame = struct.pack(">HHI", 0x8003, SYN_STREAM, ((1 if fin else 0) << 24) | len(body))
            self.sock.sendall(frame + body)
        return stream

    def send(self, stream: ClientStream, data: bytes, *, fin: bool = False) -> None:
        frame = struct.pack(">II", stream.id, ((1 if fin else 0) << 24) | len(data)) + data
        with self._lock:
            self.sock.sendall(frame)

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        """Wait until ``predicate()`` holds after frames arrive (or the connection ends)."""
        with self._arrived:
            return self._arrived.wait_for(lambda: predicate() or self.closed.is_set(), timeout)

    def ping(self, pid: int = 1) -> None:
        self._control(PING, 0, struct.pack(">I", pid))

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self._reader.is_alive():
            self._reader.join(timeout=10)

    # ---- receiving ------------------------------------------------------------------------

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise EOFError
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_loop(self) -> None:
        try:
            while True:
                first, second = struct.unpack(">II", self._recv_exact(8))
                flags, length = second >> 24, second & 0xFFFFFF
                body = self._recv_exact(length)
                with self._arrived:
                    if first & 0x80000000:
                        self._on_control(first & 0xFFFF, flags, body)
                    else:
                        s = self.streams.get(first & 0x7FFFFFFF)
                        if s is not None:
                            s.data += body
                            if flags & 1:
                                s.ended.set()
                    self._arrived.notify_all()
        except (EOFError, OSError):
            pass
        finally:
            self.closed.set()
            with self._arrived:
                self._arrived.notify_all()
            for s in self.streams.values():
                s.ended.set()
                s.replied.set()

    def _on_control(self, ftype: int, flags: int, body: bytes) -> None:
        if ftype in (SYN_REPLY, HEADERS, SYN_STREAM):
            off = 10 if ftype == SYN_STREAM else 4
            block = self._inflate.decompress(body[off:])
            _unpack_headers(block)
            (sid,) = struct.unpack_from(">I", body)
            s = self.streams.get(sid & 0x7FFFFFFF)
            if s is not None:
                s.replied.set()
                if flags & 1:
                    s.ended.set()
        elif ftype == RST_STREAM:
            sid, status = struct.unpack(">II", body)
            s = self.streams.get(sid)
            if s is not None:
                s.reset = status
                s.ended.set()
                s.replied.set()
        elif ftype == PING:
            self.pings.put(struct.unpack(">I", body)[0])
        elif ftype == GOAWAY:
            self.goaway.set()
        elif ftype == WINDOW_UPDATE:
            self.window_updates += 1


class WebSocketTunnel:
    """A byte pipe over binary WebSocket messages (``websocket-client``), for the tunnelled
    ``SPDY/3.1+portforward.k8s.io`` protocol."""

    def __init__(self, url: str, subprotocol: str, timeout: float = 30.0) -> None:
        import websocket

        self.ws = websocket.create_connection(url, subprotocols=[subprotocol], timeout=timeout)
        self.subprotocol = self.ws.subprotocol
        self._buf = b""

    def sendall(self, data: bytes) -> None:
        self.ws.send_binary(data)

    def recv(self, n: int) -> bytes:
        import websocket

        while not self._buf:
            try:
                msg = self.ws.recv()
            except (websocket.WebSocketConnectionClosedException, OSError):
                return b""
            if not msg:
                return b""
            self._buf = msg if isinstance(msg, bytes) else msg.encode()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def shutdown(self, how: int) -> None:
        self.ws.close()

    def close(self) -> None:
        self.ws.close()


@dataclass
class ExecOutcome:
    stdout: bytes
    stderr: bytes
    error: bytes
    protocol: str

    @property
    def status(self) -> dict[str, Any]:
        return json.loads(self.error) if self.error else {}

    @property
    def exit_code(self) -> int:
        st = self.status
        if not st or st.get("status") == "Success":
            return 0
        return int(st["details"]["causes"][0]["message"])


def remote_command(
    url: str,
    *,
    stdin: bytes | None = None,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    resize: list[tuple[int, int]] | None = None,
    protocols: tuple[str, ...] = ("v4.channel.k8s.io",),
    timeout: float = 30.0,
) -> ExecOutcome:
    """Open the streams a kubectl exec opens, send ``stdin`` then FIN, and collect what
    comes back until the error stream ends."""
    client = SpdyClient(url, protocols=protocols, timeout=timeout)
    try:
        streams: dict[str, ClientStream] = {}
        streams["error"] = client.open_stream({"streamType": "error"})
        if stdin is not None:
            streams["stdin"] = client.open_stream({"streamType": "stdin"})
        if stdout:
            streams["stdout"] = client.open_stream({"streamType": "stdout"})
        if stderr:
            streams["stderr"] = client.open_stream({"streamType": "stderr"})
        if tty and client.protocol not in ("channel.k8s.io", "v2.channel.k8s.io"):
            streams["resize"] = client.open_stream({"streamType": "resize"})
        for s in streams.values():
            if not s.replied.wait(timeout):
                raise TimeoutError(f"no reply for stream {s.headers}")
        for w, h in resize or []:
            client.send(streams["resize"], json.dumps({"Width": w, "Height": h}).encode())
        if stdin is not None:
            if stdin:
                client.send(streams["stdin"], stdin)
            client.send(streams["stdin"], b"", fin=True)
        if not streams["error"].ended.wait(timeout):
            raise TimeoutError("the error stream did not end")
        for name in ("stdout", "stderr"):
            if name in streams and not streams[name].ended.wait(timeout):
                raise TimeoutError(f"{name} did not end")
        return ExecOutcome(
            stdout=bytes(streams["stdout"].data) if stdout else b"",
            stderr=bytes(streams["stderr"].data) if stderr else b"",
            error=bytes(streams["error"].data),
            protocol=client.protocol,
        )
    finally:
        client.close()
