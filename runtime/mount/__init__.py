"""Mounts as data (:class:`Mount`) and the only code that performs them (mount(2)/umount2(2))."""

from runtime.mount.linux import (
    bind,
    is_mountpoint,
    mount_all,
    mount_one,
    mountpoints,
    set_propagation,
    unmount,
    unmount_all,
    unmount_below,
)
from runtime.mount.types import Mount, MountOptions, parse_options

__all__ = [
    "Mount",
    "MountOptions",
    "bind",
    "is_mountpoint",
    "mount_all",
    "mount_one",
    "mountpoints",
    "parse_options",
    "set_propagation",
    "unmount",
    "unmount_all",
    "unmount_below",
]
