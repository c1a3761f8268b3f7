"""``pinnace exec [-i] [-t]``, ``pinnace attach`` and ``pinnace port-forward``: the
streaming RPCs (Exec, Attach, PortForward) and a SPDY session to the URL they return.

``exec`` forwards stdin with ``-i`` and whenever stdin is not a terminal (a pipe or a file:
``echo hi | pinnace exec c -- cat``); ``-t`` puts the local terminal in raw mode, sends its
size and every SIGWINCH as a resize; the command's exit code is pinnace's. ``--timeout`` without
``-i``/``-t`` keeps the old ExecSync behaviour (the command is killed after that long).
``port-forward`` listens on 127.0.0.1 only. ``exec`` and ``attach`` take a container or a
pod (its running container: ``resolve_container``), as kubectl takes a pod.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import stat
import sys
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli.client import Client
from cri.cli.pods import resolve, resolve_container
from cri.cli.stream_client import SpdyClientSession, exit_code_of, status_message
from runtime.errors import InvalidArgument

REMOTE_COMMAND = "v4.channel.k8s.io"
PORT_FORWARD = "portforward.k8s.io"


def _write(fd: int, data: bytes) -> None:
    """Bytes to stdout (1) or stderr (2) as they are, through sys.stdout/sys.stderr (so a
    caller that replaced them, as tests do, sees the output too)."""
    target = sys.stdout if fd == 1 else sys.stderr
    buffer = getattr(target, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        target.write(data.decode(errors="replace"))
        target.flush()


class _Terminal:
    """Raw mode for the local terminal while a ``-t`` session runs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: Any = None

    def __enter__(self) -> _Terminal:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


async def remote_command(url: str, *, stdin: bool, tty: bool, stderr: bool) -> int:
    """Run a remote-command session against ``url``; returns the command's exit code."""
    client, protocol = await SpdyClientSession.connect(url, REMOTE_COMMAND)
    loop = asyncio.get_running_loop()

    async def out(data: bytes) -> None:
        _write(1, data)

    async def err(data: bytes) -> None:
        _write(2, data)

    try:
        error = await client.open({"streamType": "error"})
        streams = [error]
        inp = await client.open({"streamType": "stdin"}) if stdin else None
        streams.append(await client.open({"streamType": "stdout"}, on_data=out))
        if stderr:
            streams.append(await client.open({"streamType": "stderr"}, on_data=err))
        resize = await client.open({"streamType": "resize"}) if tty else None
        for s in streams + [x for x in (inp, resize) if x is not None]:
            await s.replied.wait()
        if resize is not None:
            sending: set[asyncio.Task[None]] = set()

            def send_size() -> None:
                with contextlib.suppress(OSError):
                    cols, rows = os.get_terminal_size(0)
                    body = f'{{"Width":{cols},"Height":{rows}}}'.encode()
                    task = loop.create_task(client.send(resize, body))
                    sending.add(task)
                    task.add_done_callback(sending.discard)

            send_size()
            loop.add_signal_handler(signal.SIGWINCH, send_size)
        pump = asyncio.create_task(_pump_stdin(client, inp)) if inp is not None else None
        await error.ended.wait()
        for s in streams[1:]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.ended.wait(), 5)
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        status = bytes(error.data)
        code = exit_code_of(status)
        if code == 1 and status and b"ExitCode" not in status:
            print(f"pinnace: {status_message(status)}", file=sys.stderr)
        del protocol
        return code
    finally:
        if tty:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGWINCH)
        await client.close()


async def _pump_stdin(client: SpdyClientSession, stream: Any) -> None:
    """Local stdin into the stdin stream; FIN at its end. A regular file is read directly
    (epoll cannot watch one); anything else is watched on the loop."""
    loop = asyncio.get_running_loop()
    if stat.S_ISREG(os.fstat(0).st_mode):
        while chunk := os.read(0, 65536):
            await client.send(stream, chunk)
        await client.send(stream, b"", fin=True)
        return
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
    was_blocking = os.get_blocking(0)
    os.set_blocking(0, False)

    def readable() -> None:
        if queue.full():
            return
        try:
            chunk = os.read(0, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        queue.put_nowait(chunk)
        if not chunk:
            loop.remove_reader(0)

    loop.add_reader(0, readable)
    try:
        while True:
            chunk = await queue.get()
            if not chunk:
                await client.send(stream, b"", fin=True)
                return
            await client.send(stream, chunk)
    finally:
        loop.remove_reader(0)
        os.set_blocking(0, was_blocking)


def _run_session(url: str, *, stdin: bool, tty: bool, stderr: bool) -> int:
    if tty:
        with _Terminal(0):
            return asyncio.run(remote_command(url, stdin=stdin, tty=tty, stderr=stderr))
    return asyncio.run(remote_command(url, stdin=stdin, tty=tty, stderr=stderr))


def _tty_wanted(args: argparse.Namespace) -> bool:
    if args.tty and not os.isatty(0):
        print("pinnace: stdin is not a terminal: running without a TTY", file=sys.stderr)
        return False
    return bool(args.tty)


def cmd_exec(c: Client, args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InvalidArgument("exec needs a command after the container: exec CONTAINER -- CMD")
    container_id = resolve_container(c, args.container)
    tty = _tty_wanted(args)
    stdin = bool(args.stdin) or not os.isatty(0)
    if args.exec_timeout > 0 and not (args.stdin or tty):
        reply = c.exec_sync(container_id, command, timeout=args.exec_timeout)
        _write(1, reply.stdout)
        _write(2, reply.stderr)
        return int(reply.exit_code)
    url = c.runtime.Exec(
        pb.ExecRequest(
            container_id=container_id, cmd=command, tty=tty, stdin=stdin, stdout=True,
            stderr=not tty,
        ),
        timeout=c.timeout,
    ).url  # fmt: skip
    return _run_session(url, stdin=stdin, tty=tty, stderr=not tty)


def cmd_attach(c: Client, args: argparse.Namespace) -> int:
    container_id = resolve_container(c, args.container)
    tty = _tty_wanted(args)
    url = c.runtime.Attach(
        pb.AttachRequest(
            container_id=container_id, tty=tty, stdin=bool(args.stdin), stdout=True,
            stderr=not tty,
        ),
        timeout=c.timeout,
    ).url  # fmt: skip
    return _run_session(url, stdin=bool(args.stdin), tty=tty, stderr=not tty)


def parse_port_spec(text: str) -> tuple[int, int]:
    """``[LOCAL:]REMOTE`` → (local, remote); LOCAL 0 or empty picks a free port."""
    local, sep, remote = text.rpartition(":")
    try:
        r = int(remote)
        lo = int(local) if sep and local else (0 if sep else r)
    except ValueError:
        raise InvalidArgument(f"port {text!r}: write [LOCAL:]REMOTE, e.g. 8080:80") from None
    if not 0 < r < 65536 or not 0 <= lo < 65536:
        raise InvalidArgument(f"port {text!r}: ports are 1-65535 (LOCAL 0: any free)")
    return lo, r


async def port_forward(url: str, specs: list[tuple[int, int]]) -> int:
    """Listen on 127.0.0.1 for each spec and forward every connection; until the session
    ends (or Ctrl-C)."""
    client, _ = await SpdyClientSession.connect(url, PORT_FORWARD)
    next_id = 0
    servers = []

    def handler_for(remote: int) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal next_id
            rid = next_id
            next_id += 1
            headers = {"port": str(remote), "requestID": str(rid)}

            async def to_local(data: bytes) -> None:
                writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

            error = await client.open({"streamType": "error", **headers})
            data = await client.open({"streamType": "data", **headers}, on_data=to_local)
            await client.send(error, b"", fin=True)

            async def from_local() -> None:
                while chunk := await reader.read(65536):
                    await client.send(data, chunk)
                await client.send(data, b"", fin=True)

            pump = asyncio.create_task(from_local())
            await data.ended.wait()
            await error.ended.wait()
            if error.data:
                print(f"pinnace: {bytes(error.data).decode(errors='replace')}", file=sys.stderr)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            writer.close()

        return handle

    try:
        for local, remote in specs:
            server = await asyncio.start_server(handler_for(remote), "127.0.0.1", local)
            servers.append(server)
            port = server.sockets[0].getsockname()[1]
            print(f"Forwarding from 127.0.0.1:{port} -> {remote}", flush=True)
        await client.closed.wait()
        return 0
    finally:
        for server in servers:
            server.close()
        await client.close()


def cmd_port_forward(c: Client, args: argparse.Namespace) -> int:
    specs = [parse_port_spec(p) for p in args.ports]
    target = resolve(c, args.pod, kinds=("pod",))
    url = c.runtime.PortForward(
        pb.PortForwardRequest(pod_sandbox_id=target.id, port=[r for _, r in specs]),
        timeout=c.timeout,
    ).url
    return asyncio.run(port_forward(url, specs))


def add_parsers(sub: Any) -> None:
    """Make ``exec`` streaming (``-i``, ``-t``; it may already exist as the ExecSync command
    of ``cri.cli.pods``, which this extends) and add ``attach`` and ``port-forward``."""
    p = sub.choices.get("exec")
    if p is None:
        p = sub.add_parser("exec", help="run a command in a container")
        p.add_argument("--timeout", dest="exec_timeout", type=int, default=0)
        p.add_argument("container")
        p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    p.add_argument(
        "-i",
        "--interactive",
        dest="stdin",
        action="store_true",
        help="forward stdin (also done when stdin is a pipe or file)",
    )
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("attach", help="attach to a running container's main process")
    p.add_argument("-i", "--interactive", dest="stdin", action="store_true", help="send stdin")
    p.add_argument("-t", "--tty", action="store_true", help="the container has a terminal")
    p.add_argument("container", metavar="CONTAINER|POD")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("port-forward", help="forward local ports (127.0.0.1) to a pod's ports")
    p.add_argument("pod")
    p.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE")
    p.set_defaults(func=cmd_port_forward)  # fmt: skip
