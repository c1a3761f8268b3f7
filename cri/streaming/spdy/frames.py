"""SPDY/3.1 frames: parsing (bytes in, frames out, any split of the input) and writing.

Every frame has an 8-byte header. Control frames: 1 bit set, 15 bits version (3), 16 bits
type, 8 bits flags, 24 bits length. DATA frames: 1 bit clear, 31 bits stream id, 8 bits
flags, 24 bits length. Stream ids and window deltas are 31-bit (the top bit is reserved and
ignored on read).

Control frame bodies (after the common header)::

    SYN_STREAM    stream id, associated stream id, priority (3 bits) + 5 unused, slot, headers
    SYN_REPLY     stream id, headers
    RST_STREAM    stream id, status code
    SETTINGS      number of entries, then per entry: flags (8), id (24), value (32)
    PING          id (32)
    GOAWAY        last good stream id, status code
    HEADERS       stream id, headers
    WINDOW_UPDATE stream id, delta window size

DATA payloads are handed on as they arrive (a frame may be up to 16 MiB), so the parser never
holds more than one control frame's body; control frames are bounded by ``MAX_CONTROL``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from cri.streaming.spdy.errors import ProtocolError
from cri.streaming.spdy.headers import HeaderCompressor, HeaderDecompressor, Headers

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_CLEAR_SETTINGS = 0x01
MAX_LENGTH = (1 << 24) - 1
MAX_CONTROL = 256 * 1024
_MASK31 = 0x7FFFFFFF


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingId(enum.IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A piece of a DATA frame's payload; ``fin`` only on the frame's last piece."""

    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True, slots=True)
class Ping:
    id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (
    DataFrame
    | SynStream
    | SynReply
    | RstStream
    | Settings
    | Ping
    | GoAway
    | HeadersFrame
    | WindowUpdate
)


def _control(ftype: FrameType, flags: int, body: bytes) -> bytes:
    if len(body) > MAX_LENGTH:
        raise ValueError("control frame body too long")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(body)) + body


class FrameWriter:
    """Serializes frames; owns the outgoing header compression context."""

    def __init__(self) -> None:
        self._headers = HeaderCompressor()

    def write(self, frame: Frame) -> bytes:
        match frame:
            case DataFrame(stream_id, data, fin):
                if len(data) > MAX_LENGTH:
                    raise ValueError("DATA payload longer than 16 MiB - 1")
                head = struct.pack(
                    ">II", stream_id & _MASK31, ((FLAG_FIN if fin else 0) << 24) | len(data)
                )
                return head + data
            case SynStream(sid, headers, assoc, prio, fin, uni):
                flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if uni else 0)
                body = struct.pack(">IIBB", sid & _MASK31, assoc & _MASK31, (prio & 7) << 5, 0)
                return _control(FrameType.SYN_STREAM, flags, body + self._headers.compress(headers))
            case SynReply(sid, headers, fin):
                return _control(
                    FrameType.SYN_REPLY,
                    FLAG_FIN if fin else 0,
                    struct.pack(">I", sid & _MASK31) + self._headers.compress(headers),
                )
            case HeadersFrame(sid, headers, fin):
                return _control(
                    FrameType.HEADERS,
                    FLAG_FIN if fin else 0,
                    struct.pack(">I", sid & _MASK31) + self._headers.compress(headers),
                )
            case RstStream(sid, status):
                return _control(FrameType.RST_STREAM, 0, struct.pack(">II", sid & _MASK31, status))
            case Settings(entries, clear):
                body = struct.pack(">I", len(entries)) + b"".join(
                    struct.pack(">II", (f << 24) | (i & 0xFFFFFF), v) for f, i, v in entries
                )
                return _control(FrameType.SETTINGS, FLAG_CLEAR_SETTINGS if clear else 0, body)
            case Ping(pid):
                return _control(FrameType.PING, 0, struct.pack(">I", pid))
            case GoAway(last, status):
                return _control(FrameType.GOAWAY, 0, struct.pack(">II", last & _MASK31, status))
            case WindowUpdate(sid, delta):
                return _control(
                    FrameType.WINDOW_UPDATE, 0, struct.pack(">II", sid & _MASK31, delta & _MASK31)
                )
        raise TypeError(f"not a frame: {frame!r}")


class FrameParser:
    """Bytes in, frames out. Feed any split of the stream; owns the incoming header
    decompression context. Raises ProtocolError on a frame the peer should not have sent
    (the session is then unusable)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already parsed (compacted away between feeds)
        self._headers = HeaderDecompressor()
        # An open DATA frame: (stream id, bytes still to come, fin flag).
        self._data: tuple[int, int, bool] | None = None
        self._failed = False

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed:
            raise ProtocolError("the session already failed")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        out: list[Frame] = []
        try:
            while self._step(out):
                pass
        except ProtocolError:
            self._failed = True
            raise
        return out

    def _step(self, out: list[Frame]) -> bool:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if self._data is not None:
            sid, left, fin = self._data
            if not avail:
                return False
            n = min(left, avail)
            take = bytes(buf[pos : pos + n])
            self._pos += n
            left -= n
            self._data = None if left == 0 else (sid, left, fin)
            out.append(DataFrame(sid, take, fin and left == 0))
            return True
        if avail < 8:
            return False
        first, second = struct.unpack_from(">II", buf, pos)
        flags, length = second >> 24, second & 0xFFFFFF
        if not first & 0x80000000:
            self._pos += 8
            sid = first & _MASK31
            if sid == 0:
                raise ProtocolError("DATA frame on stream 0")
            if length == 0:
                out.append(DataFrame(sid, b"", bool(flags & FLAG_FIN)))
            else:
                self._data = (sid, length, bool(flags & FLAG_FIN))
            return True
        version, ftype = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, not 3")
        if length > MAX_CONTROL:
            raise ProtocolError(f"control frame of {length} bytes (limit {MAX_CONTROL})")
        if avail < 8 + length:
            return False
        body = bytes(buf[pos + 8 : pos + 8 + length])
        self._pos += 8 + length
        frame = self._control(ftype, flags, body)
        if frame is not None:
            out.append(frame)
        return True

    def _control(self, ftype: int, flags: int, body: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if ftype == FrameType.SYN_STREAM:
                sid, assoc, prio, _slot = struct.unpack_from(">IIBB", body)
                headers = self._headers.decompress(body[10:])
                return SynStream(
                    sid & _MASK31,
                    headers,
                    assoc & _MASK31,
                    prio >> 5,
                    fin,
                    bool(flags & FLAG_UNIDIRECTIONAL),
                )
            if ftype == FrameType.SYN_REPLY:
                (sid,) = struct.unpack_from(">I", body)
                return SynReply(sid & _MASK31, self._headers.decompress(body[4:]), fin)
            if ftype == FrameType.HEADERS:
                (sid,) = struct.unpack_from(">I", body)
                return HeadersFrame(sid & _MASK31, self._headers.decompress(body[4:]), fin)
            if ftype == FrameType.RST_STREAM:
                sid, status = struct.unpack(">II", body)
                return RstStream(sid & _MASK31, status)
            if ftype == FrameType.SETTINGS:
                (count,) = struct.unpack_from(">I", body)
                if len(body) != 4 + 8 * count:
                    raise ProtocolError("SETTINGS length does not match its entry count")
                entries = []
                for k in range(count):
                    word, value = struct.unpack_from(">II", body, 4 + 8 * k)
                    entries.append((word >> 24, word & 0xFFFFFF, value))
                return Settings(tuple(entries), bool(flags & FLAG_CLEAR_SETTINGS))
            if ftype == FrameType.PING:
                (pid,) = struct.unpack(">I", body)
                return Ping(pid)
            if ftype == FrameType.GOAWAY:
                # SPDY/2 GOAWAYs had no status; accept a bare stream id too.
                if len(body) == 4:
                    return GoAway(struct.unpack(">I", body)[0] & _MASK31, 0)
                last, status = struct.unpack(">II", body)
                return GoAway(last & _MASK31, status)
            if ftype == FrameType.WINDOW_UPDATE:
                sid, delta = struct.unpack(">II", body)
                return WindowUpdate(sid & _MASK31, delta & _MASK31)
        except struct.error:
            msg = f"control frame type {ftype} has a bad length {len(body)}"
            raise ProtocolError(msg) from None
        # Unknown control frame types must be ignored (the draft's rule for extensions).
        return None
