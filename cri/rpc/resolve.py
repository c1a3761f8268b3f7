"""Ids as callers give them: full, or a unique prefix (crictl shows 13-character ids)."""

from __future__ import annotations

from collections.abc import Iterable

from runtime.errors import InvalidArgument


def resolve_id(text: str, known: Iterable[str], *, what: str) -> str | None:
    """The full id ``text`` names among ``known``: itself, or the one id it is a prefix of.
    None when nothing matches; InvalidArgument when the prefix is ambiguous or empty."""
    if not text:
        raise InvalidArgument(f"{what} id is empty")
    matches = []
    for candidate in known:
        if candidate == text:
            return candidate
        if candidate.startswith(text):
            matches.append(candidate)
    if len(matches) > 1:
        raise InvalidArgument(f"{what} id prefix {text!r} is ambiguous: it matches {len(matches)}")
    return matches[0] if matches else None
