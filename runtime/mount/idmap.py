"""Id-mapped mounts for pods in their own user namespace (Linux ≥ 5.12 new mount API).

Terms:

id-mapped clone
    ``open_tree(dir, OPEN_TREE_CLONE)`` makes a detached copy of the mount at ``dir``;
    ``mount_setattr(MOUNT_ATTR_IDMAP, userns_fd)`` makes files owned by host id ``h`` appear
    owned by ``h`` shifted through the user namespace's mapping (host 0 → the mapped root);
    ``move_mount`` attaches it at a scratch directory.
id-mapped overlay
    An overlay whose lower directories are such clones (the kernel refuses to id-map an
    overlay mount itself, but accepts id-mapped layers below one). Once the overlay is
    mounted it holds its own references to the layers, so the clones are lazily unmounted
    and their scratch directories removed at once: nothing is left to leak (containerd's
    temporary id-mapped mounts are a known leak). The upper and work directories are plain
    directories owned by the mapped root, so a container's root owns what it writes.

Python 3.11 has no wrappers for these syscalls; they go through ``syscall(2)`` via ctypes
(numbers are the same on every architecture since 5.x: the new mount API was added to the
generic table).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from runtime import faults
from runtime.mount.linux import mount_all, unmount
from runtime.mount.types import Mount

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 0x1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x00000001
_MOUNT_ATTR_IDMAP = 0x00100000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def idmapped_clone(
    source: Path, target: Path, userns: Path, *, read_only: bool = True, recursive: bool = True
) -> None:
    """Attach at ``target`` (an existing directory, or file for a file) an id-mapped clone of
    the mount tree at ``source`` (with the mounts below it, as ``rbind``), mapped through the
    user namespace whose nsfs file is ``userns``. Read-only by default: a lower layer needs
    no more, and should a crash leave a clone attached, a later ``rmtree`` of its directory
    cannot reach through it into the image's layer. A read-write clone (a volume) must be
    unmounted before anything removes the directory it is attached in
    (``runtime.mount.linux.unmount_below``). ``recursive=False``: only the top mount is
    id-mapped (and made read-only); the mounts below it stay as they are, which is what runc's
    ``idmap`` (not ``ridmap``) does for the mounts containerd hands it."""
    tree = _libc.syscall(
        _SYS_OPEN_TREE,
        ctypes.c_int(_AT_FDCWD),
        os.fsencode(source),
        ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE),
    )
    if tree < 0:
        raise _fail(f"open_tree {source}")
    try:
        ns_fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            flags = _MOUNT_ATTR_IDMAP | (_MOUNT_ATTR_RDONLY if read_only else 0)
            attr = _MountAttr(attr_set=flags, userns_fd=ns_fd)
            if (
                _libc.syscall(
                    _SYS_MOUNT_SETATTR,
                    ctypes.c_int(tree),
                    b"",
                    ctypes.c_uint(_AT_EMPTY_PATH | (_AT_RECURSIVE if recursive else 0)),
                    ctypes.byref(attr),
                    ctypes.c_size_t(ctypes.sizeof(attr)),
                )
                != 0
            ):
                raise _fail(f"mount_setattr(MOUNT_ATTR_IDMAP) on {source}")
        finally:
            os.close(ns_fd)
        if (
            _libc.syscall(
                _SYS_MOVE_MOUNT,
                ctypes.c_int(tree),
                b"",
                ctypes.c_int(_AT_FDCWD),
                os.fsencode(target),
                ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
            )
            != 0
        ):
            raise _fail(f"move_mount to {target}")
    finally:
        os.close(tree)


def _overlay_dirs(m: Mount) -> tuple[list[str], list[str]]:
    """The overlay's lower directories and its other options."""
    lower: list[str] = []
    rest: list[str] = []
    for option in m.options:
        key, _, value = option.partition("=")
        if key == "lowerdir":
            lower.extend(value.split(":"))
        else:
            rest.append(option)
    return lower, rest


def mount_idmapped_overlay(m: Mount, target: Path, *, userns: Path, root: tuple[int, int]) -> None:
    """Mount the overlay ``m`` at ``target`` with every lower directory id-mapped through the
    user namespace at ``userns``; the upper and work directories (if any) are given to
    ``root`` (the host uid and gid of the namespace's root). The scratch mounts are gone when
    this returns, whether it succeeded or not."""
    if m.type != "overlay":
        raise ValueError(f"an id-mapped root file system needs an overlay, not {m.type!r}")
    lower, rest = _overlay_dirs(m)
    if not lower:
        raise ValueError("overlay without lower directories")
    for option in rest:
        key, _, value = option.partition("=")
        if key in ("upperdir", "workdir"):
            os.chown(value, *root)
    scratch = Path(tempfile.mkdtemp(prefix=".idmap-", dir=target.parent))
    attached: list[Path] = []
    try:
        for i, layer in enumerate(lower):
            point = scratch / str(i)
            point.mkdir()
            idmapped_clone(Path(layer), point, userns)
            attached.append(point)
        faults.point("rootfs.mount.layers-idmapped")
        lowerdir = "lowerdir=" + ":".join(str(p) for p in attached)
        mount_all([Mount("overlay", "overlay", (*rest, lowerdir))], target)
    finally:
        for point in attached:
            with contextlib.suppress(OSError):
                unmount(point, detach=True, missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)


def supported(root: Path) -> tuple[bool, str]:
    """Whether directories under ``root`` can be id-mapped (file system and kernel); (False,
    why) if not. Needs a user namespace to map through: uses this process's own (an id-mapped
    mount through the initial namespace is refused), so it makes a short-lived one with
    ``unshare`` in a child and drops it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".idmap-probe-", dir=root))
    except OSError as exc:
        return False, f"cannot create a probe directory under {root}: {exc}"
    child: subprocess.Popen[bytes] | None = None
    try:
        (probe / "src").mkdir()
        (probe / "dst").mkdir()
        child = subprocess.Popen(
            ["unshare", "--user", "--", "sh", "-c", "echo ready; read _"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert child.stdout is not None
        if child.stdout.readline() != b"ready\n":
            return False, "unshare --user failed: no user namespaces"
        Path(f"/proc/{child.pid}/uid_map").write_text("0 100000 65536\n")
        Path(f"/proc/{child.pid}/gid_map").write_text("0 100000 65536\n")
        try:
            idmapped_clone(probe / "src", probe / "dst", Path(f"/proc/{child.pid}/ns/user"))
        except OSError as exc:
            return False, f"id-mapped mounts under {root} are not supported: {exc}"
        unmount(probe / "dst", detach=True)
        return True, ""
    except OSError as exc:
        return False, f"cannot probe id-mapped mounts: {exc}"
    finally:
        if child is not None:
            with contextlib.suppress(OSError):
                assert child.stdin is not None
                child.stdin.close()
            child.wait()
        shutil.rmtree(probe, ignore_errors=True)
