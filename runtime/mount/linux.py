"""The one place pinnace calls mount(2) and umount2(2) (through ctypes on libc).

Long overlay option strings: the kernel takes at most one page (4096 bytes) of mount data, so
an image with many layers can produce a ``lowerdir=`` that does not fit. We then rewrite every
overlay directory relative to their common parent and mount from a thread that first
``unshare(CLONE_FS)`` and then ``chdir``s there: the working directory change is private to that
throwaway thread, so other threads of the daemon never see it. If even the relative form does not
fit a page, mounting fails with InvalidArgument naming the length.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from runtime.errors import InvalidArgument
from runtime.mount.types import (
    MS_BIND,
    MS_REC,
    MS_REMOUNT,
    Mount,
    MountOptions,
    parse_options,
)

MNT_FORCE = 0x1
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8
_CLONE_FS = 0x200
_PAGE = os.sysconf("SC_PAGE_SIZE")
_OVERLAY_DIR_KEYS = ("lowerdir", "upperdir", "workdir")

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.umount2.restype = ctypes.c_int
_libc.unshare.argtypes = (ctypes.c_int,)
_libc.unshare.restype = ctypes.c_int


def _b(value: str | Path | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _sys_mount(
    source: str | None, target: Path, fstype: str | None, flags: int, data: str | None
) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or ''} {source or ''} on {target}: {os.strerror(err)}")


def _in_private_cwd(directory: str, fn: Callable[[], None]) -> None:
    """Run ``fn`` on a new thread whose working directory is ``directory`` and private."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if _libc.unshare(_CLONE_FS) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_FS): {os.strerror(err)}")
            os.chdir(directory)
            fn()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="pinnace-mount-cwd")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _relative_overlay_data(data: str) -> tuple[str, str]:
    """Rewrite overlay data with directories relative to their common parent."""
    options = data.split(",")
    paths: list[str] = []
    for option in options:
        key, _, value = option.partition("=")
        if key in _OVERLAY_DIR_KEYS:
            paths.extend(value.split(":"))
    parent = os.path.commonpath(paths) if paths else "/"
    if parent in paths:  # a directory cannot be relative to itself as ""
        parent = os.path.dirname(parent)
    rewritten = []
    for option in options:
        key, _, value = option.partition("=")
        if key in _OVERLAY_DIR_KEYS:
            value = ":".join(os.path.relpath(p, parent) for p in value.split(":"))
            option = f"{key}={value}"
        rewritten.append(option)
    return parent, ",".join(rewritten)


def _mount_overlay(m: Mount, opts: MountOptions, target: Path) -> None:
    if len(opts.data) < _PAGE:
        _sys_mount(m.source, target, m.type, opts.flags, opts.data)
        return
    parent, data = _relative_overlay_data(opts.data)
    if len(data) >= _PAGE:
        raise InvalidArgument(
            f"overlay options are {len(data)} bytes even with paths relative to {parent}; "
            f"the kernel accepts at most {_PAGE - 1}: too many layers"
        )
    absolute_target = Path(os.path.abspath(target))
    _in_private_cwd(parent, lambda: _sys_mount(m.source, absolute_target, m.type, opts.flags, data))


def mount_one(m: Mount, target: Path) -> None:
    """Mount ``m`` on ``target``."""
    opts = parse_options(m.options)
    if m.type == "bind" or opts.is_bind:
        flags = opts.flags | MS_BIND
        _sys_mount(m.source, target, "none", flags & (MS_BIND | MS_REC), opts.data or None)
        # A bind ignores every other flag on creation; they take effect on a remount.
        extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
        if extra:
            try:
                _sys_mount(None, target, None, MS_REMOUNT | MS_BIND | extra, None)
            except BaseException:
                unmount(target, detach=True, missing_ok=True)
                raise
    elif m.type == "overlay":
        _mount_overlay(m, opts, target)
    else:
        _sys_mount(m.source, target, m.type, opts.flags, opts.data or None)
    if opts.propagation:
        try:
            _sys_mount(None, target, None, opts.propagation, None)
        except BaseException:
            unmount(target, detach=True, missing_ok=True)
            raise


def mount_all(mounts: Sequence[Mount], target: Path) -> None:
    """Mount each of ``mounts`` on ``target`` in order (later ones stack on earlier ones).

    If one fails, those already mounted are unmounted again before the error propagates.
    """
    done = 0
    try:
        for m in mounts:
            mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target, detach=True, missing_ok=True)
        raise


def unmount(target: Path, *, detach: bool = False, missing_ok: bool = False) -> bool:
    """Unmount the top mount on ``target``. Returns False if nothing was mounted there and
    ``missing_ok`` is set (otherwise that is an OSError, EINVAL or ENOENT)."""
    flags = UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0)
    if _libc.umount2(_b(target), flags) == 0:
        return True
    err = ctypes.get_errno()
    if missing_ok and err in (errno.EINVAL, errno.ENOENT):
        return False
    raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def unmount_all(target: Path, *, detach: bool = False) -> int:
    """Unmount everything stacked on ``target``; returns how many mounts were removed."""
    count = 0
    # Bounded so a kernel that keeps reporting success can never spin us forever.
    for _ in range(1024):
        if not unmount(target, detach=detach, missing_ok=True):
            return count
        count += 1
    raise OSError(errno.EBUSY, f"unmount {target}: still mounted after {count} unmounts")


def bind(
    source: Path,
    target: Path,
    *,
    readonly: bool = False,
    recursive: bool = True,
    propagation: str | None = None,
) -> None:
    """Bind-mount ``source`` on ``target`` (``rbind`` unless ``recursive=False``)."""
    options = ["rbind" if recursive else "bind", "ro" if readonly else "rw"]
    if propagation:
        options.append(propagation)
    mount_one(Mount("bind", str(source), tuple(options)), target)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mountpoints() -> list[str]:
    """Every mount point of this process's mount namespace, in mount order."""
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f if line.strip()]


def is_mountpoint(path: Path) -> bool:
    """Whether something is mounted exactly at ``path`` (bind mounts of one filesystem too)."""
    real = os.path.realpath(path)
    return real in mountpoints()


def set_propagation(target: Path, option: str) -> None:
    """Change the propagation of the mount at ``target`` (``rslave``, ``rprivate``, ...)."""
    propagation = parse_options((option,)).propagation
    if not propagation:
        raise ValueError(f"{option!r} is not a propagation option")
    _sys_mount(None, target, None, propagation, None)


def unmount_below(directory: Path) -> int:
    """Detach every mount at or below ``directory`` (deepest first); returns how many. Run
    before removing a directory tree: ``rmtree`` does not stop at mount points, and through a
    read-write bind (an id-mapped volume a crash left attached) it would delete the host's
    files."""
    root = os.path.realpath(directory)
    prefix = root.rstrip("/") + "/"
    below = [p for p in mountpoints() if p == root or p.startswith(prefix)]
    count = 0
    for point in sorted(set(below), key=lambda p: p.count("/"), reverse=True):
        count += unmount_all(Path(point), detach=True)
    return count
