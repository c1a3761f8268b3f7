"""Seccomp for containers: none (unconfined), a profile file from the host (localhost), or
pinnace's runtime default.

The runtime default is an allow list (default action ERRNO/EPERM), the data of
:mod:`runtime.oci.seccomp_default`, rendered here for one container: rules conditioned on
capabilities are kept when the container's bounding set satisfies them, rules conditioned on
the machine when the host is one of theirs, rules with a minimum kernel when the host's kernel
is at least that. runc and crun skip names the kernel or libseccomp does not know.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument
from runtime.model.pods import ProfileType, SecurityProfile
from runtime.oci.seccomp_default import ARCHITECTURES, EPERM, RULES, Rule

# Other spellings of the machines the rules name.
_MACHINE_ALIASES = {
    "amd64": "x86_64",
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "arm64": "aarch64",
    "armv6l": "armv7l",
    "armv8l": "armv7l",
}


def _machine(name: str) -> str:
    return _MACHINE_ALIASES.get(name, name)


def _kernel(release: str) -> tuple[int, int]:
    """(major, minor) of a ``uname -r`` string; (0, 0) when it cannot be read."""
    found = re.match(r"(\d+)\.(\d+)", release)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _applies(rule: Rule, *, held: set[str], machine: str, kernel: tuple[int, int]) -> bool:
    if rule.caps and not held.intersection(rule.caps):
        return False
    if held.intersection(rule.not_caps):
        return False
    if rule.machines and machine not in rule.machines:
        return False
    if machine in rule.not_machines:
        return False
    return rule.min_kernel is None or kernel >= rule.min_kernel


def _render(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
    if rule.errno is not None:
        out["errnoRet"] = rule.errno
    if rule.args:
        out["args"] = [
            {"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}
            for a in rule.args
        ]
    return out


def default_profile(
    capabilities: Collection[str], *, machine: str = "", kernel_release: str = ""
) -> dict[str, Any]:
    """pinnace's runtime default profile for a process whose bounding set is
    ``capabilities``, on ``machine`` (``uname -m``) with kernel ``kernel_release``
    (``uname -r``); both default to this host's."""
    arch = _machine(machine or platform.machine())
    kernel = _kernel(kernel_release or platform.release())
    held = set(capabilities)
    syscalls = [
        _render(rule) for rule in RULES if _applies(rule, held=held, machine=arch, kernel=kernel)
    ]
    profile: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "syscalls": syscalls,
    }
    if arch in ARCHITECTURES:
        profile["architectures"] = list(ARCHITECTURES[arch])
    return profile


def seccomp_spec(
    profile: SecurityProfile, *, privileged: bool, capabilities: Collection[str]
) -> dict[str, Any] | None:
    """``linux.seccomp`` for ``profile``: None for unconfined and for privileged containers
    (containerd's rule), the default profile for RUNTIME_DEFAULT, the JSON file named by
    ``localhost_ref`` for LOCALHOST (InvalidArgument if it cannot be read)."""
    if privileged or profile.type is ProfileType.UNCONFINED:
        return None
    if profile.type is ProfileType.RUNTIME_DEFAULT:
        return default_profile(capabilities)
    ref = profile.localhost_ref
    if not ref.startswith("/"):
        raise InvalidArgument(f"seccomp localhost profile {ref!r} must be an absolute path")
    try:
        doc = json.loads(Path(ref).read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot load seccomp profile {ref}: {exc}") from None
    if not isinstance(doc, dict) or "defaultAction" not in doc:
        raise InvalidArgument(f"seccomp profile {ref} has no defaultAction")
    return doc
