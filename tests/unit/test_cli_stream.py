"""The streaming CLI's pure parts: port specs and exit codes from the error stream."""

from __future__ import annotations

import pytest

from cri.cli.stream import parse_port_spec
from cri.cli.stream_client import exit_code_of
from cri.streaming import remotecommand as rc
from runtime.errors import InvalidArgument


def test_port_specs() -> None:
    assert parse_port_spec("8080") == (8080, 8080)
    assert parse_port_spec("9000:80") == (9000, 80)
    assert parse_port_spec(":80") == (0, 80)
    assert parse_port_spec("0:80") == (0, 80)
    for bad in ("x", "80:y", "0", "70000", "1:0"):
        with pytest.raises(InvalidArgument):
            parse_port_spec(bad)


def test_exit_codes_from_the_servers_own_status_bodies() -> None:
    assert exit_code_of(b"") == 0
    assert exit_code_of(rc.exit_status(rc.V4, 0)) == 0
    assert exit_code_of(rc.exit_status(rc.V4, 42, ["x"])) == 42
    assert exit_code_of(rc.error_status(rc.V4, "could not start")) == 1
    assert exit_code_of(b"not json") == 1
