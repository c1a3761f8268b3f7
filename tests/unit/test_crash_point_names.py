"""Crash points: each named one is placed in code exactly once, and none is placed unnamed."""

from __future__ import annotations

import re
from pathlib import Path

from runtime import faults

ROOT = Path(__file__).resolve().parents[2]
_CALL = re.compile(r'faults\.point\("([^"]+)"\)')


def test_every_point_is_placed_exactly_once() -> None:
    placed: dict[str, list[str]] = {}
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for name in _CALL.findall(path.read_text()):
            placed.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert set(placed) == faults.POINTS
    assert {n: p for n, p in placed.items() if len(p) != 1} == {}


def test_unarmed_points_do_nothing() -> None:
    for name in faults.POINTS:
        faults.point(name)  # no PINNACE_CRASH_AT in the test's environment: returns
