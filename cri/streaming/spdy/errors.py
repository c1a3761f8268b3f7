"""Errors of the SPDY layer, named by whose fault they are."""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer broke the protocol (bad frame, bad header block): the session ends with a
    GOAWAY carrying PROTOCOL_ERROR. Never our bug."""


class StreamClosedError(Exception):
    """We tried to use a stream that is closed or unknown on our side: the caller's bug, or
    a race with the peer's reset (callers that race check ``Session.is_open`` first)."""
