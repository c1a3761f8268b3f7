"""Test helper: a minimal OCI runtime spec (``config.json``) for a busybox bundle.

Only for the task tests, until ``runtime/oci`` exists. It asks for nothing that needs
CAP_SYS_RESOURCE (no ``oomScoreAdj``), so it runs on the test machines.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CAPS = [
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
]


def spec(
    args: Sequence[str], *, cgroups_path: str, hostname: str = "t", terminal: bool = False
) -> dict[str, Any]:
    """The config for running ``args`` as root in fresh namespaces under ``cgroups_path``."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
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
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def write_bundle(bundle: Path, rootfs_source: Path, config: dict[str, Any]) -> Path:
    """Write ``config.json`` into ``bundle`` with ``rootfs`` a symlink-free copy location:
    the caller's prepared rootfs directory is bind-free, so it is used in place via a
    relative path when it sits inside the bundle, else the config names it absolutely."""
    bundle.mkdir(parents=True, exist_ok=True)
    cfg = dict(config)
    if rootfs_source.parent != bundle:
        cfg["root"] = {"path": str(rootfs_source), "readonly": False}
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle
