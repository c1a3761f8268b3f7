"""A no-op NRI plugin in a process of its own: what a plugin with no handlers costs the runtime.

    python -m tests.support.nri_noop SOCKET NAME INDEX

It registers, answers Configure with every event but validation (the same 9 calls a pod
lifecycle as :class:`tests.support.nri_plugin.ScriptedPlugin`), answers Synchronize (split
requests too) and then every call at once with an empty response, from one thread, as the
Go stub does for a plugin that implements no handler but subscribes. It prints ``ready``
on stdout once synchronized and exits when the runtime closes the connection (or on
SIGTERM). The framing and the protobuf fields are this package's own (``nri_plugin``'s
codec), nothing of pinnace's NRI code.
"""

from __future__ import annotations

import socket
import struct
import sys

from tests.support.nri_plugin import ALL_BUT_VALIDATION, f_bytes, f_int, parse, s

_FRAME = struct.Struct(">II")
_MESSAGE = struct.Struct(">IIBB")
_EMPTY_RESPONSE = f_bytes(1, b"")  # Response{status={}}: OK, no payload


def _frame(conn: int, stream: int, mtype: int, body: bytes) -> bytes:
    message = _MESSAGE.pack(len(body), stream, mtype, 0) + body
    return _FRAME.pack(conn, len(message)) + message


def serve(sock: socket.socket, name: str, index: str) -> None:
    register = f_bytes(1, name) + f_bytes(2, index) + f_bytes(3, "noop")
    request = (
        f_bytes(1, "nri.pkg.api.v1alpha1.Runtime")
        + f_bytes(2, "RegisterPlugin")
        + f_bytes(3, register)
    )
    sock.sendall(_frame(2, 1, 1, request))
    streams = {1: bytearray(), 2: bytearray()}
    pending = bytearray()
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        pending += data
        while len(pending) >= _FRAME.size:
            conn, length = _FRAME.unpack_from(pending)
            if len(pending) < _FRAME.size + length:
                break
            buf = streams.setdefault(conn, bytearray())
            buf += pending[_FRAME.size : _FRAME.size + length]
            del pending[: _FRAME.size + length]
            while len(buf) >= _MESSAGE.size:
                mlen, stream, mtype, _flags = _MESSAGE.unpack_from(buf)
                if len(buf) < _MESSAGE.size + mlen:
                    break
                payload = bytes(buf[_MESSAGE.size : _MESSAGE.size + mlen])
                del buf[: _MESSAGE.size + mlen]
                if conn == 1 and mtype == 1:
                    sock.sendall(_frame(1, stream, 2, _answer(payload)))
                elif conn == 2 and mtype == 2:
                    status = parse(parse(payload).get(1, [b""])[0])
                    if status.get(1, [0])[0]:
                        raise SystemExit(f"RegisterPlugin refused: {s(status, 2)}")


def _answer(payload: bytes) -> bytes:
    request = parse(payload)
    method = s(request, 2)
    if method == "Configure":
        return f_bytes(1, b"") + f_bytes(2, f_int(2, ALL_BUT_VALIDATION))
    if method == "Synchronize":
        body = parse(request.get(3, [b""])[0])
        if body.get(3, [0])[0]:  # more to come: ask for it
            return f_bytes(1, b"") + f_bytes(2, f_int(2, 1))
        print("ready", flush=True)
    return _EMPTY_RESPONSE


def main() -> int:
    path, name, index = sys.argv[1:4]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    try:
        serve(sock, name, index)
    except (ConnectionError, KeyboardInterrupt):
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
