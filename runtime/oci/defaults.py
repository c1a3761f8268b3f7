"""The defaults every pod container starts from, as containerd's CRI plugin has them.

Terms:

default mount
    A filesystem runc mounts into every container before the sandbox files and the caller's
    mounts: proc, a tmpfs ``/dev`` with devpts, ``/dev/shm``, ``/dev/mqueue``, sysfs and the
    cgroup filesystem (both read-only). containerd's generic default ``/run`` tmpfs is left
    out, as its CRI plugin leaves it out.
masked path
    A path runc hides (bind-mounts ``/dev/null`` or an empty read-only tmpfs over it).
readonly path
    A path runc remounts read-only inside the container.
device rule
    A device cgroup rule (``linux.resources.devices``): deny everything, then allow the
    devices every container may use.
"""

from __future__ import annotations

from typing import Any

OCI_VERSION = "1.0.2"  # what runc 1.1.5 reports as its spec version

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's (and Docker's) default capability set, in containerd's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
)

READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

DEV_SHM = "/dev/shm"
CGROUP_MOUNT_OPTIONS = ("nosuid", "noexec", "nodev", "relatime", "ro")


def default_mounts() -> list[dict[str, Any]]:
    """A fresh list of the default mounts, in the order runc must mount them."""
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": DEV_SHM,
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": list(CGROUP_MOUNT_OPTIONS),
        },
    ]


# (type, major, minor) of the character devices every container may use; None = any minor.
_ALLOWED_CHAR_DEVICES: tuple[tuple[str, int, int | None], ...] = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
    ("console", 5, 1),
    ("ptmx", 5, 2),
    ("pts", 136, None),
)


def default_device_rules() -> list[dict[str, Any]]:
    """Deny every device, then allow the standard character devices (rwm)."""
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for _name, major, minor in _ALLOWED_CHAR_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def allow_all_devices_rules() -> list[dict[str, Any]]:
    """The device cgroup rules of a privileged container: everything allowed."""
    return [{"allow": True, "access": "rwm"}]
