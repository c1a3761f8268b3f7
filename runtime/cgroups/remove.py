"""Removing a cgroup from every hierarchy.

A cgroup directory can only be removed once it has no tasks and no child cgroups, so children
go first (deepest first). Missing directories are fine: removal is idempotent.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from runtime.cgroups.mounts import CgroupMounts
from runtime.errors import FailedPrecondition


def remove(mounts: CgroupMounts, cgroup_path: str) -> None:
    """rmdir ``cgroup_path`` and everything below it in every hierarchy. Blocking.

    Raises FailedPrecondition when a directory is still busy (it has tasks)."""
    busy: list[str] = []
    for top in mounts.hierarchy_dirs(cgroup_path):
        busy.extend(_remove_tree(top))
    if busy:
        raise FailedPrecondition(f"cgroup still has tasks: {', '.join(busy)}")


def _remove_tree(top: Path) -> list[str]:
    busy: list[str] = []
    if not top.is_dir():
        return busy
    # Only directories are removable in cgroupfs (the files are virtual), so walk dirs only.
    for dirpath, _dirnames, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno == errno.EBUSY:
                busy.append(dirpath)
            else:
                raise
    return busy
