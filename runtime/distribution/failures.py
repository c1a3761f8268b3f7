"""The one place where what a registry (or the network on the way to it) did becomes a
``runtime.errors`` exception. Everything in ``runtime.distribution`` raises through
:func:`registry_error`, so messages look alike and name the host.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import TYPE_CHECKING

from runtime import lazy
from runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PinnaceError,
    RegistryUnavailable,
    Unauthenticated,
    Unavailable,
)

if TYPE_CHECKING:
    import httpx
else:  # imported with the first client (transport.load_http_stack), not at the daemon's start
    httpx = lazy.module("httpx")

_MAX_DETAIL = 300


def registry_error(
    cause: int | BaseException,
    *,
    host: str,
    kind: str,
    subject: str,
    body: bytes = b"",
    had_credentials: bool = False,
) -> PinnaceError:
    """Translate an HTTP status (``cause`` int, with the response ``body``) or a transport
    exception met while asking ``host`` for ``kind`` (``manifest``, ``blob``, ``token``, …)
    ``subject`` (a reference or digest) into the runtime error that says whose fault it is.
    """
    if isinstance(cause, BaseException):
        return RegistryUnavailable(f"cannot reach registry {host}: {describe_transport(cause)}")
    status = cause
    said = _details(body)
    if status == 404:
        return NotFound(f"{kind} unknown: {subject} ({host}: 404 Not Found{said})")
    if status == 401:
        why = (
            "the credentials were rejected"
            if had_credentials
            else "it requires authentication and no credentials were given"
        )
        return Unauthenticated(f"registry {host} refused {kind} {subject}: {why} (401{said})")
    if status == 403:
        return PermissionDenied(f"registry {host} denied access to {kind} {subject} (403{said})")
    if status == 429:
        return Unavailable(
            f"registry {host} is rate limiting requests for {kind} {subject} "
            f"(429 Too Many Requests{said})"
        )
    if status >= 500:
        return Unavailable(f"registry {host} failed serving {kind} {subject} ({status}{said})")
    if status == 400:
        return InvalidArgument(
            f"registry {host} rejected the request for {kind} {subject} (400{said})"
        )
    if status == 416:
        return FailedPrecondition(
            f"registry {host} cannot serve the requested range of {kind} {subject} (416{said})"
        )
    return FailedPrecondition(f"registry {host} answered {status} for {kind} {subject}{said}")


def describe_transport(exc: BaseException) -> str:
    """A short human cause for a network failure: timeout, TLS, refused connection, …"""
    root = _root_cause(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if is_tls_failure(exc):
        return f"TLS handshake failed: {_text(root)}"
    if isinstance(root, ConnectionRefusedError):
        return "connection refused"
    if isinstance(root, socket.gaierror):  # no "[Errno -2]": the resolver's words alone
        return f"cannot resolve its host name ({root.strerror or 'no address'})"
    return _text(root) or _text(exc) or type(exc).__name__


def is_tls_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a TLS failure, e.g. HTTPS spoken to an HTTP port."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, ssl.SSLError | ssl.CertificateError):
            return True
        node = node.__cause__ or node.__context__
    text = str(exc)
    return "SSL" in text or "CERTIFICATE" in text.upper()


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    node = exc
    while id(node) not in seen:
        seen.add(id(node))
        nxt = node.__cause__ or node.__context__
        if nxt is None:
            break
        node = nxt
    return node


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


def _details(body: bytes) -> str:
    """``"; CODE: message"`` from a registry's JSON error body, or ``""``."""
    if not body:
        return ""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for err in errors:
        if isinstance(err, dict):
            code, message = str(err.get("code", "")), str(err.get("message", ""))
            parts.append(f"{code}: {message}" if code and message else code or message)
    text = "; ".join(p for p in parts if p)
    return f"; {text[:_MAX_DETAIL]}" if text else ""
