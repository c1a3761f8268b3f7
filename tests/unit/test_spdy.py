"""SPDY/3.1 sans-IO: frames, header compression with the SPDY/3 dictionary, sessions with
flow control; fed bytes, split any way, and fuzzed."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

import pytest

from cri.streaming.spdy import frames as f
from cri.streaming.spdy import session as sp
from cri.streaming.spdy.errors import ProtocolError, StreamClosedError
from cri.streaming.spdy.headers import DICTIONARY, HeaderCompressor, HeaderDecompressor


def test_dictionary_is_the_drafts() -> None:
    # SPDY/3 draft section 2.6.10.1: 1423 bytes, starting with "\0\0\0\7options".
    assert len(DICTIONARY) == 1423
    assert DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert DICTIONARY.endswith(b"enq=0.")
    digest = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert hashlib.sha256(DICTIONARY).hexdigest() == digest


def test_header_blocks_share_one_zlib_stream_per_direction() -> None:
    comp, decomp = HeaderCompressor(), HeaderDecompressor()
    blocks = [comp.compress([("streamType", "stdout"), ("port", str(n))]) for n in range(5)]
    # later blocks reuse the window: smaller than the first
    assert len(blocks[4]) < len(blocks[0])
    for n, block in enumerate(blocks):
        assert decomp.decompress(block) == (("streamtype", "stdout"), ("port", str(n)))


def test_header_block_from_an_independent_zlib_writer() -> None:
    # What Go's framer writes: count, then length-prefixed name/value pairs, deflated with
    # the dictionary and a sync flush.
    raw = struct.pack(">I", 2)
    for k, v in ((b"streamtype", b"error"), (b"x-multi", b"a\0b")):
        raw += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    assert HeaderDecompressor().decompress(block) == (
        ("streamtype", "error"),
        ("x-multi", "a"),
        ("x-multi", "b"),
    )


def test_a_header_bomb_is_refused() -> None:
    raw = struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 10**6)
    raw += b"x" * 10**6
    z = zlib.compressobj(zdict=DICTIONARY)
    block = z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(ProtocolError, match="larger than"):
        HeaderDecompressor().decompress(block)


def _sample_frames() -> list[f.Frame]:
    return [
        f.SynStream(1, (("streamtype", "error"),), priority=3),
        f.SynStream(3, (("streamtype", "stdin"),), fin=True, unidirectional=True),
        f.SynReply(1, (("a", "b"),)),
        f.DataFrame(1, b"hello"),
        f.DataFrame(3, b"", fin=True),
        f.RstStream(5, f.RstStatus.CANCEL),
        f.Settings(((0, f.SettingId.INITIAL_WINDOW_SIZE, 1 << 20),), clear=True),
        f.Ping(7),
        f.HeadersFrame(1, (("k", "v"),), fin=True),
        f.WindowUpdate(1, 1234),
        f.GoAway(3, f.GoAwayStatus.OK),
    ]


def _merge_data(frames: list[f.Frame]) -> list[f.Frame]:
    """Join DATA pieces of one frame (the parser hands payloads on as they arrive)."""
    out: list[f.Frame] = []
    pending: f.DataFrame | None = None
    for fr in frames:
        if isinstance(fr, f.DataFrame):
            pending = (
                fr if pending is None else f.DataFrame(fr.stream_id, pending.data + fr.data, fr.fin)
            )
            if fr.fin or len(pending.data) >= 5:
                out.append(pending)
                pending = None
            continue
        out.append(fr)
    return out


def test_frames_round_trip_in_one_read() -> None:
    writer, parser = f.FrameWriter(), f.FrameParser()
    frames = _sample_frames()
    data = b"".join(writer.write(fr) for fr in frames)
    assert parser.feed(data) == frames


def test_frames_round_trip_byte_by_byte() -> None:
    writer, parser = f.FrameWriter(), f.FrameParser()
    frames = _sample_frames()
    data = b"".join(writer.write(fr) for fr in frames)
    got: list[f.Frame] = []
    for i in range(len(data)):
        got += parser.feed(data[i : i + 1])
    assert _merge_data(got) == frames


def test_frames_round_trip_split_at_random_points() -> None:
    rng = random.Random(7)
    for _ in range(50):
        writer, parser = f.FrameWriter(), f.FrameParser()
        frames = _sample_frames()
        data = b"".join(writer.write(fr) for fr in frames)
        cuts = sorted(rng.sample(range(1, len(data)), 6))
        got: list[f.Frame] = []
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            got += parser.feed(data[a:b])
        joined = b"".join(
            fr.data for fr in got if isinstance(fr, f.DataFrame) and fr.stream_id == 1
        )
        assert joined == b"hello"
        assert [fr for fr in got if not isinstance(fr, f.DataFrame)] == [
            fr for fr in frames if not isinstance(fr, f.DataFrame)
        ]


def test_unknown_control_frames_are_ignored_and_bad_versions_refused() -> None:
    parser = f.FrameParser()
    unknown = struct.pack(">HHI", 0x8003, 0x00FF, 4) + b"abcd"
    assert parser.feed(unknown + f.FrameWriter().write(f.Ping(2))) == [f.Ping(2)]
    with pytest.raises(ProtocolError, match="version 2"):
        f.FrameParser().feed(struct.pack(">HHI", 0x8002, 6, 4) + b"\0\0\0\1")
    with pytest.raises(ProtocolError, match="bad length"):
        f.FrameParser().feed(struct.pack(">HHI", 0x8003, 6, 2) + b"\0\1")
    with pytest.raises(ProtocolError, match="stream 0"):
        f.FrameParser().feed(struct.pack(">II", 0, 1) + b"x")
    with pytest.raises(ProtocolError, match="limit"):
        f.FrameParser().feed(struct.pack(">HHI", 0x8003, 1, f.MAX_CONTROL + 1))


class Peer:
    """The other end of a session, built from the frame layer."""

    def __init__(self) -> None:
        self.writer = f.FrameWriter()
        self.parser = f.FrameParser()

    def bytes(self, *frames: f.Frame) -> bytes:
        return b"".join(self.writer.write(fr) for fr in frames)

    def read(self, session: sp.Session) -> list[f.Frame]:
        return self.parser.feed(session.data_to_send())


def _open(session: sp.Session, peer: Peer, sid: int = 1) -> None:
    events = session.receive_data(peer.bytes(f.SynStream(sid, (("streamtype", "stdin"),))))
    assert events == [sp.StreamOpened(sid, (("streamtype", "stdin"),))]


def test_session_stream_lifecycle() -> None:
    s, peer = sp.Session(), Peer()
    _open(s, peer)
    s.reply(1)
    assert peer.read(s) == [f.SynReply(1, ())]
    events = s.receive_data(peer.bytes(f.DataFrame(1, b"abc"), f.DataFrame(1, b"", fin=True)))
    assert events == [sp.DataReceived(1, b"abc"), sp.StreamEnded(1)]
    assert s.state(1) is sp.StreamState.REMOTE_CLOSED
    assert s.send_data(1, b"out", fin=True) == 3
    assert peer.read(s) == [f.DataFrame(1, b"out", fin=True)]
    assert s.state(1) is sp.StreamState.CLOSED
    with pytest.raises(StreamClosedError):
        s.send_data(1, b"more")
    # data after the peer's FIN resets the stream
    _open(s, peer, 3)
    s.receive_data(peer.bytes(f.DataFrame(3, b"", fin=True)))
    events = s.receive_data(peer.bytes(f.DataFrame(3, b"late")))
    assert events == [sp.StreamReset(3, f.RstStatus.STREAM_ALREADY_CLOSED)]


def test_session_rules_on_stream_ids_and_pings() -> None:
    s, peer = sp.Session(), Peer()
    _open(s, peer, 5)
    with pytest.raises(ProtocolError):
        s.receive_data(peer.bytes(f.SynStream(3, ())))  # ids must increase
    assert f.GoAway(5, f.GoAwayStatus.PROTOCOL_ERROR) in peer.read(s)
    s2, peer2 = sp.Session(), Peer()
    assert s2.receive_data(peer2.bytes(f.Ping(1))) == []
    assert peer2.read(s2) == [f.Ping(1)]  # the client's ping is echoed
    pid = s2.ping()
    assert pid % 2 == 0
    assert s2.receive_data(peer2.bytes(f.Ping(pid))) == [sp.PingAcked(pid)]
    # data on a stream nobody opened
    assert s2.receive_data(peer2.bytes(f.DataFrame(9, b"x"))) == []
    assert peer2.read(s2) == [f.Ping(pid), f.RstStream(9, f.RstStatus.INVALID_STREAM)]


def test_refused_beyond_max_streams_and_after_goaway() -> None:
    s, peer = sp.Session(max_streams=1), Peer()
    _open(s, peer, 1)
    assert s.receive_data(peer.bytes(f.SynStream(3, ()))) == []
    assert peer.read(s) == [f.RstStream(3, f.RstStatus.REFUSED_STREAM)]
    s.goaway()
    s.receive_data(peer.bytes(f.SynStream(5, ())))
    assert peer.read(s) == [f.GoAway(5 - 4, 0), f.RstStream(5, f.RstStatus.REFUSED_STREAM)]


def test_no_send_limit_until_the_peer_shows_flow_control() -> None:
    s, peer = sp.Session(), Peer()
    _open(s, peer)
    assert s.send_capacity(1) is None
    big = b"x" * 200_000
    assert s.send_data(1, big) == len(big)
    frames = peer.read(s)
    assert all(len(fr.data) <= sp.MAX_DATA_FRAME for fr in frames if isinstance(fr, f.DataFrame))
    assert sum(len(fr.data) for fr in frames if isinstance(fr, f.DataFrame)) == len(big)


def test_windows_are_honoured_once_the_peer_does_flow_control() -> None:
    s, peer = sp.Session(), Peer()
    _open(s, peer)
    s.receive_data(peer.bytes(f.Settings(((0, f.SettingId.INITIAL_WINDOW_SIZE, 10),))))
    assert s.send_capacity(1) == 10
    assert s.send_data(1, b"0123456789abcdef", fin=True) == 10
    assert peer.read(s) == [f.DataFrame(1, b"0123456789")]  # no FIN: not all was taken
    assert s.send_capacity(1) == 0
    assert s.receive_data(peer.bytes(f.WindowUpdate(1, 6))) == [sp.WindowOpened(1)]
    assert s.send_data(1, b"abcdef", fin=True) == 6
    assert peer.read(s) == [f.DataFrame(1, b"abcdef", fin=True)]
    # the session window limits too
    _open(s, peer, 3)
    s.receive_data(peer.bytes(f.WindowUpdate(3, 1 << 20)))
    room = s.send_capacity(3)
    assert room is not None and room == sp.DEFAULT_WINDOW - 16
    # an overflowing update resets the stream
    events = s.receive_data(peer.bytes(f.WindowUpdate(3, sp.MAX_WINDOW)))
    assert events == [sp.StreamReset(3, f.RstStatus.FLOW_CONTROL_ERROR)]


def test_received_data_is_acknowledged_in_batches() -> None:
    s, peer = sp.Session(), Peer()
    _open(s, peer)
    s.acknowledge(1, 1000)
    assert peer.read(s) == []
    s.acknowledge(1, sp.DEFAULT_WINDOW // 2)
    half = 1000 + sp.DEFAULT_WINDOW // 2
    assert peer.read(s) == [f.WindowUpdate(0, half), f.WindowUpdate(1, half)]


def test_a_flow_controlling_peer_that_overruns_our_window_is_reset() -> None:
    s, peer = sp.Session(), Peer()
    _open(s, peer)
    s.receive_data(peer.bytes(f.WindowUpdate(0, 1)))
    events = s.receive_data(peer.bytes(f.DataFrame(1, b"x" * (sp.DEFAULT_WINDOW + 1))))
    assert sp.StreamReset(1, f.RstStatus.FLOW_CONTROL_ERROR) in events


def test_client_sessions_use_odd_ids() -> None:
    client, server = sp.Session(client=True), sp.Session()
    sid = client.open_stream([("streamtype", "data")])
    assert sid == 1
    events = server.receive_data(client.data_to_send())
    assert events == [sp.StreamOpened(1, (("streamtype", "data"),))]
    server.reply(1)
    assert client.receive_data(server.data_to_send()) == [sp.StreamReplied(1, ())]
    assert client.open_stream([]) == 3


def _valid_stream() -> bytes:
    w = f.FrameWriter()
    return b"".join(w.write(fr) for fr in _sample_frames() if not isinstance(fr, f.GoAway))


@pytest.mark.parametrize("seed", range(30))
def test_fuzz_random_and_mutated_bytes_only_raise_protocol_errors(seed: int) -> None:
    rng = random.Random(seed)
    valid = _valid_stream()
    inputs = [rng.randbytes(rng.randrange(1, 400))]
    mutated = bytearray(valid)
    for _ in range(rng.randrange(1, 8)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    inputs.append(bytes(mutated))
    inputs.append(valid[: rng.randrange(len(valid))] + rng.randbytes(50))
    for data in inputs:
        s = sp.Session()
        try:
            pos = 0
            while pos < len(data):
                step = rng.randrange(1, 64)
                for event in s.receive_data(data[pos : pos + step]):
                    if isinstance(event, sp.StreamOpened) and s.is_open(event.stream_id):
                        s.reply(event.stream_id)
                    if isinstance(event, sp.DataReceived):
                        s.acknowledge(event.stream_id, len(event.data))
                pos += step
        except ProtocolError:
            assert s.goaway_sent
        s.data_to_send()


def test_larger_windows_are_announced_and_used() -> None:
    s, peer = sp.Session(stream_window=1 << 20, session_window=8 << 20), Peer()
    assert peer.read(s) == [
        f.Settings(((0, f.SettingId.INITIAL_WINDOW_SIZE, 1 << 20),)),
        f.WindowUpdate(0, (8 << 20) - sp.DEFAULT_WINDOW),
    ]
    _open(s, peer)
    s.acknowledge(1, sp.DEFAULT_WINDOW)  # far below half of the larger windows
    assert peer.read(s) == []
    with pytest.raises(ValueError):
        sp.Session(stream_window=1000)


def test_data_for_a_reset_stream_goes_back_to_the_session_window() -> None:
    # A flow-controlling peer keeps sending on a stream we reset until it sees the RST:
    # those bytes must not be lost from the session window, or every stream stalls.
    s, peer = sp.Session(), Peer()
    _open(s, peer)
    s.reset(1)
    peer.read(s)
    assert s.receive_data(peer.bytes(f.DataFrame(1, b"x" * sp.DEFAULT_WINDOW))) == []
    assert peer.read(s) == [f.WindowUpdate(0, sp.DEFAULT_WINDOW)]  # and no RST flood


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    # SPDY/3 draft 2.2.1: C bit, version 3, type; flags and a 24-bit length.
    return struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(payload)) + payload


def _header_block(pairs: list[tuple[bytes, bytes]], z: zlib._Compress) -> bytes:
    raw = struct.pack(">I", len(pairs))
    for k, v in pairs:
        raw += struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v
    return z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)


def test_hand_built_frames_of_every_type_parse_and_write_alike() -> None:
    """Each frame laid out byte by byte from the SPDY/3 draft (section 2.6), not by our
    writer: the parser reads them, and the writer makes the same bytes where no zlib
    state is involved."""
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    syn = _control(
        1,
        0x01,
        struct.pack(">IIBB", 1, 0, 3 << 5, 0) + _header_block([(b"streamtype", b"error")], z),
    )
    reply = _control(2, 0, struct.pack(">I", 1) + _header_block([(b":status", b"200")], z))
    headers = _control(8, 0x01, struct.pack(">I", 1) + _header_block([(b"k", b"v")], z))
    plain = [
        (_control(3, 0, struct.pack(">II", 5, 5)), f.RstStream(5, f.RstStatus.CANCEL)),
        (
            _control(4, 0x01, struct.pack(">IBBHI", 1, 0, 0, 7, 1 << 20)),
            f.Settings(((0, f.SettingId.INITIAL_WINDOW_SIZE, 1 << 20),), clear=True),
        ),
        (_control(6, 0, struct.pack(">I", 7)), f.Ping(7)),
        (_control(7, 0, struct.pack(">II", 3, 0)), f.GoAway(3, f.GoAwayStatus.OK)),
        (_control(9, 0, struct.pack(">II", 1, 1234)), f.WindowUpdate(1, 1234)),
        (struct.pack(">II", 1, (0x01 << 24) | 5) + b"hello", f.DataFrame(1, b"hello", fin=True)),
    ]
    data = syn + reply + headers + b"".join(raw for raw, _ in plain)
    assert f.FrameParser().feed(data) == [
        f.SynStream(1, (("streamtype", "error"),), priority=3, fin=True),
        f.SynReply(1, ((":status", "200"),)),
        f.HeadersFrame(1, (("k", "v"),), fin=True),
        *(frame for _, frame in plain),
    ]
    writer = f.FrameWriter()
    for raw, frame in plain:
        assert writer.write(frame) == raw, frame
