"""Copy a directory tree exactly: owners, modes (setuid/setgid/sticky), xattrs, hard links within
the tree, devices, fifos, sockets, symlinks and nanosecond timestamps."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

_CHUNK = 1 << 30


def _copy_data(src: str, dst: str) -> None:
    with open(src, "rb") as fin:
        fd = os.open(
            dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with open(fd, "wb") as fout:
            try:
                # In-kernel copy; shares extents on filesystems with reflinks.
                while os.copy_file_range(fin.fileno(), fout.fileno(), _CHUNK):
                    pass
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                fout.seek(0)
                fout.truncate()
                fin.seek(0)
                shutil.copyfileobj(fin, fout, 1 << 20)


def copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    """Apply ``src``'s owner, mode, xattrs and times (``st`` is its lstat) to ``dst``."""
    is_link = stat.S_ISLNK(st.st_mode)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not is_link:  # chmod after chown: chown clears setuid/setgid
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        names = []
    for name in names:
        value = os.getxattr(src, name, follow_symlinks=False)
        try:
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError as exc:
            # An LSM label the host refuses is not worth failing a copy for.
            if not (name.startswith("security.") and exc.errno in (errno.EPERM, errno.ENOTSUP)):
                raise
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the contents of directory ``src`` into the existing empty directory ``dst``, and
    ``src``'s own metadata onto ``dst``."""
    links: dict[tuple[int, int], str] = {}
    directories: list[tuple[str, str, os.stat_result]] = []
    stack = [(str(src), str(dst))]
    while stack:
        sdir, ddir = stack.pop()
        with os.scandir(sdir) as it:
            entries = list(it)
        for entry in entries:
            s = entry.path
            d = os.path.join(ddir, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)
                stack.append((s, d))
                directories.append((s, d, st))
                continue
            if st.st_nlink > 1:
                ident = (st.st_dev, st.st_ino)
                first = links.get(ident)
                if first is not None:
                    os.link(first, d, follow_symlinks=False)
                    continue
                links[ident] = d
            if stat.S_ISREG(mode):
                _copy_data(s, d)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
            else:  # char/block devices, fifos, sockets
                os.mknod(d, mode, st.st_rdev)
            copy_metadata(s, d, st)
    # Directories last and deepest first: adding children changes a directory's mtime.
    for s, d, st in reversed(directories):
        copy_metadata(s, d, st)
    with contextlib.suppress(FileNotFoundError):
        copy_metadata(str(src), str(dst), os.lstat(src))
