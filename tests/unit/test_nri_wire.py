"""The NRI multiplexer and ttrpc framing, fed bytes laid out as the Go stub
(containerd/nri v0.12 ``pkg/stub`` over ``pkg/net/multiplex`` and containerd/ttrpc) writes
them. The expected bytes are spelled out by hand here, not produced by the code under test."""

from __future__ import annotations

import struct

import pytest

from cri.api.nri.v1alpha1 import api_pb2 as npb
from cri.nri import mux, ttrpc


def ld(field: int, data: bytes) -> bytes:
    """A length-delimited protobuf field (lengths here stay below 128: one-byte varint)."""
    assert len(data) < 128
    return bytes([field << 3 | 2, len(data)]) + data


# The stub's first message: RegisterPlugin on the runtime's conn (2), stream 1, type 1
# (request), flags 0, Request{service, method, payload=RegisterPluginRequest{name, idx}}.
REGISTER_PAYLOAD = ld(1, b"logger") + ld(2, b"10") + ld(3, b"v0.12.2")
REGISTER_REQUEST = (
    ld(1, b"nri.pkg.api.v1alpha1.Runtime") + ld(2, b"RegisterPlugin") + ld(3, REGISTER_PAYLOAD)
)
REGISTER_TTRPC = struct.pack(">IIBB", len(REGISTER_REQUEST), 1, 1, 0) + REGISTER_REQUEST
REGISTER_FRAME = struct.pack(">II", 2, len(REGISTER_TTRPC)) + REGISTER_TTRPC


def test_a_stub_registration_decodes() -> None:
    demux = mux.Demultiplexer()
    (frame,) = demux.receive_data(REGISTER_FRAME)
    assert frame.conn_id == mux.RUNTIME_SERVICE_CONN
    (msg,) = ttrpc.MessageReader().receive_data(frame.payload)
    assert isinstance(msg, ttrpc.Message)
    req = ttrpc.ServerSide().receive(msg)
    assert isinstance(req, ttrpc.IncomingRequest)
    assert (req.stream_id, req.service, req.method) == (
        1,
        "nri.pkg.api.v1alpha1.Runtime",
        "RegisterPlugin",
    )
    reg = npb.RegisterPluginRequest.FromString(req.payload)
    assert (reg.plugin_name, reg.plugin_idx, reg.NRI_version) == ("logger", "10", "v0.12.2")


def test_frames_split_across_reads_and_several_in_one() -> None:
    demux = mux.Demultiplexer()
    stream = REGISTER_FRAME + mux.encode(1, b"abc") + REGISTER_FRAME
    got: list[mux.Frame] = []
    for i in range(len(stream)):  # one byte at a time
        got += demux.receive_data(stream[i : i + 1])
    assert [f.conn_id for f in got] == [2, 1, 2]
    assert got[1].payload == b"abc"
    assert demux.pending == 0
    # and all at once
    assert len(mux.Demultiplexer().receive_data(stream)) == 3


def test_writes_are_cut_into_frames_of_at_most_4096_bytes() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    wire = mux.encode(1, data)
    frames = mux.Demultiplexer().receive_data(wire)
    assert [len(f.payload) for f in frames] == [4096, 4096, 2048]
    assert b"".join(f.payload for f in frames) == data
    assert wire[:8] == b"\x00\x00\x00\x01\x00\x00\x10\x00"


def test_reads_accept_4mib_plus_header_and_refuse_more() -> None:
    big = b"x" * mux.MAX_READ_PAYLOAD
    (frame,) = mux.Demultiplexer().receive_data(struct.pack(">II", 1, len(big)) + big)
    assert len(frame.payload) == 4 * 1024 * 1024 + 10
    with pytest.raises(mux.MuxProtocolError, match="exceeds"):
        mux.Demultiplexer().receive_data(struct.pack(">II", 1, mux.MAX_READ_PAYLOAD + 1))
    with pytest.raises(mux.MuxProtocolError, match="reserved"):
        mux.Demultiplexer().receive_data(struct.pack(">II", 0, 0))


def test_client_numbers_requests_odd_and_increasing() -> None:
    client = ttrpc.ClientSide()
    ids = [
        client.request("nri.pkg.api.v1alpha1.Plugin", "Configure", b"", timeout_nano=5).stream_id
        for _ in range(3)
    ]
    assert ids == [1, 3, 5]
    call = client.request("svc", "M", b"\x01", timeout_nano=2_000_000_000)
    length, sid, mtype, flags = struct.unpack(">IIBB", call.data[:10])
    assert (sid, mtype, flags, length) == (7, 1, 0, len(call.data) - 10)
    # Request{service="svc", method="M", payload=01, timeout_nano=2e9 (field 4 varint)}
    assert (
        call.data[10:] == ld(1, b"svc") + ld(2, b"M") + ld(3, b"\x01") + b"\x20\x80\xa8\xd6\xb9\x07"
    )


def test_responses_and_status_codes() -> None:
    client = ttrpc.ClientSide()
    call = client.request("s", "m", b"")
    # Response{payload=0x10 0x03} (a ConfigureResponse{events=3}), no status: success
    ok = ld(2, b"\x10\x03")
    (msg,) = ttrpc.MessageReader().receive_data(struct.pack(">IIBB", len(ok), 1, 2, 0) + ok)
    assert isinstance(msg, ttrpc.Message)
    assert client.receive(msg) == (call.stream_id, b"\x10\x03")
    assert npb.ConfigureResponse.FromString(b"\x10\x03").events == 3
    # Response{status={code=12, message="nope"}}
    call = client.request("s", "m", b"")
    err = ld(1, b"\x08\x0c" + ld(2, b"nope"))
    (msg,) = ttrpc.MessageReader().receive_data(struct.pack(">IIBB", len(err), 3, 2, 0) + err)
    assert isinstance(msg, ttrpc.Message)
    sid, result = client.receive(msg) or (0, b"")
    assert sid == 3 and isinstance(result, ttrpc.RpcError)
    assert result.code == ttrpc.Code.UNIMPLEMENTED and result.message == "nope"
    # an answer nobody waits for (the call timed out and was forgotten) is dropped
    call = client.request("s", "m", b"")
    client.forget(call.stream_id)
    late = ttrpc.Message(call.stream_id, 2, 0, ok)
    assert client.receive(late) is None
    with pytest.raises(ttrpc.TtrpcProtocolError):
        client.receive(ttrpc.Message(9, 1, 0, b""))


def _status(wire: bytes) -> tuple[int, int, str]:
    (msg,) = ttrpc.MessageReader().receive_data(wire)
    assert isinstance(msg, ttrpc.Message) and msg.type == 2
    from cri.api.nri.ttrpc import ttrpc_pb2

    resp = ttrpc_pb2.Response.FromString(msg.payload)
    return msg.stream_id, resp.status.code, resp.status.message


def test_server_enforces_stream_id_rules() -> None:
    server = ttrpc.ServerSide()
    req = ld(1, b"svc") + ld(2, b"M")
    even = server.receive(ttrpc.Message(2, 1, 0, req))
    assert isinstance(even, bytes) and _status(even)[:2] == (2, 3)
    assert isinstance(server.receive(ttrpc.Message(5, 1, 0, req)), ttrpc.IncomingRequest)
    again = server.receive(ttrpc.Message(3, 1, 0, req))
    assert isinstance(again, bytes)
    assert _status(again) == (3, 3, "StreamID cannot be re-used and must increment")
    big = server.receive(ttrpc.Oversized(7, 1, 5 << 20))
    assert isinstance(big, bytes) and _status(big)[:2] == (7, 8)


def test_reader_skips_an_oversized_message_and_carries_on() -> None:
    reader = ttrpc.MessageReader(max_message=16)
    wire = struct.pack(">IIBB", 20, 1, 1, 0) + b"y" * 20 + struct.pack(">IIBB", 2, 3, 1, 0) + b"ok"
    got = reader.receive_data(wire[:15]) + reader.receive_data(wire[15:])
    assert got == [ttrpc.Oversized(1, 1, 20), ttrpc.Message(3, 1, 0, b"ok")]


def test_answers_are_encoded_as_the_go_client_expects() -> None:
    wire = ttrpc.ServerSide.answer(1, b"")
    # Response{status={}} : header (len 2, stream 1, type 2, flags 0), then 0a 00
    assert wire == b"\x00\x00\x00\x02\x00\x00\x00\x01\x02\x00\x0a\x00"
    with pytest.raises(ttrpc.RpcError, match="RESOURCE_EXHAUSTED"):
        ttrpc.encode_message(1, 1, 0, b"z" * (ttrpc.MAX_MESSAGE + 1))
