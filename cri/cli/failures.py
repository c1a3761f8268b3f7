"""What a failed command says: one line naming the cause, from the gRPC status code and the
daemon's error kind (trailing metadata ``pinnace-error-kind``), never from an error's words.

Causes:
  daemon unreachable   no answer from pinnaced at all: the call failed UNAVAILABLE (or timed
                       out) without the error kind every pinnaced error carries.
  registry unreachable pinnaced answered with kind ``RegistryUnavailable``.
  not found            NOT_FOUND from pinnaced (an image, pod or container it does not have).
  anything else        the daemon's code and message as it sent them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from cri.wire import ERROR_KIND_KEY


class RpcFailure(Protocol):
    """What the CLI reads from a failed call (``grpc.RpcError`` as raised by a stub)."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...

    def trailing_metadata(self) -> object: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed call's cause (``daemon-unreachable``, ``registry-unreachable``,
    ``not-found``, ``timeout`` or ``daemon-error``) and the one line to print."""

    cause: str
    line: str


def error_kind(exc: RpcFailure) -> str | None:
    """The daemon's error kind, or None when the error did not come from pinnaced."""
    try:
        metadata = exc.trailing_metadata()
    except Exception:  # a channel that never connected has none
        return None
    for item in metadata or ():  # type: ignore[attr-defined]
        key, value = item
        if key == ERROR_KIND_KEY:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def describe(exc: RpcFailure, *, address: str) -> Failure:
    """The cause of a failed call and its one-line message (without the ``pinnace:`` prefix)."""
    code = exc.code()
    details = " ".join((exc.details() or "").split())
    kind = error_kind(exc)
    if kind is None:
        if code == grpc.StatusCode.UNAVAILABLE:
            return Failure(
                "daemon-unreachable", f"cannot reach pinnaced at {address}: {_why(details)}"
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Failure(
                "timeout",
                f"pinnaced at {address} did not answer in time (--timeout to wait longer)",
            )
        name = code.name if code is not None else "UNKNOWN"
        return Failure("daemon-error", f"{name}: {details}")
    if kind == "RegistryUnavailable":
        message = details.removeprefix("RegistryUnavailable:").strip()
        return Failure("registry-unreachable", f"registry unreachable: {message}")
    if code == grpc.StatusCode.NOT_FOUND:
        return Failure("not-found", f"not found: {details}")
    return Failure("daemon-error", f"{code.name}: {details}")


_ANOTHER = "pick another socket with --address or PINNACE_ADDRESS"

#: The end of gRPC's connect failure (the socket's errno text) → what it means and what to do.
_CONNECT_ERRORS = {
    "No such file or directory": f"no socket there; is pinnaced running? (or {_ANOTHER})",
    "Connection refused": (
        "nothing accepts connections on that socket (left by a pinnaced that stopped?); start"
        f" pinnaced, or {_ANOTHER}"
    ),
    "Permission denied": (
        "permission denied: run as root, or as a member of the socket's group ([daemon]"
        " socket_group)"
    ),
}


def _why(details: str) -> str:
    """Why a connect failed, in the user's words (gRPC's own text when it is none of the
    usual three)."""
    for errno_text, meaning in _CONNECT_ERRORS.items():
        if details.endswith(f"error: {errno_text}"):
            return meaning
    return f"{details} (is it running? or {_ANOTHER})"
