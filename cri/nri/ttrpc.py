"""ttrpc, sans-IO: the framing and the unary request/response exchange NRI uses.

Wire format (containerd/ttrpc ``channel.go``): each message is a 10-byte header
``u32 length | u32 stream id | u8 type | u8 flags`` (big-endian; the length excludes the
header) and ``length`` bytes of payload, at most 4 MiB. Types: 1 request, 2 response,
3 data (streams; NRI uses none). A unary request carries flags 0 and a protobuf
``ttrpc.Request`` (service, method, payload, ``timeout_nano``); its answer is a response
message on the same stream id carrying ``ttrpc.Response`` (a status and the payload).

Stream ids: the client numbers its requests 1, 3, 5, … (odd, strictly increasing). A
server answers an even id, or an id not above the last one it saw, with INVALID_ARGUMENT on
that id; a message over the limit is skipped and answered with RESOURCE_EXHAUSTED.

:class:`MessageReader` turns bytes into :class:`Message` values; :class:`ClientSide` and
:class:`ServerSide` keep the per-direction rules and encode what to send. Nothing here
touches a socket or a clock: timeouts are the caller's (the deadline is only carried in
``timeout_nano``).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from cri.api.nri.ttrpc import ttrpc_pb2 as tpb

HEADER_LENGTH = 10
MAX_MESSAGE = 4 << 20
_HEADER = struct.Struct(">IIBB")


class MessageType(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    DATA = 3


FLAG_REMOTE_CLOSED = 0x1
FLAG_REMOTE_OPEN = 0x2
FLAG_NO_DATA = 0x4


class Code(enum.IntEnum):
    """gRPC status codes, as ttrpc carries them."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class TtrpcProtocolError(Exception):
    """The peer broke the protocol in a way that ends the connection."""


class RpcError(Exception):
    """A call answered with a non-OK status."""

    def __init__(self, code: int, message: str) -> None:
        try:
            self.code: Code | int = Code(code)
        except ValueError:
            self.code = code
        self.message = message
        name = self.code.name if isinstance(self.code, Code) else str(code)
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True, slots=True)
class Message:
    stream_id: int
    type: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    """A message longer than the limit was skipped; ``length`` is what the header said."""

    stream_id: int
    type: int
    length: int


def encode_message(stream_id: int, type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_MESSAGE:
        raise RpcError(
            Code.RESOURCE_EXHAUSTED,
            f"message length {len(payload)} exceeds maximum message size of {MAX_MESSAGE}",
        )
    return _HEADER.pack(len(payload), stream_id, type, flags) + payload


class MessageReader:
    """Reassembles ttrpc messages from one conn's bytes."""

    def __init__(self, *, max_message: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._skip = 0

    def receive_data(self, data: bytes) -> list[Message | Oversized]:
        self._buf += data
        out: list[Message | Oversized] = []
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return out
            if len(self._buf) < HEADER_LENGTH:
                return out
            length, stream_id, mtype, flags = _HEADER.unpack_from(self._buf)
            if length > self._max:
                del self._buf[:HEADER_LENGTH]
                self._skip = length
                out.append(Oversized(stream_id, mtype, length))
                continue
            end = HEADER_LENGTH + length
            if len(self._buf) < end:
                return out
            out.append(Message(stream_id, mtype, flags, bytes(self._buf[HEADER_LENGTH:end])))
            del self._buf[:end]


@dataclass(frozen=True, slots=True)
class Call:
    """A request the client side has numbered and encoded."""

    stream_id: int
    data: bytes


class ClientSide:
    """The calling side of one ttrpc conn: numbers requests, matches responses."""

    def __init__(self) -> None:
        self._next = 1
        self._pending: set[int] = set()

    def request(self, service: str, method: str, payload: bytes, *, timeout_nano: int = 0) -> Call:
        stream_id = self._next
        self._next += 2
        body = tpb.Request(
            service=service, method=method, payload=payload, timeout_nano=timeout_nano
        ).SerializeToString()
        data = encode_message(stream_id, MessageType.REQUEST, 0, body)
        self._pending.add(stream_id)
        return Call(stream_id, data)

    def forget(self, stream_id: int) -> None:
        """The caller gave up on ``stream_id`` (a timeout); a late answer is dropped."""
        self._pending.discard(stream_id)

    def receive(self, msg: Message | Oversized) -> tuple[int, bytes | RpcError] | None:
        """(stream id, response payload or the error) for an answer to a pending call; None
        for one nobody waits for any more. A message that is no response ends the conn."""
        if isinstance(msg, Oversized):
            if msg.stream_id in self._pending:
                self._pending.discard(msg.stream_id)
                return msg.stream_id, RpcError(
                    Code.RESOURCE_EXHAUSTED, f"response of {msg.length} bytes is too large"
                )
            return None
        if msg.type != MessageType.RESPONSE:
            raise TtrpcProtocolError(f"unexpected ttrpc message type {msg.type} from the server")
        if msg.stream_id not in self._pending:
            return None
        self._pending.discard(msg.stream_id)
        try:
            response = tpb.Response.FromString(msg.payload)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise TtrpcProtocolError(f"undecodable ttrpc response: {exc}") from exc
        if response.HasField("status") and response.status.code != Code.OK:
            return msg.stream_id, RpcError(response.status.code, response.status.message)
        return msg.stream_id, response.payload


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    stream_id: int
    service: str
    method: str
    payload: bytes
    timeout_nano: int


class ServerSide:
    """The serving side of one ttrpc conn: checks stream ids, encodes answers."""

    def __init__(self) -> None:
        self._last = 0

    def receive(self, msg: Message | Oversized) -> IncomingRequest | bytes | None:
        """An accepted request, or the bytes of an error answer to send back, or None for a
        message to ignore."""
        if isinstance(msg, Oversized):
            return self.error(
                msg.stream_id,
                Code.RESOURCE_EXHAUSTED,
                f"message length {msg.length} exceed maximum message size of {MAX_MESSAGE}",
            )
        if msg.stream_id % 2 != 1:
            return self.error(
                msg.stream_id,
                Code.INVALID_ARGUMENT,
                "StreamID must be odd for client initiated streams",
            )
        if msg.type == MessageType.DATA:
            return self.error(msg.stream_id, Code.INVALID_ARGUMENT, "StreamID is no longer active")
        if msg.type != MessageType.REQUEST:
            return None
        if msg.stream_id <= self._last:
            return self.error(
                msg.stream_id,
                Code.INVALID_ARGUMENT,
                "StreamID cannot be re-used and must increment",
            )
        self._last = msg.stream_id
        try:
            req = tpb.Request.FromString(msg.payload)
        except Exception as exc:
            return self.error(
                msg.stream_id, Code.INVALID_ARGUMENT, f"unmarshal request error: {exc}"
            )
        return IncomingRequest(
            msg.stream_id, req.service, req.method, req.payload, req.timeout_nano
        )

    @staticmethod
    def answer(stream_id: int, payload: bytes) -> bytes:
        body = tpb.Response(status=tpb.Status(code=Code.OK), payload=payload)
        return encode_message(stream_id, MessageType.RESPONSE, 0, body.SerializeToString())

    @staticmethod
    def error(stream_id: int, code: int, message: str) -> bytes:
        body = tpb.Response(status=tpb.Status(code=code, message=message))
        return encode_message(stream_id, MessageType.RESPONSE, 0, body.SerializeToString())
