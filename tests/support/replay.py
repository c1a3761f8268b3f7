"""Comparing a runtime's CRI answers with a reference runtime's, as a kubelet would read them.
Pure: JSON-shaped values in (protobuf JSON with proto field names, as
``google.protobuf.json_format.MessageToDict(..., preserving_proto_field_name=True)`` and the
recordings of ``../shared/kubelet-cri/`` write them), a list of mismatches out.

Terms:

substitutions
    Strings of the recording replaced by the replay's own (ids the runtime chose, image ids
    and digests, paths, cgroup parents), applied to requests before sending and to reference
    answers before comparing. Longer strings are replaced first, inside any string value.
rule
    What a field of a reference answer demands of the actual one, by its path (dotted, list
    items as ``[]``, e.g. ``status.mounts[].host_path``): ``EQUAL`` (the default: equal after
    substitution), ``SHAPE`` (present, same JSON type: timestamps, sizes, addresses, figures
    that differ between two runs) or ``IGNORE`` (the kubelet does not read it).
matching list items
    Items of a list of objects are paired by their ``id`` (ListPodSandbox, ListContainers,
    stats), ``type`` (Status conditions) or ``attributes.id`` where they carry one, else by
    position.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Rule(enum.Enum):
    EQUAL = "equal"
    SHAPE = "shape"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: method name, request and answer (JSON), gRPC status code name."""

    method: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    code: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field of the reference answer that the actual answer does not carry truly."""

    method: str
    path: str
    why: str

    def __str__(self) -> str:
        return f"{self.method}: {self.path or '(answer)'}: {self.why}"


@dataclass
class Substitutions:
    """recorded string → replay's string (see the module docstring)."""

    pairs: dict[str, str] = field(default_factory=dict)

    def add(self, recorded: str, ours: str) -> None:
        if recorded and recorded != ours:
            self.pairs[recorded] = ours

    def apply(self, value: Any) -> Any:
        if isinstance(value, str):
            for old in sorted(self.pairs, key=len, reverse=True):
                if old in value:
                    value = value.replace(old, self.pairs[old])
            return value
        if isinstance(value, dict):
            return {self.apply(k): self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        return value


def code_class(code: str) -> str:
    """OK or an error; the replay asks for the same class, not the same error code."""
    return "OK" if code == "OK" else "error"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _rule(rules: Mapping[str, Rule], path: str) -> Rule:
    """The rule of ``path``: its own, else the nearest ancestor's, else EQUAL."""
    probe = path
    while probe:
        if probe in rules:
            return rules[probe]
        probe = probe[:-2] if probe.endswith("[]") else probe.rpartition(".")[0]
    return Rule.EQUAL


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "int64" if value.lstrip("-").isdigit() else "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _key_of(item: Any) -> tuple[str, Any] | None:
    if not isinstance(item, dict):
        return None
    if "id" in item:
        return ("id", item["id"])
    if "type" in item:
        return ("type", item["type"])
    attributes = item.get("attributes")
    if isinstance(attributes, dict) and "id" in attributes:
        return ("attributes.id", attributes["id"])
    return None


def compare(
    method: str,
    reference: Any,
    actual: Any,
    *,
    rules: Mapping[str, Rule] | None = None,
    path: str = "",
) -> list[Mismatch]:
    """Every way ``actual`` fails to carry what ``reference`` carries (see the module
    docstring). Fields only ``actual`` has are fine: the kubelet ignores what it does not
    know and the reference answer omitted defaults."""
    rules = rules or {}
    rule = _rule(rules, path)
    if rule is Rule.IGNORE:
        return []
    out: list[Mismatch] = []
    if _kind(reference) != _kind(actual):
        if actual is None:
            return [Mismatch(method, path, f"missing (reference has {reference!r:.80})")]
        return [
            Mismatch(
                method,
                path,
                f"is {_kind(actual)} {actual!r:.80}, reference has {_kind(reference)} "
                f"{reference!r:.80}",
            )
        ]
    if isinstance(reference, dict):
        for key, ref_value in reference.items():
            sub = _join(path, key)
            if _rule(rules, sub) is Rule.IGNORE:
                continue
            if key not in actual:
                out.append(Mismatch(method, sub, f"missing (reference has {ref_value!r:.80})"))
                continue
            out.extend(compare(method, ref_value, actual[key], rules=rules, path=sub))
        return out
    if isinstance(reference, list):
        return _compare_lists(method, reference, actual, rules, path)
    if rule is Rule.SHAPE:
        return []
    if reference != actual:
        return [Mismatch(method, path, f"is {actual!r:.120}, reference has {reference!r:.120}")]
    return []


def _compare_lists(
    method: str, reference: list[Any], actual: list[Any], rules: Mapping[str, Rule], path: str
) -> list[Mismatch]:
    item_path = path + "[]"
    keys = [_key_of(r) for r in reference]
    if reference and all(k is not None for k in keys):
        by_key = {_key_of(a): a for a in actual}
        out: list[Mismatch] = []
        for key, ref_item in zip(keys, reference, strict=True):
            assert key is not None
            if key not in by_key:
                out.append(Mismatch(method, item_path, f"no item with {key[0]} {key[1]!r}"))
                continue
            out.extend(compare(method, ref_item, by_key[key], rules=rules, path=item_path))
        return out
    if _rule(rules, item_path) is Rule.SHAPE and all(not isinstance(r, dict) for r in reference):
        if actual or not reference:
            return []
        return [Mismatch(method, path, f"is empty, reference has {len(reference)} items")]
    if len(actual) != len(reference):
        return [
            Mismatch(
                method,
                path,
                f"has {len(actual)} items, reference has {len(reference)}: {actual!r:.160} vs "
                f"{reference!r:.160}",
            )
        ]
    out = []
    for ref_item, act_item in zip(reference, actual, strict=True):
        out.extend(compare(method, ref_item, act_item, rules=rules, path=item_path))
    return out
