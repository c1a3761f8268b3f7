"""Open files of a container's processes and names of block devices, from ``/proc`` and
``/sys`` (what cAdvisor's ``container_file_descriptors``, ``container_sockets`` and the
``device`` label of its block I/O metrics show). Blocking readers of small files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """File descriptors open in a set of processes, and how many of them are sockets."""

    descriptors: int = 0
    sockets: int = 0


def open_files(pids: Iterable[int], *, proc: Path = Path("/proc")) -> OpenFiles:
    """Count the descriptors of ``pids`` (a process that exits meanwhile counts for none)."""
    descriptors = sockets = 0
    for pid in pids:
        fd_dir = proc / str(pid) / "fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(fd_dir / name)
            except OSError:
                continue
            descriptors += 1
            if target.startswith("socket:"):
                sockets += 1
    return OpenFiles(descriptors=descriptors, sockets=sockets)


def parse_uevent_devname(text: str) -> str:
    """``DEVNAME=sda`` of a ``/sys/dev/block/<maj>:<min>/uevent`` text, or ""."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "DEVNAME":
            return value.strip()
    return ""


def block_device_name(major: int, minor: int, *, sys: Path = Path("/sys")) -> str:
    """``/dev/<name>`` of a block device, or ``<major>:<minor>`` when /sys does not say."""
    try:
        name = parse_uevent_devname(
            (sys / "dev" / "block" / f"{major}:{minor}" / "uevent").read_text()
        )
    except OSError:
        name = ""
    return f"/dev/{name}" if name else f"{major}:{minor}"
