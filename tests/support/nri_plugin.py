"""A test NRI plugin with its own protocol code (it imports nothing of pinnace's).

Written separately from the server side from containerd/nri v0.12's ``api.proto`` and the
Go stub's behaviour, so one misreading of the protocol cannot hide in both sides: its own
multiplexer framing (``u32 conn | u32 length``), ttrpc framing (10-byte header), and a
minimal protobuf wire codec with the field numbers spelled out here.

Behaviour, set before or while it runs:

* ``events``: the Configure event mask it answers (default: every event but validation).
* ``block[event]``: a ``threading.Event`` the handler waits on; ``entered[event]`` is set
  when a call arrives, so a test can look at the runtime while the hook is blocked.
* ``fail[event]``: an error message returned (once per entry in the list) as a status.
* ``adjust``: a callable (pod name, container name) → encoded ContainerAdjustment.
* ``log``: every call received, as (method, pod name, container name) in arrival order
  (``wait_for_calls`` awaits a number of them); ``synced``: the (pods, containers) names of
  Synchronize (``sync_requests``: in how many requests); ``configure_answered`` is set once
  Configure has been answered.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# ---- protobuf wire format ------------------------------------------------------------------


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_int(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(number << 3) + varint(value)


def f_bytes(number: int, value: bytes | str) -> bytes:
    """A length-delimited field (wire type 2)."""
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def parse(data: bytes) -> dict[int, list[Any]]:
    """Field number → values (ints for varints, bytes for length-delimited fields)."""
    out: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def s(msg: dict[int, list[Any]], number: int) -> str:
    return msg.get(number, [b""])[0].decode()


def sub(msg: dict[int, list[Any]], number: int) -> dict[int, list[Any]]:
    return parse(msg.get(number, [b""])[0])


# ---- NRI events (the Event enum) and ttrpc status codes --------------------------------------

EVENTS = {
    "RunPodSandbox": 1,
    "StopPodSandbox": 2,
    "RemovePodSandbox": 3,
    "CreateContainer": 4,
    "PostCreateContainer": 5,
    "StartContainer": 6,
    "PostStartContainer": 7,
    "UpdateContainer": 8,
    "PostUpdateContainer": 9,
    "StopContainer": 10,
    "RemoveContainer": 11,
    "UpdatePodSandbox": 12,
    "PostUpdatePodSandbox": 13,
    "ValidateContainerAdjustment": 14,
}
ALL = (1 << 14) - 1
# what a plugin implementing every handler but validation subscribes to
ALL_BUT_VALIDATION = ALL & ~(1 << (14 - 1))
UNKNOWN = 2

# ---- adjustments, encoded by hand ------------------------------------------------------------


def adjustment(
    *,
    env: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    mounts: list[tuple[str, str, list[str]]] | None = None,
    rlimits: list[tuple[str, int, int]] | None = None,
    devices: list[tuple[str, str, int, int]] | None = None,
    memory_limit: int | None = None,
    args: list[str] | None = None,
) -> bytes:
    """A ContainerAdjustment: annotations 2, mounts 3, env 4, linux 6, rlimits 7, args 9."""
    out = b""
    for k, v in (annotations or {}).items():
        out += f_bytes(2, f_bytes(1, k) + f_bytes(2, v))
    for dest, src, opts in mounts or []:
        m = f_bytes(1, dest) + f_bytes(2, "bind") + f_bytes(3, src)
        for o in opts:
            m += f_bytes(4, o)
        out += f_bytes(3, m)
    for k, v in (env or {}).items():
        out += f_bytes(4, f_bytes(1, k) + f_bytes(2, v))
    linux = b""
    for path, kind, major, minor in devices or []:
        dev = f_bytes(1, path) + f_bytes(2, kind) + f_int(3, major) + f_int(4, minor)
        dev += f_bytes(5, f_int(1, 0o666))  # OptionalFileMode
        linux += f_bytes(1, dev)
    if memory_limit is not None:
        # LinuxContainerAdjustment.resources(2) → LinuxResources.memory(1) → limit(1)
        linux += f_bytes(2, f_bytes(1, f_bytes(1, f_int(1, memory_limit))))
    if linux:
        out += f_bytes(6, linux)
    for kind, hard, soft in rlimits or []:
        out += f_bytes(7, f_bytes(1, kind) + f_int(2, hard) + f_int(3, soft))
    for a in args or []:
        out += f_bytes(9, a)
    return out


def memory_update(container_id: str, limit: int) -> bytes:
    """A ContainerUpdate setting the memory limit."""
    resources = f_bytes(1, f_bytes(1, f_int(1, limit)))  # LinuxResources.memory.limit
    return f_bytes(1, container_id) + f_bytes(2, f_bytes(1, resources))


# ---- the plugin --------------------------------------------------------------------------------


@dataclass
class ScriptedPlugin:
    """Connects to ``socket_path`` and registers as ``index-name``."""

    socket_path: str
    name: str = "test"
    index: str = "50"
    events: int = ALL_BUT_VALIDATION
    block: dict[str, threading.Event] = field(default_factory=dict)
    entered: dict[str, threading.Event] = field(default_factory=dict)
    fail: dict[str, list[str]] = field(default_factory=dict)
    adjust: Callable[[str, str], bytes] | None = None
    create_updates: Callable[[str, str], list[bytes]] | None = None
    log: list[tuple[str, str, str]] = field(default_factory=list)
    synced: tuple[list[str], list[str]] | None = None
    sync_requests: int = 0
    configured: dict[str, Any] = field(default_factory=dict)
    max_frame_seen: int = 0
    log_file: str | None = None  # each call's method appended as a line (another process)
    reject: str | None = None  # ValidateContainerAdjustment rejects with this reason
    validated: list[dict[int, list[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock: socket.socket | None = None
        self._wlock = threading.Lock()
        self._buf = {1: bytearray(), 2: bytearray()}
        self._answers: dict[int, tuple[int, str, bytes]] = {}
        self._cond = threading.Condition()
        self._next_id = 1
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.configure_answered = threading.Event()
        self._pods: dict[str, str] = {}

    # -- framing ---------------------------------------------------------------------------

    def _write(self, conn: int, ttrpc_id: int, mtype: int, payload: bytes) -> None:
        message = struct.pack(">IIBB", len(payload), ttrpc_id, mtype, 0) + payload
        frame = struct.pack(">II", conn, len(message)) + message
        with self._wlock:
            assert self._sock is not None
            self._sock.sendall(frame)

    def _recv_exact(self, n: int) -> bytes:
        assert self._sock is not None
        out = bytearray()
        while len(out) < n:
            chunk = self._sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def _reader(self) -> None:
        try:
            while True:
                conn, length = struct.unpack(">II", self._recv_exact(8))
                self.max_frame_seen = max(self.max_frame_seen, length)
                buf = self._buf.setdefault(conn, bytearray())
                buf += self._recv_exact(length)
                while len(buf) >= 10:
                    mlen, sid, mtype, _flags = struct.unpack(">IIBB", buf[:10])
                    if len(buf) < 10 + mlen:
                        break
                    payload = bytes(buf[10 : 10 + mlen])
                    del buf[: 10 + mlen]
                    if conn == 1 and mtype == 1:
                        threading.Thread(
                            target=self._handle, args=(sid, payload), daemon=True
                        ).start()
                    elif conn == 2 and mtype == 2:
                        resp = parse(payload)
                        status = sub(resp, 1)
                        code = status.get(1, [0])[0]
                        with self._cond:
                            self._answers[sid] = (code, s(status, 2), resp.get(2, [b""])[0])
                            self._cond.notify_all()
        except (EOFError, OSError):
            pass
        finally:
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    def call(self, method: str, payload: bytes, timeout: float = 10) -> tuple[int, str, bytes]:
        """A call to the runtime's service on conn 2: (status code, message, payload)."""
        with self._cond:
            sid = self._next_id
            self._next_id += 2
        request = (
            f_bytes(1, "nri.pkg.api.v1alpha1.Runtime")
            + f_bytes(2, method)
            + f_bytes(3, payload)
            + f_int(4, int(timeout * 1e9))
        )
        self._write(2, sid, 1, request)
        with self._cond:
            if not self._cond.wait_for(
                lambda: sid in self._answers or self.closed.is_set(), timeout
            ):
                raise TimeoutError(method)
            if sid not in self._answers:
                raise EOFError("connection closed")
            return self._answers.pop(sid)

    def _reply(self, sid: int, payload: bytes = b"", *, code: int = 0, message: str = "") -> None:
        status = (f_int(1, code) if code else b"") + (f_bytes(2, message) if message else b"")
        body = f_bytes(1, status) + (f_bytes(2, payload) if payload else b"")
        with contextlib.suppress(OSError):
            self._write(1, sid, 2, body)

    # -- the plugin service ------------------------------------------------------------------

    def _names(self, req: dict[int, list[Any]]) -> tuple[str, str]:
        pod = sub(req, 1) if 1 in req else {}
        ctr = sub(req, 2) if 2 in req else {}
        pod_name = s(pod, 2) if pod else ""
        if ctr and not pod_name:
            pod_name = self._pods.get(s(ctr, 2), "")
        return pod_name, s(ctr, 3) if ctr else ""

    def _handle(self, sid: int, payload: bytes) -> None:
        request = parse(payload)
        method, body = s(request, 2), parse(request.get(3, [b""])[0])
        if method == "Configure":
            self.configured = {
                "runtime_name": s(body, 2),
                "runtime_version": s(body, 3),
                "registration_timeout": body.get(4, [0])[0],
                "request_timeout": body.get(5, [0])[0],
                "config": s(body, 1),
            }
            self._reply(sid, f_int(2, self.events))
            self.configure_answered.set()
            return
        if method == "Synchronize":
            pods = [parse(p) for p in body.get(1, [])]
            ctrs = [parse(c) for c in body.get(2, [])]
            for p in pods:
                self._pods[s(p, 1)] = s(p, 2)
            old = self.synced or ([], [])
            self.synced = (old[0] + [s(p, 2) for p in pods], old[1] + [s(c, 3) for c in ctrs])
            more = bool(body.get(3, [0])[0])
            self.sync_requests += 1
            self._reply(sid, f_int(2, 1) if more else b"")
            if not more:
                self.ready.set()
            return
        if method == "StateChange":
            event = body.get(1, [0])[0]
            method = next((k for k, v in EVENTS.items() if v == event), f"event{event}")
            request_names = self._names({1: body.get(2, [b""]), 2: body.get(3, [b""])})
        else:
            request_names = self._names(body)
        pod_name, ctr_name = request_names
        if method == "RunPodSandbox":
            pod = sub(body, 1)
            self._pods[s(pod, 1)] = s(pod, 2)
        with self._cond:
            self.log.append((method, pod_name, ctr_name))
            self._cond.notify_all()
        if self.log_file is not None:
            with open(self.log_file, "a") as f:
                f.write(method + "\n")
        if method in self.entered:
            self.entered[method].set()
        if method in self.block:
            self.block[method].wait()
        failures = self.fail.get(method)
        if failures:
            self._reply(sid, code=UNKNOWN, message=failures.pop(0))
            return
        if method == "ValidateContainerAdjustment":
            self.validated.append(body)
            self._reply(sid, f_int(1, 1) + f_bytes(2, self.reject) if self.reject else b"")
            return
        if method == "CreateContainer":
            out = b""
            if self.adjust is not None:
                out += f_bytes(1, self.adjust(pod_name, ctr_name))
            for update in (self.create_updates or (lambda p, c: []))(pod_name, ctr_name):
                out += f_bytes(2, update)
            self._reply(sid, out)
            return
        self._reply(sid)

    # -- running -------------------------------------------------------------------------------

    def start(self, *, timeout: float = 30, sock: socket.socket | None = None) -> ScriptedPlugin:
        """Connect (or use ``sock``, a pre-installed plugin's end of its socket pair),
        register, and wait until Synchronize is done."""
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.socket_path)
        self._sock = sock
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()
        code, message, _ = self.call(
            "RegisterPlugin", f_bytes(1, self.name) + f_bytes(2, self.index) + f_bytes(3, "test")
        )
        if code:
            raise RuntimeError(f"RegisterPlugin failed: {code} {message}")
        if not self.ready.wait(timeout):
            raise TimeoutError("not synchronized")
        return self

    def register_only(self) -> tuple[int, str]:
        """Connect and send RegisterPlugin; the runtime's answer."""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(self.socket_path)
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()
        code, message, _ = self.call(
            "RegisterPlugin", f_bytes(1, self.name) + f_bytes(2, self.index)
        )
        return code, message

    def update_containers(
        self, updates: list[bytes], evict: dict[str, str] | None = None
    ) -> list[str]:
        """UpdateContainers (updates 1, evictions 2: container id 1, reason 2); the ids of
        the updates that failed."""
        body = b"".join(f_bytes(1, u) for u in updates)
        for cid, reason in (evict or {}).items():
            body += f_bytes(2, f_bytes(1, cid) + f_bytes(2, reason))
        code, message, payload = self.call("UpdateContainers", body)
        if code:
            raise RuntimeError(f"UpdateContainers failed: {code} {message}")
        return [s(parse(u), 1) for u in parse(payload).get(1, [])]

    def wait_for_calls(self, method: str, count: int, timeout: float = 30) -> bool:
        """Whether ``count`` calls of ``method`` have arrived (in a handler or done) within
        ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(1 for m, _p, _c in self.log if m == method) >= count, timeout
            )

    def pod_id(self, name: str) -> str:
        """The id of the pod named ``name`` as the runtime told this plugin."""
        return next(i for i, n in self._pods.items() if n == name)

    def events_of(self, pod: str) -> list[str]:
        return [m for m, p, _c in self.log if p == pod]

    def close(self) -> None:
        for ev in self.block.values():
            ev.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
