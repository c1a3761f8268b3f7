"""Between a client's remote-command streams (SPDY or WebSocket, see ``ClientStreams``) and
a process's stdio (conmon's attach socket): exec and attach are the same bridge with a
different end.

Input (stdin, its end, resizes) reaches the bridge through a small bounded queue the
transport fills; a transport that finds the queue full stops reading its socket, so a fast
client cannot make us buffer. Output is read from conmon only as fast as the transport takes
it, so a client that stops reading stops the process's output at conmon, not in our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from cri.streaming.remotecommand import Channel, TerminalSize
from runtime.tasks.attach import STDERR, AttachedStdio

log = logging.getLogger(__name__)

INPUT_QUEUE = 16
# How long to wait for the exit code once the process's output has ended.
_EXIT_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class StdinData:
    data: bytes


@dataclass(frozen=True, slots=True)
class StdinEnd:
    pass


@dataclass(frozen=True, slots=True)
class Resize:
    size: TerminalSize


@dataclass(frozen=True, slots=True)
class ClientGone:
    pass


Input = StdinData | StdinEnd | Resize | ClientGone


class ClientStreams(Protocol):
    """The client's end of a remote-command session, whatever the transport."""

    inputs: asyncio.Queue[Input]

    def has(self, channel: Channel) -> bool:
        """Whether the client opened ``channel``."""
        ...

    async def send(self, channel: Channel, data: bytes) -> None:
        """Send on ``channel`` (waits while the client is not taking data)."""
        ...

    async def close_channel(self, channel: Channel) -> None:
        """Half-close our side of ``channel``."""
        ...


async def run(
    streams: ClientStreams,
    stdio: AttachedStdio,
    *,
    tty: bool,
    resize: Callable[[TerminalSize], Awaitable[None]],
    exit_status: Callable[[], Awaitable[bytes]],
) -> bool:
    """Bridge until the process's output ends (then send ``exit_status()`` on the error
    stream and half-close ours: returns True) or the client goes away (returns False; the
    caller then kills what it started)."""
    out = asyncio.create_task(_pump_output(streams, stdio, tty=tty))
    inp = asyncio.create_task(_pump_input(streams, stdio, resize, tty=tty))
    try:
        done, _ = await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
        if inp in done and out not in done:
            return False
        status = await asyncio.wait_for(exit_status(), _EXIT_WAIT)
        if status and streams.has(Channel.ERROR):
            await streams.send(Channel.ERROR, status)
        for ch in (Channel.STDOUT, Channel.STDERR, Channel.ERROR):
            if streams.has(ch):
                await streams.close_channel(ch)
        return True
    finally:
        for t in (out, inp):
            t.cancel()
        for t in (out, inp):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def _pump_output(streams: ClientStreams, stdio: AttachedStdio, *, tty: bool) -> None:
    while True:
        packet = await stdio.read()
        if packet is None:
            return
        pipe, data = packet
        channel = Channel.STDERR if pipe == STDERR and not tty else Channel.STDOUT
        if streams.has(channel):
            await streams.send(channel, data)


async def _pump_input(
    streams: ClientStreams,
    stdio: AttachedStdio,
    resize: Callable[[TerminalSize], Awaitable[None]],
    *,
    tty: bool,
) -> None:
    while True:
        event = await streams.inputs.get()
        match event:
            case StdinData(data):
                await stdio.write(data)
            case StdinEnd():
                if tty:
                    # Closing one end of a terminal does not give its reader EOF; the
                    # terminal's EOF character does (what a person at it would type).
                    await stdio.write(b"\x04")
                else:
                    stdio.close_stdin()
            case Resize(size):
                try:
                    await resize(size)
                except Exception as e:  # a resize that fails is not worth the session
                    log.debug("resize failed: %s", e)
            case ClientGone():
                return
