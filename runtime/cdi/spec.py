"""Parsing and validating one CDI spec file, by the CDI specification's schema rules.

The rules checked (what the reference implementation's validation enforces):

* ``cdiVersion`` is one of the released spec versions (:data:`SPEC_VERSIONS`).
* ``kind`` is ``vendor/class``: the vendor starts with a letter, ends with a letter or digit
  and holds letters, digits, ``-``, ``_`` and ``.``; the class the same without ``.``.
* each device name starts and ends with a letter or digit and holds letters, digits,
  ``-``, ``_``, ``.`` and ``:``; names are unique in a spec; a spec has at least one device.
* container edits: ``env`` entries are ``KEY=VALUE``; device nodes have an absolute
  ``path``, a ``type`` of ``b``, ``c``, ``u`` or ``p`` when given and ``permissions`` made of
  ``rwm``; mounts have ``hostPath`` and an absolute ``containerPath``; hooks name one of the
  OCI hook points and an absolute ``path``.

Everything is parsed into frozen dataclasses; a violation raises InvalidArgument saying
which field of which device is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.errors import InvalidArgument

# Released versions of the CDI spec; a file naming another one is rejected.
SPEC_VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0")

# The OCI hook points a CDI hook may name.
HOOK_NAMES = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)

# used with fullmatch: a "$" anchor would let a trailing newline through
_VENDOR = re.compile(r"[A-Za-z](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_CLASS = re.compile(r"[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_DEVICE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class DeviceNode:
    """A device node to create in the container. Unset ``type``/``major``/``minor`` (and mode,
    owner) come from stat(2) of ``host_path`` (``path`` when that is empty) when applied."""

    path: str
    host_path: str = ""
    type: str = ""
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    permissions: str = ""
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True, slots=True)
class MountEdit:
    host_path: str
    container_path: str
    type: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HookEdit:
    hook_name: str
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerEdits:
    env: tuple[str, ...] = ()
    device_nodes: tuple[DeviceNode, ...] = ()
    mounts: tuple[MountEdit, ...] = ()
    hooks: tuple[HookEdit, ...] = ()
    additional_gids: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.env or self.device_nodes or self.mounts or self.hooks or self.additional_gids
        )


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    edits: ContainerEdits
    annotations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Spec:
    """One parsed spec file. ``source`` is the file it came from (for messages)."""

    version: str
    kind: str
    devices: tuple[DeviceSpec, ...]
    edits: ContainerEdits
    source: str = ""

    @property
    def vendor(self) -> str:
        return self.kind.split("/", 1)[0]

    @property
    def device_class(self) -> str:
        return self.kind.split("/", 1)[1]


def validate_kind(kind: str, *, where: str = "kind") -> None:
    vendor, sep, klass = kind.partition("/")
    if not sep:
        raise InvalidArgument(f"{where} {kind!r}: a kind is vendor.com/class")
    if not _VENDOR.fullmatch(vendor):
        raise InvalidArgument(
            f"{where} {kind!r}: vendor {vendor!r} must start with a letter, end with a letter "
            "or digit and hold only letters, digits, '-', '_' and '.'"
        )
    if not _CLASS.fullmatch(klass):
        raise InvalidArgument(
            f"{where} {kind!r}: class {klass!r} must start with a letter, end with a letter "
            "or digit and hold only letters, digits, '-' and '_'"
        )


def validate_device_name(name: str, *, where: str = "device") -> None:
    if not _DEVICE.fullmatch(name):
        raise InvalidArgument(
            f"{where} name {name!r} must start and end with a letter or digit and hold only "
            "letters, digits, '-', '_', '.' and ':'"
        )


def parse_qualified_name(qualified: str) -> tuple[str, str]:
    """``vendor.com/class=name`` → (kind, name); InvalidArgument when it is not one."""
    kind, sep, name = qualified.partition("=")
    if not sep or not name:
        raise InvalidArgument(
            f"CDI device {qualified!r} is not a fully qualified name (vendor.com/class=name)"
        )
    validate_kind(kind, where=f"CDI device {qualified!r}: kind")
    validate_device_name(name, where=f"CDI device {qualified!r}:")
    return kind, name


def parse_spec(data: Any, *, source: str = "") -> Spec:
    """Validate and parse one spec document (already decoded from JSON or YAML)."""
    where = source or "CDI spec"
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"{where}: a CDI spec is an object")
    version = data.get("cdiVersion")
    if not isinstance(version, str) or version not in SPEC_VERSIONS:
        raise InvalidArgument(
            f"{where}: cdiVersion {version!r} is not a released CDI spec version "
            f"({', '.join(SPEC_VERSIONS)})"
        )
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise InvalidArgument(f"{where}: kind is missing")
    validate_kind(kind, where=f"{where}: kind")
    raw_devices = data.get("devices")
    if not isinstance(raw_devices, list) or not raw_devices:
        raise InvalidArgument(f"{where}: devices must list at least one device")
    devices: list[DeviceSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_devices):
        at = f"{where}: devices[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"{at} is not an object")
        name = raw.get("name")
        if not isinstance(name, str):
            raise InvalidArgument(f"{at}: name is missing")
        validate_device_name(name, where=at)
        if name in seen:
            raise InvalidArgument(f"{at}: device {name!r} is defined twice")
        seen.add(name)
        edits = _edits(raw.get("containerEdits"), f"{at} ({name}).containerEdits")
        devices.append(
            DeviceSpec(name=name, edits=edits, annotations=_str_map(raw.get("annotations"), at))
        )
    return Spec(
        version=version,
        kind=kind,
        devices=tuple(devices),
        edits=_edits(data.get("containerEdits"), f"{where}: containerEdits"),
        source=source,
    )


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(f"{where}: annotations must map strings to strings")
    return dict(value)


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidArgument(f"{where} must be a list")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where)
    if not all(isinstance(s, str) for s in items):
        raise InvalidArgument(f"{where} must be a list of strings")
    return tuple(items)


def _opt_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{where}.{key} must be a non-negative integer, got {value!r}")
    return value


def _abs(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidArgument(f"{where}.{key} must be an absolute path, got {value!r}")
    return value


def _edits(value: Any, where: str) -> ContainerEdits:
    if value is None:
        return ContainerEdits()
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{where} must be an object")
    env = _strings(value.get("env"), f"{where}.env")
    for i, entry in enumerate(env):
        if "=" not in entry or entry.startswith("="):
            raise InvalidArgument(f"{where}.env[{i}] {entry!r} is not KEY=VALUE")
    nodes = []
    for i, raw in enumerate(_list(value.get("deviceNodes"), f"{where}.deviceNodes")):
        at = f"{where}.deviceNodes[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"{at} is not an object")
        kind = raw.get("type") or ""
        if kind not in ("", "b", "c", "u", "p"):
            raise InvalidArgument(f"{at}.type {kind!r} must be b, c, u or p")
        perms = raw.get("permissions") or ""
        if not isinstance(perms, str) or set(perms) - set("rwm"):
            raise InvalidArgument(f"{at}.permissions {perms!r}: use letters from 'rwm'")
        host = raw.get("hostPath") or ""
        if not isinstance(host, str) or (host and not host.startswith("/")):
            raise InvalidArgument(f"{at}.hostPath must be an absolute path, got {host!r}")
        nodes.append(
            DeviceNode(
                path=_abs(raw, "path", at),
                host_path=host,
                type=kind,
                major=_opt_int(raw, "major", at),
                minor=_opt_int(raw, "minor", at),
                file_mode=_opt_int(raw, "fileMode", at),
                permissions=perms,
                uid=_opt_int(raw, "uid", at),
                gid=_opt_int(raw, "gid", at),
            )
        )
    mounts = []
    for i, raw in enumerate(_list(value.get("mounts"), f"{where}.mounts")):
        at = f"{where}.mounts[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"{at} is not an object")
        host = raw.get("hostPath")
        if not isinstance(host, str) or not host:
            raise InvalidArgument(f"{at}.hostPath is missing")
        mount_type = raw.get("type") or ""
        if not isinstance(mount_type, str):
            raise InvalidArgument(f"{at}.type must be a string")
        mounts.append(
            MountEdit(
                host_path=host,
                container_path=_abs(raw, "containerPath", at),
                type=mount_type,
                options=_strings(raw.get("options"), f"{at}.options"),
            )
        )
    hooks = []
    for i, raw in enumerate(_list(value.get("hooks"), f"{where}.hooks")):
        at = f"{where}.hooks[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidArgument(f"{at} is not an object")
        hook_name = raw.get("hookName")
        if hook_name not in HOOK_NAMES:
            raise InvalidArgument(f"{at}.hookName {hook_name!r} must be one of {HOOK_NAMES}")
        hooks.append(
            HookEdit(
                hook_name=hook_name,
                path=_abs(raw, "path", at),
                args=_strings(raw.get("args"), f"{at}.args"),
                env=_strings(raw.get("env"), f"{at}.env"),
                timeout=_opt_int(raw, "timeout", at),
            )
        )
    gids = _list(value.get("additionalGids"), f"{where}.additionalGids")
    if not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gids):
        raise InvalidArgument(f"{where}.additionalGids must be non-negative integers")
    return ContainerEdits(
        env=env,
        device_nodes=tuple(nodes),
        mounts=tuple(mounts),
        hooks=tuple(hooks),
        additional_gids=tuple(gids),
    )
