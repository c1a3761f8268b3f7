"""containerd-style event filters, parsed safely (no eval) into matchers over envelopes.

Grammar (one *filter*)::

    filter   := clause ("," clause)*          -- every clause must match (AND)
    clause   := selector [op value]           -- a bare selector means "the field is present"
    selector := name ("." name)*              -- topic | namespace | event.<field>[.<field>...]
    op       := "==" | "!=" | "~="
    value    := quoted | bare                 -- "..." or '...' with backslash escapes,
                                                 or a run of [A-Za-z0-9_./:*@+-]

Several filters given together match when ANY of them matches (OR); no filters match all.

``~=`` is a Python regular expression searched anywhere in the field (like Go's
``regexp.MatchString`` in containerd), so ``topic~="/sandboxes/"`` matches every sandbox
topic and ``topic~="^/tasks/(exit|oom)$"`` two exact ones. Fields compare as strings: enums by
value, booleans as ``true``/``false``, integers in decimal. A missing field never equals and
never matches; ``!=`` on a missing field is true (containerd's semantics).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runtime.errors import InvalidArgument
from runtime.events.types import Envelope

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"[A-Za-z0-9_./:*@+-]+")
_OPS = ("==", "!=", "~=")
_MAX_REGEX = 512


class Op(enum.Enum):
    """A clause's comparison."""

    PRESENT = "present"
    EQUAL = "=="
    NOT_EQUAL = "!="
    MATCHES = "~="


@dataclass(frozen=True, slots=True)
class Clause:
    """``selector op value``; ``pattern`` is set for MATCHES."""

    selector: tuple[str, ...]
    op: Op
    value: str = ""
    pattern: re.Pattern[str] | None = None

    def match(self, envelope: Envelope) -> bool:
        """Whether the envelope satisfies this clause."""
        found, text = _field(envelope, self.selector)
        if self.op is Op.PRESENT:
            return found
        if self.op is Op.NOT_EQUAL:
            return not found or text != self.value
        if not found:
            return False
        if self.op is Op.EQUAL:
            return text == self.value
        assert self.pattern is not None
        return self.pattern.search(text) is not None


@dataclass(frozen=True, slots=True)
class Filter:
    """One parsed filter: all clauses must match. ``source`` is the text it came from."""

    source: str
    clauses: tuple[Clause, ...]

    def match(self, envelope: Envelope) -> bool:
        """Whether every clause matches."""
        return all(c.match(envelope) for c in self.clauses)


Matcher = Callable[[Envelope], bool]
"""Anything that decides whether an envelope is wanted."""


def _stringify(value: object) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field(envelope: Envelope, selector: tuple[str, ...]) -> tuple[bool, str]:
    head, rest = selector[0], selector[1:]
    if head == "topic" and not rest:
        return True, envelope.topic
    if head == "namespace" and not rest:
        return True, envelope.namespace
    if head != "event":
        return False, ""
    value: object = envelope.event
    for name in rest:
        if not dataclasses.is_dataclass(value) or name not in {
            f.name for f in dataclasses.fields(value)
        }:
            return False, ""
        value = getattr(value, name)
    if value is None or value == () or value == "":
        return False, ""
    if dataclasses.is_dataclass(value) or isinstance(value, tuple):
        return True, ""  # composite values are only "present"; compare their fields instead
    return True, _stringify(value)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> InvalidArgument:
        return InvalidArgument(f"invalid filter {self.text!r} at position {self.pos}: {what}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def parse(self) -> Filter:
        clauses = [self.clause()]
        while True:
            self.skip_space()
            if self.pos == len(self.text):
                return Filter(self.text, tuple(clauses))
            if self.text[self.pos] != ",":
                raise self.fail(f"expected ',' or end of filter, found {self.text[self.pos]!r}")
            self.pos += 1
            clauses.append(self.clause())

    def clause(self) -> Clause:
        selector = self.selector()
        self.skip_space()
        op_text = self.text[self.pos : self.pos + 2]
        if op_text not in _OPS:
            if self.pos == len(self.text) or self.text[self.pos] == ",":
                return Clause(selector, Op.PRESENT)
            raise self.fail("expected an operator: ==, != or ~=")
        self.pos += 2
        self.skip_space()
        value_pos = self.pos
        value = self.value()
        op = Op(op_text)
        if op is not Op.MATCHES:
            return Clause(selector, op, value)
        if len(value) > _MAX_REGEX:
            raise self.fail(f"regular expression longer than {_MAX_REGEX} characters")
        try:
            pattern = re.compile(value)
        except re.error as e:
            self.pos = value_pos
            raise self.fail(f"bad regular expression: {e}") from None
        return Clause(selector, op, value, pattern)

    def selector(self) -> tuple[str, ...]:
        self.skip_space()
        start = self.pos
        names = []
        while True:
            m = _NAME.match(self.text, self.pos)
            if not m:
                raise self.fail("expected a field name")
            names.append(m.group())
            self.pos = m.end()
            if self.text.startswith(".", self.pos):
                self.pos += 1
                continue
            break
        if names[0] not in ("topic", "namespace", "event") or (
            names[0] != "event" and len(names) > 1
        ):
            self.pos = start
            raise self.fail(
                f"unknown field {'.'.join(names)!r}: use topic, namespace or event.<field>"
            )
        if names == ["event"]:
            self.pos = start
            raise self.fail("'event' needs a field: event.<field>")
        return tuple(names)

    def value(self) -> str:
        if self.pos >= len(self.text):
            raise self.fail("expected a value")
        quote = self.text[self.pos]
        if quote in "\"'":
            return self.quoted(quote)
        m = _BARE.match(self.text, self.pos)
        if not m:
            raise self.fail(f"unexpected character {quote!r} in value (quote the value)")
        self.pos = m.end()
        return m.group()

    def quoted(self, quote: str) -> str:
        start = self.pos
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == quote:
                self.pos += 1
                return "".join(out)
            out.append(ch)
            self.pos += 1
        self.pos = start
        raise self.fail("unterminated quoted value")


def parse(text: str) -> Filter:
    """Parse one filter; InvalidArgument says what is wrong and where."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument("invalid filter: empty")
    return _Parser(text).parse()


def parse_any(texts: Iterable[str | Matcher]) -> Matcher:
    """One matcher for several filters (strings are parsed, callables used as they are): an
    envelope matches when any filter matches; with no filters everything matches."""
    matchers: list[Matcher] = [parse(t).match if isinstance(t, str) else t for t in texts]
    if not matchers:
        return lambda _envelope: True
    if len(matchers) == 1:
        return matchers[0]
    return lambda envelope: any(m(envelope) for m in matchers)
