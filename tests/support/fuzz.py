"""Generated CRI requests: every field of a protobuf message filled (or left unset) with random
and boundary values, driven by the message's descriptor, so a new field in the contract is
fuzzed without anyone writing a line.

Values are chosen to hurt: empty and oversized strings, path traversal, NUL and control
characters, unicode, invalid UTF-8 in bytes fields, integer extremes, enum numbers outside the
enum, big maps and lists, and (for id fields) ids of objects that really exist, so requests
reach past the lookup. Every path-like string carries ``token``, so a file created from one
can be found afterwards wherever it landed.

Network safety: image references only ever name the loopback registry given, or hosts that
cannot resolve or connect (``127.0.0.1:1``), never a public registry.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_INT32 = (0, 1, -1, 2**31 - 1, -(2**31), 1000, 65536, 65535)
_INT64 = (*_INT32, 2**63 - 1, -(2**63), 10**12)
_UINT32 = (0, 1, 2**32 - 1, 65535, 65536)
_UINT64 = (*_UINT32, 2**64 - 1, 2**63)
_SIGNED32 = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32)
_SIGNED64 = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
_BYTES = (b"", b"\xff\xfe\xfd", b"\xc3\x28", b"\x00" * 10, b"\x80" * 1000, b"ok")


@dataclass
class Pools:
    """Values worth reusing: ids of real objects, image references, the test's token."""

    token: str
    sandbox_ids: list[str] = field(default_factory=list)
    container_ids: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    allowed_dir: str = "/tmp"


def _strings(pools: Pools) -> Sequence[str]:
    t = pools.token
    return (
        "",
        "a",
        t,
        f"../../../../tmp/{t}-escape",
        f"/tmp/{t}/../../{t}-escape",
        f"{pools.allowed_dir}/{t}/../../../{t}-up",
        f"/{t}-abs",
        f"a/../{t}",
        "..",
        ".",
        "/",
        f"{t}\x00nul",
        f"{t}\nnewline",
        f"{t}:colon;semi=eq",
        "é☃𝄞",
        "x" * 300,
        f"{t}-" + "y" * 70_000,
        "-1",
        "SIGKILL",
        "0.0.0.0",
        "/proc/self/ns/net",
    )


def _image_refs(pools: Pools) -> Sequence[str]:
    t = pools.token
    return (
        *pools.images,
        "",
        "::",
        "UPPER/Case:tag",
        f"127.0.0.1:1/{t}:latest",
        f"127.0.0.1:1/{t}@sha256:" + "0" * 64,
        "sha256:" + "0" * 64,
        "a" * 5000,
        f"{t}..bad//ref",
        "@sha256:zz",
    )


class RequestGenerator:
    """Builds random instances of request messages."""

    def __init__(self, rnd: random.Random, pools: Pools, *, max_depth: int = 5) -> None:
        self._rnd = rnd
        self._pools = pools
        self._max_depth = max_depth
        self._big_left = 0

    def message(self, cls: type[Message]) -> Message:
        msg = cls()
        self._big_left = 2  # oversized strings, lists or maps per request: enough to hurt
        self._fill(msg, cls.DESCRIPTOR, 0)
        return msg

    def _size(self, sizes: Sequence[int]) -> int:
        size = self._rnd.choice(sizes)
        if size > 10:
            if self._big_left <= 0:
                return 3
            self._big_left -= 1
        return size

    # -- values ------------------------------------------------------------------------------

    def _string(self, name: str) -> str:
        rnd, pools = self._rnd, self._pools
        lowered = name.lower()
        if lowered in ("pod_sandbox_id", "sandbox_id") and pools.sandbox_ids and rnd.random() < 0.6:
            return rnd.choice(pools.sandbox_ids)
        if lowered in ("container_id", "id") and pools.container_ids and rnd.random() < 0.5:
            return rnd.choice(pools.container_ids + pools.sandbox_ids)
        if lowered in ("image", "user_specified_image") and rnd.random() < 0.8:
            return rnd.choice(_image_refs(pools))
        if lowered == "log_directory" and rnd.random() < 0.5:
            return f"{pools.allowed_dir}/{pools.token}-logs"
        value = rnd.choice(_strings(pools))
        if len(value) > 1000:
            if self._big_left <= 0:
                return value[:100]
            self._big_left -= 1
        return value

    def _scalar(self, fd: FieldDescriptor) -> Any:
        rnd = self._rnd
        t = fd.type
        if t == FieldDescriptor.TYPE_STRING:
            return self._string(fd.name)
        if t == FieldDescriptor.TYPE_BYTES:
            return rnd.choice(_BYTES)
        if t == FieldDescriptor.TYPE_BOOL:
            return rnd.random() < 0.5
        if t in (
            FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_SINT32,
            FieldDescriptor.TYPE_SFIXED32,
        ):
            return rnd.choice(_INT32)
        if t in (
            FieldDescriptor.TYPE_INT64,
            FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_SFIXED64,
        ):
            return rnd.choice(_INT64)
        if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return rnd.choice(_UINT32)
        if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return rnd.choice(_UINT64)
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return rnd.choice((0.0, -1.0, 1e308, float("inf"), float("nan")))
        if t == FieldDescriptor.TYPE_ENUM:
            values = [v.number for v in fd.enum_type.values]
            return rnd.choice([*values, 99, -5])
        raise AssertionError(f"unhandled field type {t} of {fd.full_name}")

    # -- structure ---------------------------------------------------------------------------

    def _fill(self, msg: Message, desc: Descriptor, depth: int) -> None:
        for fd in desc.fields:
            if self._rnd.random() < 0.35:
                continue  # unset: the default
            self._fill_field(msg, fd, depth)

    def _fill_field(self, msg: Message, fd: FieldDescriptor, depth: int) -> None:
        is_message = fd.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and fd.message_type.GetOptions().map_entry:
            self._fill_map(getattr(msg, fd.name), fd.message_type, depth)
        elif fd.is_repeated:
            count = self._size((0, 1, 2, 3, 50)) if depth < self._max_depth else 0
            target = getattr(msg, fd.name)
            for _ in range(count):
                if is_message:
                    self._fill(target.add(), fd.message_type, depth + 1)
                else:
                    target.append(self._scalar(fd))
        elif is_message:
            if depth < self._max_depth:
                self._fill(getattr(msg, fd.name), fd.message_type, depth + 1)
                getattr(msg, fd.name).SetInParent()
        else:
            setattr(msg, fd.name, self._scalar(fd))

    def mutate(self, base: Message, *, changes: int = 2) -> Message:
        """A copy of the valid request ``base`` with ``changes`` fields (anywhere in its tree)
        replaced by generated values: it passes the shallow checks and reaches deep ones."""
        msg = type(base)()
        msg.CopyFrom(base)
        self._big_left = 1
        for _ in range(changes):
            self._mutate_one(msg, msg.DESCRIPTOR, 0)
        return msg

    def _mutate_one(self, msg: Message, desc: Descriptor, depth: int) -> None:
        rnd = self._rnd
        fd = rnd.choice(list(desc.fields))
        is_message = fd.type == FieldDescriptor.TYPE_MESSAGE
        plain_message = is_message and not fd.is_repeated
        if plain_message and depth < self._max_depth and rnd.random() < 0.7:
            self._mutate_one(getattr(msg, fd.name), fd.message_type, depth + 1)
            return
        msg.ClearField(fd.name)
        self._fill_field(msg, fd, depth)

    def _fill_map(self, target: Any, entry: Descriptor, depth: int) -> None:
        key_fd = entry.fields_by_name["key"]
        value_fd = entry.fields_by_name["value"]
        count = self._size((0, 1, 3, 500))
        for n in range(count):
            key = self._scalar(key_fd)
            if key_fd.type == FieldDescriptor.TYPE_STRING and count > 3:
                key = f"{key[:50]}{n}"
            if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < self._max_depth:
                    self._fill(target[key], value_fd.message_type, depth + 1)
            else:
                target[key] = self._scalar(value_fd)
