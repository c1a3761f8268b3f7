"""The filter language: parsing, errors with positions, AND within and OR across filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtime.errors import InvalidArgument
from runtime.events import filters
from runtime.events import types as t


def _env(event: t.Event, namespace: str = "k8s.io") -> t.Envelope:
    return t.Envelope(event.topic, namespace, datetime.now(UTC), event)


EXIT = _env(t.TaskExit(container_id="c1", pid=5, exit_status=0, exited_at=datetime.now(UTC)))
START = _env(t.SandboxStart(sandbox_id="sb-1"), namespace="default")
FAILED = _env(t.NetworkFailed(sandbox_id="sb-1", message="no", op=t.NetworkOp.ADD))


@pytest.mark.parametrize(
    ("expr", "matches"),
    [
        ('topic=="/tasks/exit"', {EXIT}),
        ("topic==/tasks/exit", {EXIT}),
        ('topic~="/sandboxes/*"', {START}),
        ('topic~="^/(tasks|network)/"', {EXIT, FAILED}),
        ('event.sandbox_id=="sb-1"', {START, FAILED}),
        ("namespace==k8s.io", {EXIT, FAILED}),
        ("namespace!=k8s.io", {START}),
        ('namespace==k8s.io, event.sandbox_id == "sb-1"', {FAILED}),
        ("event.op==ADD", {FAILED}),
        ("event.exit_status==0", {EXIT}),
        ("event.sandbox_id", {START, FAILED}),
        ("event.nonexistent!=x", {EXIT, START, FAILED}),
        ("event.nonexistent==x", set()),
        ("topic=='/tasks/exit'", {EXIT}),
        (r'event.message=="n\o"', {FAILED}),
    ],
)
def test_single_filter(expr: str, matches: set[t.Envelope]) -> None:
    f = filters.parse(expr)
    assert {e for e in (EXIT, START, FAILED) if f.match(e)} == matches


def test_several_filters_are_or_and_none_matches_everything() -> None:
    m = filters.parse_any(['topic=="/tasks/exit"', "namespace==default"])
    assert [m(e) for e in (EXIT, START, FAILED)] == [True, True, False]
    everything = filters.parse_any([])
    assert all(everything(e) for e in (EXIT, START, FAILED))
    custom = filters.parse_any([lambda e: e is FAILED])
    assert [custom(e) for e in (EXIT, START, FAILED)] == [False, False, True]


@pytest.mark.parametrize(
    ("expr", "position", "what"),
    [
        ('topic="/x"', 5, "operator"),
        ('topic=="/x" extra', 12, "expected ','"),
        ('topic=="/x', 7, "unterminated"),
        ("labels.x==1", 0, "unknown field"),
        ("event==1", 0, "needs a field"),
        ('topic~="(("', 7, "regular expression"),
        ("topic==", 7, "expected a value"),
        (",topic==x", 0, "field name"),
        ("topic==a b", 9, "expected ','"),
        ('topic=="a",', 11, "field name"),
    ],
)
def test_parse_errors_say_what_and_where(expr: str, position: int, what: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        filters.parse(expr)
    assert f"position {position}" in str(info.value)
    assert what in str(info.value)


def test_empty_filter_is_invalid() -> None:
    with pytest.raises(InvalidArgument):
        filters.parse("  ")
