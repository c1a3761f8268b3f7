"""Seccomp for containers: none (unconfined), a profile file from the host (localhost), or
pinnace's runtime default.

The runtime default is a deny list: every system call is allowed except those that reach
kernel-global state or escape a container, each refused with EPERM unless the container
holds the capability that would make the call legitimate (the idea of Docker's default
profile, which spells the same policy as an allow list). ``clone3`` fails with ENOSYS when
namespace creation is refused, so libc falls back to ``clone``, whose namespace flags the
profile can inspect. runc skips names the kernel or libseccomp does not know.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Collection
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument
from runtime.pods.model import ProfileType, SecurityProfile

_EPERM = 1
_ENOSYS = 38

# Calls refused unless the container holds the capability (None: refused always).
_DENIED: tuple[tuple[str | None, tuple[str, ...]], ...] = (
    (None, ("add_key", "keyctl", "request_key", "userfaultfd", "nfsservctl", "uselib")),
    (None, ("get_kernel_syms", "query_module", "create_module", "ustat", "sysfs", "_sysctl")),
    (None, ("vm86", "vm86old")),
    (
        "CAP_SYS_ADMIN",
        (
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "swapon",
            "swapoff",
            "quotactl",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "bpf",
            "perf_event_open",
            "fanotify_init",
            "lookup_dcookie",
        ),
    ),
    ("CAP_SYS_MODULE", ("init_module", "finit_module", "delete_module")),
    ("CAP_SYS_BOOT", ("reboot", "kexec_load", "kexec_file_load")),
    (
        "CAP_SYS_TIME",
        ("settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime"),
    ),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_SYS_NICE", ("mbind", "set_mempolicy", "move_pages", "migrate_pages")),
    ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
    ("CAP_SYSLOG", ("syslog",)),
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
)

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
_CLONE_NS_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)

_ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
}


def default_profile(capabilities: Collection[str], *, machine: str = "") -> dict[str, Any]:
    """pinnace's runtime default profile for a process holding ``capabilities``."""
    machine = machine or platform.machine()
    held = set(capabilities)
    denied: list[str] = []
    for cap, names in _DENIED:
        if cap is None or cap not in held:
            denied.extend(names)
    syscalls: list[dict[str, Any]] = [
        {"names": sorted(denied), "action": "SCMP_ACT_ERRNO", "errnoRet": _EPERM}
    ]
    if "CAP_SYS_ADMIN" not in held:
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS})
        flags_arg = 1 if machine == "s390x" else 0  # s390 swaps clone's first two arguments
        for flag in _CLONE_NS_FLAGS:
            syscalls.append(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": _EPERM,
                    "args": [
                        {
                            "index": flags_arg,
                            "value": flag,
                            "valueTwo": flag,
                            "op": "SCMP_CMP_MASKED_EQ",
                        }
                    ],
                }
            )
    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}
    if machine in _ARCHES:
        profile["architectures"] = list(_ARCHES[machine])
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
