"""The validated requests a token stands for, and the endpoint that issues URLs for them.

The RPCs build these from the CRI messages (``cri/rpc/streaming.py``); the streaming server
serves them when a client presents the token. Validation happens once, in the RPC, so a URL
always names a request that was valid when it was issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cri.streaming.tokens import RequestKind
from runtime.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """Run ``cmd`` in a running container with the streams asked for."""

    container_id: str
    cmd: tuple[str, ...]
    tty: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False

    def __post_init__(self) -> None:
        if not self.cmd:
            raise InvalidArgument("Exec: cmd is empty")
        _check_streams("Exec", tty=self.tty, stdin=self.stdin, out=self.stdout, err=self.stderr)


@dataclass(frozen=True, slots=True)
class AttachRequest:
    """Attach to a running container's main process."""

    container_id: str
    tty: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False

    def __post_init__(self) -> None:
        _check_streams("Attach", tty=self.tty, stdin=self.stdin, out=self.stdout, err=self.stderr)


@dataclass(frozen=True, slots=True)
class PortForwardRequest:
    """Forward ports of a ready pod. ``netns`` is the pod's network namespace file, empty
    for a host-network pod. ``ports`` may be empty: the client names ports per stream."""

    sandbox_id: str
    netns: str
    ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for port in self.ports:
            if not 0 < port < 65536:
                raise InvalidArgument(f"PortForward: port {port} is not between 1 and 65535")


StreamRequest = ExecRequest | AttachRequest | PortForwardRequest


def _check_streams(what: str, *, tty: bool, stdin: bool, out: bool, err: bool) -> None:
    if not (stdin or out or err):
        raise InvalidArgument(f"{what}: ask for at least one of stdin, stdout and stderr")
    # The kubelet's own rule: a terminal merges stderr into stdout.
    if tty and err:
        raise InvalidArgument(
            f"{what}: tty and stderr cannot both be true (a terminal has one "
            "output stream); set stderr to false"
        )


class StreamingEndpoint(Protocol):
    """What the RPCs need of the streaming server: a URL for a request."""

    def url_for(self, kind: RequestKind, request: StreamRequest) -> str:
        """Issue a single-use token for ``request`` and return its URL."""
        ...
