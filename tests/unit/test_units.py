"""The one quantity parser and the one duration parser (runtime/units.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from runtime.errors import InvalidArgument
from runtime.units import parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        ("64Mi", Decimal(64 * 2**20)),
        ("1e3", Decimal(1000)),
        ("2G", Decimal(2 * 10**9)),
        ("10M", Decimal(10**7)),
        (3, Decimal(3)),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "ten", "-1", "1ki", "1 Gi x", "1KiB"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("30s", 30.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1m500ms", 60.5),
        ("1h", 3600.0),
        ("10us", 1e-5),
        (" 5 m ", 300.0),
        ("5", 5.0),
        ("1.5", 1.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "m5", "1m 30", "-1s", "1s1"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)


def test_a_bare_number_needs_the_callers_consent() -> None:
    with pytest.raises(InvalidArgument):
        parse_duration("5", bare_seconds=False)
    assert parse_duration("5s", bare_seconds=False) == 5.0
