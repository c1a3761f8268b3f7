"""The remote command protocol facts: negotiation, status bodies, resize decoding, the
request rules the Exec/Attach RPCs enforce."""

from __future__ import annotations

import json

import pytest

from cri.streaming import remotecommand as rc
from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest
from runtime.errors import InvalidArgument


def test_negotiation_follows_the_clients_order() -> None:
    offered = rc.split_header_values(["v4.channel.k8s.io, v3.channel.k8s.io", "channel.k8s.io"])
    assert offered == ["v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"]
    assert rc.negotiate(offered, rc.SPDY_PROTOCOLS) == rc.V4
    assert rc.negotiate(["v9.channel.k8s.io", rc.V2], rc.SPDY_PROTOCOLS) == rc.V2
    assert rc.negotiate(["nope"], rc.SPDY_PROTOCOLS) is None


def test_exit_status_v4_is_a_metav1_status() -> None:
    assert json.loads(rc.exit_status(rc.V4, 0)) == {"metadata": {}, "status": "Success"}
    failed = json.loads(rc.exit_status(rc.V4, 3, ["sh", "-c", "exit 3"]))
    assert failed["status"] == "Failure"
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exit_status_before_v4_is_text_and_nothing_on_success() -> None:
    assert rc.exit_status(rc.V3, 0) == b""
    assert b"non-zero exit code" in rc.exit_status(rc.V2, 1)
    assert json.loads(rc.error_status(rc.V5, "boom"))["message"] == "boom"
    assert rc.error_status(rc.V1, "boom") == b"boom"


def test_resize_decoder_takes_any_split() -> None:
    stream = b'{"Width":80,"Height":24}{"Width":100,"Height":50}\n{"Width":1,"Height":2}'
    for cut in range(len(stream)):
        d = rc.ResizeDecoder()
        sizes = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert sizes == [
            rc.TerminalSize(80, 24),
            rc.TerminalSize(100, 50),
            rc.TerminalSize(1, 2),
        ]


def test_resize_decoder_drops_garbage_and_bounds_its_buffer() -> None:
    d = rc.ResizeDecoder()
    assert d.feed(b'{"Width":-1,"Height":5}[1,2]"x"') == []
    assert d.feed(b"{" + b" " * 10000) == []
    assert d.feed(b'{"Width":3,"Height":4}') == [rc.TerminalSize(3, 4)]


def test_request_rules() -> None:
    with pytest.raises(InvalidArgument, match="at least one"):
        ExecRequest(container_id="c", cmd=("true",))
    with pytest.raises(InvalidArgument, match="tty and stderr"):
        ExecRequest(container_id="c", cmd=("sh",), tty=True, stdout=True, stderr=True)
    with pytest.raises(InvalidArgument, match="cmd is empty"):
        ExecRequest(container_id="c", cmd=(), stdout=True)
    with pytest.raises(InvalidArgument, match="tty and stderr"):
        AttachRequest(container_id="c", tty=True, stderr=True)
    with pytest.raises(InvalidArgument, match="port 0"):
        PortForwardRequest(sandbox_id="s", netns="", ports=(0,))
    assert ExecRequest(container_id="c", cmd=("sh",), tty=True, stdin=True, stdout=True).tty
