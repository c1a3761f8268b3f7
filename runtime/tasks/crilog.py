"""The CRI container log format conmon writes (``k8s-file`` driver).

Each line is ``<RFC3339Nano timestamp> <stream> <tag> <content>``: ``stream`` is ``stdout`` or
``stderr``; ``tag`` is ``F`` for a full line (its newline was seen) or ``P`` for a partial one
(conmon's buffer split it; the next record with the same stream continues it). Pure parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One parsed log line."""

    timestamp: str
    stream: str
    partial: bool
    content: bytes


def parse_line(line: bytes) -> LogRecord:
    """Parse one log line (without its trailing newline)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"P", b"F"):
        raise InvalidArgument(f"not a CRI log line: {line[:80]!r}")
    content = parts[3] if len(parts) == 4 else b""
    return LogRecord(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


def parse(data: bytes) -> list[LogRecord]:
    """Parse a whole log file's bytes; a torn last line (no newline yet) is left out."""
    lines = data.split(b"\n")
    return [parse_line(line) for line in lines[:-1] if line]


def stream_text(records: list[LogRecord], stream: str) -> bytes:
    """Reassemble the bytes one stream wrote: partial records join the next, full ones end
    with a newline."""
    out = bytearray()
    for rec in records:
        if rec.stream == stream:
            out += rec.content
            if not rec.partial:
                out += b"\n"
    return bytes(out)
