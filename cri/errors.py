"""The one table from runtime errors to gRPC status codes.

Handlers raise ``runtime.errors.*`` (or let them pass through); the server's interceptor calls
``status_for`` and aborts the call with that code and the error's message. Anything else that
escapes a handler is our bug: INTERNAL, logged with its traceback.
"""

from __future__ import annotations

import errno
import sqlite3

import grpc

from cri.wire import ERROR_KIND_KEY as ERROR_KIND_KEY
from runtime import errors

_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.DigestMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (errors.Internal, grpc.StatusCode.INTERNAL),
)


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13


def translate(exc: BaseException) -> BaseException:
    """The runtime error an OS error escaping a handler stands for, where it is a fact of the
    node rather than our bug: a full disk (ENOSPC, EDQUOT) is ResourceExhausted, naming the
    file. Anything else is returned as it is."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return errors.ResourceExhausted(
            f"no space left on device{where}: free space on that filesystem and retry"
        )
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
        return errors.ResourceExhausted(
            "the metadata database's disk is full: free space under the root directory and retry"
        )
    return exc


def kind_for(exc: BaseException) -> str:
    """The name of the most specific ``runtime.errors`` class ``exc`` is an instance of."""
    for cls in type(exc).__mro__:
        if cls.__module__ == errors.__name__ and cls is not errors.PinnaceError:
            return cls.__name__
    return "Internal"


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC code for ``exc``: the first table row it is an instance of, else INTERNAL."""
    for cls, code in _TABLE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL
