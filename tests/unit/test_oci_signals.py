"""Stop signal parsing."""

from __future__ import annotations

import signal

import pytest

from runtime.errors import InvalidArgument
from runtime.images.manifest import ImageConfig
from runtime.oci import parse_signal, stop_signal

RTMIN = int(signal.SIGRTMIN)
RTMAX = int(signal.SIGRTMAX)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("SIGTERM", 15),
        ("TERM", 15),
        ("sigkill", 9),
        ("9", 9),
        (" SIGUSR1 ", 10),
        ("SIGQUIT", 3),
        ("SIGWINCH", 28),
        ("SIGRTMIN", RTMIN),
        ("SIGRTMIN+3", RTMIN + 3),
        ("RTMIN+3", RTMIN + 3),
        ("SIGRTMAX-2", RTMAX - 2),
        ("RTMAX", RTMAX),
        (str(RTMAX), RTMAX),
    ],
)
def test_parse(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize(
    "text",
    ["", "0", "-1", "65", "SIGNOPE", "TERM9", "SIGRTMIN-1", "SIGRTMAX+1", "RTMIN+99", "RTMIN+x"],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_signal(text)


def test_stop_signal_precedence() -> None:
    img = ImageConfig(architecture="amd64", os="linux", stop_signal="SIGQUIT")
    assert stop_signal(img) == 3
    assert stop_signal(img, "SIGINT") == 2
    assert stop_signal(ImageConfig(architecture="amd64", os="linux")) == 15
    with pytest.raises(InvalidArgument):
        stop_signal(ImageConfig(architecture="amd64", os="linux", stop_signal="BOGUS"))
