"""Host devices made available in a container: ``linux.devices`` entries (runc creates the
node) and the device cgroup rules that let the container use them.

Terms:

device entry
    ``{path, type, major, minor, fileMode, uid, gid}`` read by stat(2) from a host device
    node; ``path`` is where it appears in the container.
permissions
    The CRI's access string, some of ``r`` (read), ``w`` (write) and ``m`` (mknod).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.errors import InvalidArgument
from runtime.model.pods import Device

# Subdirectories of /dev that hold no device a privileged container should get (containerd).
_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def device_entry(host_path: Path, container_path: str) -> dict[str, Any] | None:
    """The device entry for a char or block device node (symlinks followed), None when the
    path is not one. A missing path raises FileNotFoundError."""
    st = os.stat(host_path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {
        "path": container_path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def config_devices(devices: Iterable[Device]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Device entries and allow rules for the CRI's devices. A host path that is a directory
    contributes every device below it. A missing host device, a host path that is no device,
    a relative path or bad permissions raise InvalidArgument naming the device."""
    entries: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for dev in devices:
        access = _check_permissions(dev)
        if not dev.host_path.startswith("/") or not dev.container_path.startswith("/"):
            raise InvalidArgument(
                f"device {dev.host_path!r} → {dev.container_path!r}: paths must be absolute"
            )
        host = Path(dev.host_path)
        try:
            if host.is_dir():
                found = _walk(host, PurePosixPath(dev.container_path))
            else:
                entry = device_entry(host, dev.container_path)
                if entry is None:
                    raise InvalidArgument(f"device {dev.host_path} is not a device node")
                found = [entry]
        except FileNotFoundError:
            raise InvalidArgument(f"device {dev.host_path} does not exist on the host") from None
        except OSError as exc:
            raise InvalidArgument(f"device {dev.host_path}: {exc}") from None
        for entry in found:
            entries.append(entry)
            rules.append(
                {
                    "allow": True,
                    "type": entry["type"],
                    "major": entry["major"],
                    "minor": entry["minor"],
                    "access": access,
                }
            )
    return entries, rules


def host_devices(root: Path = Path("/dev")) -> list[dict[str, Any]]:
    """Every device node under ``root`` (a privileged container's devices), at the same
    paths, skipping /dev/pts, /dev/shm, /dev/mqueue, /dev/console and vanished nodes."""
    return _walk(root, PurePosixPath(str(root)), skip_console=True)


def _walk(
    host_dir: Path, container_dir: PurePosixPath, *, skip_console: bool = False
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in sorted(os.scandir(host_dir), key=lambda e: e.name):
        target = str(container_dir / entry.name)
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIP_DIRS:
                out.extend(_walk(Path(entry.path), PurePosixPath(target)))
            continue
        if entry.is_symlink() or (skip_console and entry.name == "console"):
            continue
        try:
            dev = device_entry(Path(entry.path), target)
        except FileNotFoundError:
            continue
        if dev is not None:
            out.append(dev)
    return out


def _check_permissions(dev: Device) -> str:
    perms = dev.permissions or "rwm"
    if set(perms) - set("rwm") or len(set(perms)) != len(perms):
        raise InvalidArgument(
            f"device {dev.host_path}: permissions {dev.permissions!r} must be some of 'rwm'"
        )
    return perms
