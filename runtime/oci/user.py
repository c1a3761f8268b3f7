"""Who a container's process runs as: the user string of the image or the security context,
resolved through the image's own ``/etc/passwd`` and ``/etc/group``.

Terms:

user string
    Docker's ``USER`` syntax: ``name``, ``uid``, ``name:group``, ``uid:gid``, ``uid:group``
    or ``name:gid``. The security context's ``run_as_username`` or ``run_as_user`` replaces
    the image's whole string; its ``run_as_group`` replaces only the group part.
primary group
    The gid given in the user string, else the passwd entry's gid, else 0 (a numeric uid
    with no passwd entry is fine and runs with gid 0, as in containerd).
additional gids
    The primary gid, every group of ``/etc/group`` whose member list names the user (other
    than the user's own same-named group) and the security context's supplemental groups,
    sorted without duplicates (containerd's merge, the CRI's ``Merge`` policy). Under the
    ``Strict`` policy the image's /etc/group is not consulted: only the primary gid and the
    requested groups.
in-root open
    Files are read from the root filesystem one path component at a time, relative to
    directory descriptors and never following a link the kernel would resolve on the host:
    an absolute symlink is resolved against the rootfs (as it will be inside the container),
    and a ``..`` that would climb above the rootfs is refused.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import InvalidArgument

MAX_ID = 2**31 - 1  # runc's limit for uids and gids
_MAX_FILE_BYTES = 16 << 20
_MAX_SYMLINKS = 40  # the kernel's limit (path_resolution(7))


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    """One line of ``/etc/passwd``."""

    name: str
    uid: int
    gid: int
    home: str = ""


@dataclass(frozen=True, slots=True)
class GroupEntry:
    """One line of ``/etc/group``; ``members`` are user names."""

    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    """``process.user`` of an OCI spec."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()

    def to_spec(self) -> dict[str, object]:
        """The ``process.user`` object."""
        out: dict[str, object] = {"uid": self.uid, "gid": self.gid}
        if self.additional_gids:
            out["additionalGids"] = list(self.additional_gids)
        return out


def user_string(
    image_user: str,
    *,
    run_as_user: int | None = None,
    run_as_group: int | None = None,
    run_as_username: str = "",
) -> str:
    """The user string that applies: the security context's user (name before uid) with its
    group, else the image's with ``run_as_group`` replacing its group part; ``""`` when
    nothing is set (root)."""
    if run_as_username:
        user = run_as_username
    elif run_as_user is not None:
        user = str(run_as_user)
    else:
        user = image_user.split(":", 1)[0]
        if run_as_group is None:
            return image_user
    return f"{user}:{run_as_group}" if run_as_group is not None else user


def resolve_user(
    rootfs: Path,
    userstr: str,
    *,
    supplemental_groups: Sequence[int] = (),
    strict_groups: bool = False,
    image: str = "",
) -> ResolvedUser:
    """Resolve ``userstr`` (empty means root) inside ``rootfs``; ``strict_groups``: the
    Strict supplemental-groups policy (no memberships from the image's /etc/group). A name
    missing from the image's files, an id out of range or a malformed string raises
    InvalidArgument naming the user and ``image``."""
    of_image = f" of image {image}" if image else ""
    text = userstr.strip() or "0"
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise InvalidArgument(f"invalid user {userstr!r}{of_image}")
    user_part = parts[0]
    group_part = parts[1] if len(parts) == 2 else None

    passwd = _load_passwd(rootfs)
    uid_value = _as_id(user_part, "uid", userstr)
    entry: PasswdEntry | None
    if uid_value is None:
        entry = next((e for e in passwd if e.name == user_part), None)
        if entry is None:
            raise InvalidArgument(f"user {user_part!r} not found in /etc/passwd{of_image}")
        uid = entry.uid
    else:
        uid = uid_value
        entry = next((e for e in passwd if e.uid == uid), None)

    groups: list[GroupEntry] | None = None
    if group_part is None:
        gid = entry.gid if entry is not None else 0
    else:
        gid_value = _as_id(group_part, "gid", userstr)
        if gid_value is None:
            groups = _load_groups(rootfs)
            found = next((g for g in groups if g.name == group_part), None)
            if found is None:
                raise InvalidArgument(f"group {group_part!r} not found in /etc/group{of_image}")
            gid = found.gid
        else:
            gid = gid_value

    extra: set[int] = {gid, *supplemental_groups}
    if entry is not None and not strict_groups:  # a bare uid has no name to be a member by
        if groups is None:
            groups = _load_groups(rootfs)
        name = entry.name
        extra.update(g.gid for g in groups if g.name != name and name in g.members)
    for g in supplemental_groups:
        if not 0 <= g <= MAX_ID:
            raise InvalidArgument(f"supplemental group {g} out of range")
    return ResolvedUser(uid, gid, tuple(sorted(extra)))


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of a passwd file; malformed, comment and NIS (``+``/``-``) lines are skipped."""
    out = []
    for line in text.splitlines():
        if not line or line[0] in "#+-":
            continue
        f = line.split(":")
        if len(f) < 4:
            continue
        try:
            uid, gid = int(f[2]), int(f[3])
        except ValueError:
            continue
        out.append(PasswdEntry(f[0], uid, gid, f[5] if len(f) > 5 else ""))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of a group file; malformed, comment and NIS lines are skipped."""
    out = []
    for line in text.splitlines():
        if not line or line[0] in "#+-":
            continue
        f = line.split(":")
        if len(f) < 3:
            continue
        try:
            gid = int(f[2])
        except ValueError:
            continue
        members = tuple(m.strip() for m in f[3].split(",") if m.strip()) if len(f) > 3 else ()
        out.append(GroupEntry(f[0], gid, members))
    return out


def read_in_root(root: Path, path: str) -> bytes | None:
    """The content of regular file ``path`` inside ``root`` (see *in-root open*), or None
    when it does not exist or is not a regular file. A symlink climbing out of the root, a
    symlink loop or a file larger than 16 MiB raises InvalidArgument."""
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidArgument(f"cannot open root filesystem {root}: {exc}") from None
    dirs = [root_fd]  # descriptors from the root down to the current directory
    try:
        todo = _components(path)
        links = 0
        while todo:
            name = todo.pop()
            if name == "..":
                if len(dirs) == 1:
                    raise InvalidArgument(f"{path} in {root} leads out of the root filesystem")
                os.close(dirs.pop())
                continue
            try:
                st = os.lstat(name, dir_fd=dirs[-1])
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise InvalidArgument(f"too many symlinks resolving {path} in {root}")
                target = os.readlink(name, dir_fd=dirs[-1])
                if target.startswith("/"):
                    while len(dirs) > 1:
                        os.close(dirs.pop())
                todo.extend(_components(target))
            elif todo:
                if not stat.S_ISDIR(st.st_mode):
                    return None
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                dirs.append(os.open(name, flags, dir_fd=dirs[-1]))
            else:
                if not stat.S_ISREG(st.st_mode):
                    return None
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                with os.fdopen(os.open(name, flags, dir_fd=dirs[-1]), "rb") as f:
                    data = f.read(_MAX_FILE_BYTES + 1)
                if len(data) > _MAX_FILE_BYTES:
                    raise InvalidArgument(f"{path} in {root} is larger than 16 MiB")
                return data
        return None  # the path named a directory (the root itself)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise InvalidArgument(f"cannot read {path} in {root}: {exc}") from None
    finally:
        for fd in dirs:
            os.close(fd)


def _components(path: str) -> list[str]:
    """Path components in reverse, ready to be popped from the end."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]


def _load_passwd(rootfs: Path) -> list[PasswdEntry]:
    data = read_in_root(rootfs, "/etc/passwd")
    return parse_passwd(data.decode("utf-8", "replace")) if data is not None else []


def _load_groups(rootfs: Path) -> list[GroupEntry]:
    data = read_in_root(rootfs, "/etc/group")
    return parse_group(data.decode("utf-8", "replace")) if data is not None else []


def _as_id(text: str, what: str, userstr: str) -> int | None:
    """The number ``text`` names, None when it is a name; out of range raises."""
    if not text.isdigit():
        if text.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid user {userstr!r}: {what} out of range")
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"invalid user {userstr!r}: {what} out of range")
    return value
