"""A SPDY/3.1 session, sans-IO: ``receive_data`` takes bytes and returns events; the methods
that act queue frames whose bytes ``data_to_send`` hands out.

Streams. Each stream is a small state machine (the table ``_TRANSITIONS``)::

    OPEN ──we send FIN──► LOCAL_CLOSED ──peer sends FIN──► CLOSED
      └───peer sends FIN──► REMOTE_CLOSED ──we send FIN──►──┘
    any ──RST_STREAM (either side)──► CLOSED

Streams the peer opens have ids of the peer's parity (odd from a client), strictly
increasing; ours the other parity. A closed stream is forgotten.

Flow control (SPDY/3.1 section 2.6.8). Both a stream and the session have a 64 KiB window
in each direction at first. Received: we acknowledge what the consumer has *processed*
(``acknowledge``) with WINDOW_UPDATEs, so a consumer that stops processing stops the window,
and a peer that honours it stops sending. Sent: ``send_data`` takes no more than the peer's
windows allow and ``send_capacity`` says how much that is; a ``WindowOpened`` event says when
more may go. One compromise: Go's spdystream (kubectl, crictl, the kubelet's proxy) neither
sends WINDOW_UPDATEs nor honours ours, so windows are enforced only once the peer has shown
it speaks flow control (it sent a WINDOW_UPDATE or an INITIAL_WINDOW_SIZE setting). Against
other peers the transport's own backpressure (TCP, and the server not reading while a
stream's consumer is behind) is what bounds memory.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import cri.streaming.spdy.frames as f
from cri.streaming.spdy.errors import ProtocolError, StreamClosedError
from cri.streaming.spdy.headers import Headers

DEFAULT_WINDOW = 64 * 1024
MAX_WINDOW = 0x7FFFFFFF
# Data frames we write are at most this long (Go's readers allocate per frame).
MAX_DATA_FRAME = 128 * 1024


class StreamState(enum.Enum):
    OPEN = "open"
    LOCAL_CLOSED = "local-closed"
    REMOTE_CLOSED = "remote-closed"
    CLOSED = "closed"


class _Input(enum.Enum):
    SEND_FIN = "send-fin"
    RECV_FIN = "recv-fin"


_TRANSITIONS: dict[tuple[StreamState, _Input], StreamState] = {
    (StreamState.OPEN, _Input.SEND_FIN): StreamState.LOCAL_CLOSED,
    (StreamState.OPEN, _Input.RECV_FIN): StreamState.REMOTE_CLOSED,
    (StreamState.LOCAL_CLOSED, _Input.RECV_FIN): StreamState.CLOSED,
    (StreamState.REMOTE_CLOSED, _Input.SEND_FIN): StreamState.CLOSED,
}


# ---- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream (SYN_STREAM). ``ended``: it will send nothing on it."""

    stream_id: int
    headers: Headers
    ended: bool = False


@dataclass(frozen=True, slots=True)
class StreamReplied:
    """The peer accepted a stream we opened (SYN_REPLY)."""

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Bytes on a stream; pass their count to ``acknowledge`` once processed."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed the stream (FIN): it will send no more on it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer reset the stream (RST_STREAM): it is closed both ways."""

    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class PingAcked:
    """A ping we sent came back."""

    id: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer will open no more streams; ours above ``last_good_stream_id`` were ignored."""

    last_good_stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class WindowOpened:
    """More may be sent on ``stream_id`` (0: on every stream; the session window grew)."""

    stream_id: int


Event = (
    StreamOpened
    | StreamReplied
    | DataReceived
    | StreamEnded
    | StreamReset
    | PingAcked
    | GoAwayReceived
    | WindowOpened
)


@dataclass(slots=True)
class _Stream:
    id: int
    state: StreamState = StreamState.OPEN
    send_window: int = DEFAULT_WINDOW
    recv_window: int = DEFAULT_WINDOW
    unacked: int = 0  # processed bytes not yet returned to the peer by WINDOW_UPDATE

    def advance(self, what: _Input) -> None:
        nxt = _TRANSITIONS.get((self.state, what))
        if nxt is None:
            raise StreamClosedError(f"stream {self.id}: cannot {what.value} in {self.state.value}")
        self.state = nxt


@dataclass(slots=True)
class _Windows:
    session_send: int = DEFAULT_WINDOW
    session_recv: int = DEFAULT_WINDOW
    session_unacked: int = 0
    peer_initial: int = DEFAULT_WINDOW
    enforced: bool = False  # the peer speaks flow control (see the module docstring)
    # ids acknowledged by WINDOW_UPDATE since the last flush, to coalesce updates
    pending: set[int] = field(default_factory=set)


class Session:
    """One SPDY/3.1 session. ``client`` decides our stream id parity (odd for a client)."""

    def __init__(
        self,
        *,
        client: bool = False,
        max_streams: int = 1000,
        stream_window: int = DEFAULT_WINDOW,
        session_window: int = DEFAULT_WINDOW,
    ) -> None:
        """``stream_window`` and ``session_window`` are what we let the peer send before
        it waits for our WINDOW_UPDATEs (larger than the protocol's 64 KiB, they are
        announced at once: a SETTINGS frame and a session WINDOW_UPDATE)."""
        if not DEFAULT_WINDOW <= stream_window <= MAX_WINDOW:
            raise ValueError("stream_window must be between 64 KiB and 2^31-1")
        if not DEFAULT_WINDOW <= session_window <= MAX_WINDOW:
            raise ValueError("session_window must be between 64 KiB and 2^31-1")
        self._client = client
        self._stream_window = stream_window
        self._session_window = session_window
        self._max_streams = max_streams
        self._parser = f.FrameParser()
        self._writer = f.FrameWriter()
        self._out = bytearray()
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if client else 2
        self._next_ping = 1 if client else 2
        self._last_peer_id = 0
        self._last_accepted = 0  # the GOAWAY's last good stream id
        self._win = _Windows()
        self.goaway_received = False
        self.goaway_sent = False
        self._win.session_recv = session_window
        if stream_window != DEFAULT_WINDOW:
            setting = (0, f.SettingId.INITIAL_WINDOW_SIZE, stream_window)
            self._emit(f.Settings((setting,)))
        if session_window != DEFAULT_WINDOW:
            self._emit(f.WindowUpdate(0, session_window - DEFAULT_WINDOW))

    # ---- inspection ---------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """The bytes queued for the peer since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def is_open(self, stream_id: int) -> bool:
        """Whether we may still send on ``stream_id``."""
        s = self._streams.get(stream_id)
        return s is not None and s.state in (StreamState.OPEN, StreamState.REMOTE_CLOSED)

    def state(self, stream_id: int) -> StreamState:
        s = self._streams.get(stream_id)
        return StreamState.CLOSED if s is None else s.state

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def send_capacity(self, stream_id: int) -> int | None:
        """How many bytes ``send_data`` would take now; None means no limit (the peer does
        not do flow control)."""
        s = self._require(stream_id)
        if not self._win.enforced:
            return None
        return max(0, min(s.send_window, self._win.session_send))

    # ---- acting ---------------------------------------------------------------------------

    def open_stream(self, headers: Iterable[tuple[str, str]], *, fin: bool = False) -> int:
        """Open a stream of ours (SYN_STREAM); returns its id."""
        if self.goaway_received:
            raise StreamClosedError("the peer sent GOAWAY: no new streams")
        sid = self._next_id
        self._next_id += 2
        s = _Stream(sid, send_window=self._win.peer_initial, recv_window=self._stream_window)
        self._streams[sid] = s
        self._emit(f.SynStream(sid, tuple(headers), fin=fin))
        if fin:
            self._advance(s, _Input.SEND_FIN)
        return sid

    def reply(
        self, stream_id: int, headers: Iterable[tuple[str, str]] = (), *, fin: bool = False
    ) -> None:
        """Accept a stream the peer opened (SYN_REPLY)."""
        s = self._require(stream_id)
        self._emit(f.SynReply(stream_id, tuple(headers), fin=fin))
        if fin:
            self._advance(s, _Input.SEND_FIN)

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> int:
        """Queue as much of ``data`` as the windows allow; returns how much was taken. FIN
        is sent only when all of ``data`` was taken."""
        s = self._require(stream_id)
        if s.state not in (StreamState.OPEN, StreamState.REMOTE_CLOSED):
            raise StreamClosedError(f"stream {stream_id} is closed for sending")
        room = self.send_capacity(stream_id)
        take = len(data) if room is None else min(room, len(data))
        pos = 0
        view = memoryview(data)
        while pos < take:
            chunk = bytes(view[pos : min(take, pos + MAX_DATA_FRAME)])
            pos += len(chunk)
            self._emit(f.DataFrame(stream_id, chunk, fin and pos == len(data)))
        s.send_window -= take
        self._win.session_send -= take
        if fin and take == len(data):
            if not data:
                self._emit(f.DataFrame(stream_id, b"", True))
            self._advance(s, _Input.SEND_FIN)
        return take

    def end_stream(self, stream_id: int) -> None:
        """Half-close our side (an empty DATA frame with FIN)."""
        self.send_data(stream_id, b"", fin=True)

    def reset(self, stream_id: int, status: int = f.RstStatus.CANCEL) -> None:
        """Close the stream both ways (RST_STREAM). A stream already gone is fine."""
        if self._streams.pop(stream_id, None) is not None:
            self._emit(f.RstStream(stream_id, status))

    def acknowledge(self, stream_id: int, n: int) -> None:
        """The consumer processed ``n`` received bytes of ``stream_id``: give the peer its
        window back once half of it is used (fewer, larger WINDOW_UPDATEs)."""
        if n <= 0:
            return
        self._release_session(n)
        s = self._streams.get(stream_id)
        if s is None or s.state in (StreamState.REMOTE_CLOSED, StreamState.CLOSED):
            return
        s.unacked += n
        if s.unacked >= self._stream_window // 2:
            self._emit(f.WindowUpdate(stream_id, s.unacked))
            s.recv_window += s.unacked
            s.unacked = 0

    def _release_session(self, n: int) -> None:
        self._win.session_unacked += n
        if self._win.session_unacked >= self._session_window // 2:
            self._emit(f.WindowUpdate(0, self._win.session_unacked))
            self._win.session_recv += self._win.session_unacked
            self._win.session_unacked = 0

    def ping(self) -> int:
        """Send a PING of ours; a ``PingAcked`` event follows when it comes back."""
        pid = self._next_ping
        self._next_ping = (self._next_ping + 2) & 0x7FFFFFFF or (1 if self._client else 2)
        self._emit(f.Ping(pid))
        return pid

    def goaway(self, status: int = f.GoAwayStatus.OK) -> None:
        """Tell the peer we accept no more streams (once)."""
        if not self.goaway_sent:
            self.goaway_sent = True
            self._emit(f.GoAway(self._last_accepted, status))

    # ---- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns what happened. On ProtocolError a GOAWAY with
        PROTOCOL_ERROR is queued and the session must be closed after sending it."""
        try:
            frames = self._parser.feed(data)
            events: list[Event] = []
            for frame in frames:
                self._handle(frame, events)
            return events
        except ProtocolError:
            self.goaway(f.GoAwayStatus.PROTOCOL_ERROR)
            raise

    def _handle(self, frame: f.Frame, events: list[Event]) -> None:
        match frame:
            case f.DataFrame(sid, data, fin):
                self._on_data(sid, data, fin, events)
            case f.SynStream():
                self._on_syn_stream(frame, events)
            case f.SynReply(sid, headers, fin):
                s = self._streams.get(sid)
                if s is None or sid % 2 != self._next_id % 2:
                    self._emit(f.RstStream(sid, f.RstStatus.INVALID_STREAM))
                    return
                events.append(StreamReplied(sid, headers))
                if fin:
                    self._remote_fin(s, events)
            case f.HeadersFrame(sid, _headers, fin):
                s = self._streams.get(sid)
                if s is None:
                    self._emit(f.RstStream(sid, f.RstStatus.INVALID_STREAM))
                elif fin:
                    self._remote_fin(s, events)
            case f.RstStream(sid, status):
                if self._streams.pop(sid, None) is not None:
                    events.append(StreamReset(sid, status))
            case f.Settings(entries, _clear):
                for _flags, sid_, value in entries:
                    if sid_ == f.SettingId.INITIAL_WINDOW_SIZE:
                        self._set_peer_initial(value, events)
            case f.Ping(pid):
                if pid % 2 == self._next_ping % 2:
                    events.append(PingAcked(pid))
                else:
                    self._emit(f.Ping(pid))  # the peer's ping: echo it
            case f.GoAway(last, status):
                self.goaway_received = True
                events.append(GoAwayReceived(last, status))
            case f.WindowUpdate(sid, delta):
                self._on_window_update(sid, delta, events)

    def _on_syn_stream(self, frame: f.SynStream, events: list[Event]) -> None:
        sid = frame.stream_id
        if sid == 0 or sid % 2 == self._next_id % 2 or sid <= self._last_peer_id:
            raise ProtocolError(f"SYN_STREAM with stream id {sid} out of order or of our parity")
        self._last_peer_id = sid
        if self.goaway_sent or len(self._streams) >= self._max_streams:
            self._emit(f.RstStream(sid, f.RstStatus.REFUSED_STREAM))
            return
        s = _Stream(sid, send_window=self._win.peer_initial, recv_window=self._stream_window)
        self._streams[sid] = s
        self._last_accepted = sid
        if frame.unidirectional:
            # We may not send on it: treat our side as closed from the start.
            s.state = StreamState.LOCAL_CLOSED
        events.append(StreamOpened(sid, frame.headers, ended=frame.fin))
        if frame.fin:
            self._remote_fin(s, events)

    def _on_data(self, sid: int, data: bytes, fin: bool, events: list[Event]) -> None:
        s = self._streams.get(sid)
        if s is None:
            # Data for a stream we reset or never had (it crossed our RST_STREAM): dropped
            # here, so its bytes go back to the session window at once, or a peer that does
            # flow control would run out of session window.
            self._release_session(len(data))
            if sid > self._last_peer_id and sid % 2 != self._next_id % 2:
                self._emit(f.RstStream(sid, f.RstStatus.INVALID_STREAM))
            return
        if s.state in (StreamState.REMOTE_CLOSED, StreamState.CLOSED):
            self._streams.pop(sid, None)
            self._emit(f.RstStream(sid, f.RstStatus.STREAM_ALREADY_CLOSED))
            events.append(StreamReset(sid, f.RstStatus.STREAM_ALREADY_CLOSED))
            return
        if data:
            s.recv_window -= len(data)
            self._win.session_recv -= len(data)
            if self._win.enforced and s.recv_window < 0:
                self._streams.pop(sid, None)
                self._emit(f.RstStream(sid, f.RstStatus.FLOW_CONTROL_ERROR))
                events.append(StreamReset(sid, f.RstStatus.FLOW_CONTROL_ERROR))
                return
            events.append(DataReceived(sid, data))
        if fin:
            self._remote_fin(s, events)

    def _on_window_update(self, sid: int, delta: int, events: list[Event]) -> None:
        self._win.enforced = True
        if sid == 0:
            if delta == 0 or self._win.session_send + delta > MAX_WINDOW:
                raise ProtocolError(f"session WINDOW_UPDATE of {delta} is invalid")
            self._win.session_send += delta
            events.append(WindowOpened(0))
            return
        s = self._streams.get(sid)
        if s is None:
            return  # a stream closed meanwhile: updates may cross a reset
        if delta == 0 or s.send_window + delta > MAX_WINDOW:
            self._streams.pop(sid, None)
            self._emit(f.RstStream(sid, f.RstStatus.FLOW_CONTROL_ERROR))
            events.append(StreamReset(sid, f.RstStatus.FLOW_CONTROL_ERROR))
            return
        s.send_window += delta
        events.append(WindowOpened(sid))

    def _set_peer_initial(self, value: int, events: list[Event]) -> None:
        if value > MAX_WINDOW:
            raise ProtocolError(f"INITIAL_WINDOW_SIZE {value} is larger than 2^31-1")
        self._win.enforced = True
        diff = value - self._win.peer_initial
        self._win.peer_initial = value
        for s in self._streams.values():
            s.send_window += diff
        if diff > 0:
            events.append(WindowOpened(0))

    def _remote_fin(self, s: _Stream, events: list[Event]) -> None:
        try:
            self._advance(s, _Input.RECV_FIN)
        except StreamClosedError:
            self._streams.pop(s.id, None)
            self._emit(f.RstStream(s.id, f.RstStatus.STREAM_ALREADY_CLOSED))
            return
        events.append(StreamEnded(s.id))

    # ---- helpers --------------------------------------------------------------------------

    def _advance(self, s: _Stream, what: _Input) -> None:
        s.advance(what)
        if s.state is StreamState.CLOSED:
            self._streams.pop(s.id, None)

    def _require(self, stream_id: int) -> _Stream:
        s = self._streams.get(stream_id)
        if s is None:
            raise StreamClosedError(f"stream {stream_id} is not open")
        return s

    def _emit(self, frame: f.Frame) -> None:
        self._out += self._writer.write(frame)
