"""Frozen dataclasses to JSON-compatible values and back, by their type hints.

Used wherever the runtime's dataclasses cross into text: the metadata database (pod and
container records) and the Events API (event payloads). Enums become their values, tuples
lists, datetimes ISO-8601 strings, mappings objects; the way back validates every field and
raises InvalidArgument naming the field at fault.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from runtime.errors import InvalidArgument


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidArgument(message)


def to_plain(value: Any) -> Any:
    """A JSON-compatible form of ``value`` (a dataclass, enum, tuple, mapping or scalar)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def from_plain(hint: Any, value: Any, where: str) -> Any:
    """Rebuild a value of type ``hint`` from ``to_plain`` output, validating as it goes."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return from_plain(args[0], value, where)
    if origin is tuple:
        _require(isinstance(value, list | tuple), f"{where}: expected a list")
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1:
            return tuple(from_plain(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        _require(len(value) == len(args), f"{where}: expected {len(args)} items")
        return tuple(
            from_plain(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (collections.abc.Mapping, dict):
        _require(isinstance(value, Mapping), f"{where}: expected an object")
        _, value_hint = typing.get_args(hint)
        return {str(k): from_plain(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise InvalidArgument(f"{where}: invalid value {value!r}") from None
    if hint is datetime:
        _require(isinstance(value, str), f"{where}: expected an ISO-8601 string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidArgument(f"{where}: invalid timestamp {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return dataclass_from_plain(hint, value, where)
    if hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), f"{where}: expected int")
        return value
    if hint is str:
        _require(isinstance(value, str), f"{where}: expected a string")
        return value
    if hint is bool:
        _require(isinstance(value, bool), f"{where}: expected a boolean")
        return value
    raise AssertionError(f"unsupported field type {hint!r} at {where}")


@functools.cache
def _field_hints(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """The resolved type hints of a dataclass and its field names, worked out once per class:
    resolving string annotations evaluates them, which cost most of a daemon restart's record
    loading when done per record."""
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))


def dataclass_from_plain(cls: type, data: Any, where: str) -> Any:
    """Rebuild the dataclass ``cls`` from ``to_plain`` output (missing fields take defaults)."""
    _require(isinstance(data, Mapping), f"{where}: expected an object")
    hints, known = _field_hints(cls)
    unknown = set(data) - known
    _require(not unknown, f"{where}: unknown fields {sorted(unknown)}")
    kwargs = {name: from_plain(hints[name], data[name], f"{where}.{name}") for name in data}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise InvalidArgument(f"{where}: {e}") from None
