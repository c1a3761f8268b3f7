"""Apply a layer (an OCI/docker layer tar, uncompressed) to a directory.

The tar is read as a stream (``tarfile`` mode ``r|``, never seeking), framed as Go's
``archive/tar`` frames it (:mod:`runtime.diff.tarframe`: where a layer may end early, where
it may not), and each entry is applied here, not by ``extractall``: regular files (data
copied straight from the stream in 1 MiB chunks; files of 1 MiB or more past the page cache,
:mod:`runtime.directio`), directories, symlinks, hard links (to entries inside the target),
character and block devices, fifos. Metadata: numeric owner (``lchown``; skipped when not
running as root), mode including setuid/setgid/sticky (set after chown, which clears them),
xattrs from PAX ``SCHILY.xattr.*`` headers, and times (directories' at the very end, since
adding children changes them; symlinks' without following them).

xattrs: ``trusted.overlay.*`` from a layer is dropped (it would let a layer forge overlay
metadata such as redirects); failures to set ``security.*`` with EPERM or ENOTSUP are ignored (an
LSM label the host does not support or allow must not fail a pull); every other failure raises.

Whiteouts (the OCI layer spec):

``.wh.<name>``
    ``<name>`` is deleted. With ``overlay_whiteouts`` the target is an overlay upper directory
    and the deletion is recorded as overlay does, a 0/0 character device ``<name>`` (replacing
    whatever this layer put there); otherwise ``<name>`` is deleted from the target tree.
``.wh..wh..opq``
    the directory holding it is opaque: nothing from lower layers shows through. With
    ``overlay_whiteouts`` that is the xattr ``trusted.overlay.opaque=y``; otherwise every
    child of the directory that this layer did not write is deleted.

Paths are resolved strictly inside the target (see :mod:`runtime.diff.paths`). After the last
entry the rest of the stream is read to its end, so a hashing reader underneath sees every byte
(the end-of-archive blocks and padding) and yields the digest of the whole uncompressed tar.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from runtime.diff.compression import Readable
from runtime.diff.paths import Missing, Tree, normalize
from runtime.diff.tarframe import GoTarFraming
from runtime.directio import DirectAppender
from runtime.errors import InvalidArgument

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
# Regular files this large are written past the page cache (runtime/directio.py): the copy
# into new page-cache pages was the largest CPU cost of unpacking left, and a pull does not
# then push a node's hot pages out for image data most of which is never read. A container's
# first read of such a file comes from the disk; small files stay buffered.
_DIRECT_MIN = 1 << 20
_XATTR_PREFIX = "SCHILY.xattr."
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What an application did: tar entries processed and file bytes written."""

    entries: int
    bytes: int


class _Prefixed:
    """``head`` followed by the rest of ``inner``."""

    def __init__(self, head: bytes, inner: Readable) -> None:
        self._head = head
        self._inner = inner

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                out, self._head = self._head + self._inner.read(-1), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._inner.read(n)


def _ns(member: tarfile.TarInfo, key: str) -> int:
    text = member.pax_headers.get(key)
    if text is not None:
        try:
            return int(Decimal(text) * 1_000_000_000)
        except InvalidOperation:
            pass
    return int(member.mtime) * 1_000_000_000


def apply_layer(tar_stream: Readable, target: Path, *, overlay_whiteouts: bool) -> ApplyStats:
    """Apply the uncompressed layer tar read from ``tar_stream`` to directory ``target``.

    Raises InvalidArgument for a malformed or hostile layer (bad tar, path escapes, a hard link
    to something outside the layer); OSError for failures of the file system itself.
    """
    return _Applier(target, overlay_whiteouts=overlay_whiteouts).run(tar_stream)


class _Applier:
    def __init__(self, target: Path, *, overlay_whiteouts: bool) -> None:
        self._tree = Tree(str(target))
        self._overlay = overlay_whiteouts
        self._as_root = os.geteuid() == 0
        self._entries = 0
        self._bytes = 0
        self._dir_times: list[tuple[str, int, int]] = []
        # Native opaque directories need to know what this layer wrote (real relative paths).
        self._written: set[str] = set()
        self._written_parents: set[str] = set()

    def run(self, layer: Readable) -> ApplyStats:
        stream = GoTarFraming(layer)  # ends the archive where Go's archive/tar would
        head = stream.read(tarfile.BLOCKSIZE)
        if not head:  # an empty blob is an empty layer
            return ApplyStats(0, 0)
        source = _Prefixed(head, stream)
        try:
            tar = tarfile.open(  # type: ignore[call-overload]
                fileobj=source,
                mode="r|",
                bufsize=_CHUNK,
                encoding="utf-8",
                errors="surrogateescape",
            )
        except tarfile.TarError as exc:
            raise InvalidArgument(f"layer is not a valid tar archive: {exc}") from None
        try:
            while True:
                try:
                    member = tar.next()
                except tarfile.TarError as exc:
                    raise InvalidArgument(f"layer is not a valid tar archive: {exc}") from None
                if member is None:
                    break
                tar.members.clear()  # a stream: do not keep every header in memory
                self._entries += 1
                self._apply(tar, member)
        finally:
            tar.close()
        self._fix_directory_times()
        while source.read(_CHUNK):  # the end-of-archive blocks and anything after them
            pass
        return ApplyStats(entries=self._entries, bytes=self._bytes)

    # -- entries ----------------------------------------------------------------------------

    def _apply(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = normalize(m.name)
        if not parts:
            if m.isdir():
                self._metadata(self._tree.root, m)
                self._dir_times.append((self._tree.root, _ns(m, "atime"), _ns(m, "mtime")))
            return
        name = parts[-1]
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts)
            return
        parent = self._tree.directory(parts[:-1], create=True)
        path = os.path.join(parent, name)
        if m.isdir():
            self._directory(path, m)
        elif m.isreg():
            self._replace(path)
            self._regular(tar, path, m)
        elif m.issym():
            self._replace(path)
            os.symlink(m.linkname, path)
            self._metadata(path, m)
        elif m.islnk():
            self._hardlink(path, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            self._replace(path)
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            device = os.makedev(m.devmajor, m.devminor) if kind != stat.S_IFIFO else 0
            os.mknod(path, kind | 0o600, device)
            self._metadata(path, m)
        else:
            return  # an entry type a layer has no business carrying; its data is skipped
        self._written_entry(path)

    def _written_entry(self, path: str) -> None:
        if self._overlay:
            return
        rel = self._tree.relative(path)
        self._written.add(rel)
        parent = os.path.dirname(rel)
        while parent and parent not in self._written_parents:
            self._written_parents.add(parent)
            parent = os.path.dirname(parent)

    def _replace(self, path: str) -> None:
        """Clear ``path`` for a new non-directory entry (a directory there is removed)."""
        try:
            self._tree.remove(path)
        except FileNotFoundError:
            pass

    def _directory(self, path: str, m: tarfile.TarInfo) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            if st is not None:
                self._tree.remove(path, st)
            os.mkdir(path, 0o700)
        self._metadata(path, m)
        self._dir_times.append((path, _ns(m, "atime"), _ns(m, "mtime")))

    def _regular(self, tar: tarfile.TarFile, path: str, m: tarfile.TarInfo) -> None:
        fd = os.open(path, _FILE_FLAGS, 0o600)
        direct: DirectAppender | None = None
        try:
            remaining = m.size
            read: Callable[[int], bytes]
            if m.sparse is not None:
                src = tar.extractfile(m)
                assert src is not None
                read = src.read
            else:
                read = tar.fileobj.read  # type: ignore[union-attr]
                if m.size >= _DIRECT_MIN:
                    direct = DirectAppender(fd)
            write = os.write
            while remaining > 0:
                chunk = read(_CHUNK if remaining > _CHUNK else remaining)
                if not chunk:
                    raise InvalidArgument(f"layer ends inside the data of {m.name!r}")
                remaining -= len(chunk)
                if direct is not None:
                    direct.write(chunk)
                    continue
                written = write(fd, chunk)
                if written != len(chunk):
                    view = memoryview(chunk)[written:]
                    while view:
                        view = view[write(fd, view) :]
            if direct is not None:
                direct.flush()
            self._bytes += m.size
            self._metadata_fd(fd, m)
        finally:
            if direct is not None:
                direct.close()  # closes fd
            else:
                os.close(fd)

    def _hardlink(self, path: str, m: tarfile.TarInfo) -> None:
        link = normalize(m.linkname)
        if not link:
            raise InvalidArgument(f"hard link {m.name!r} points at the layer root")
        try:
            source = os.path.join(self._tree.directory(link[:-1], create=False), link[-1])
            st = os.lstat(source)
        except (Missing, FileNotFoundError):
            raise InvalidArgument(
                f"hard link {m.name!r} points at {m.linkname!r}, which is not in this layer"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"hard link {m.name!r} points at directory {m.linkname!r}")
        if os.path.realpath(source) == os.path.realpath(path):
            return
        self._replace(path)
        os.link(source, path, follow_symlinks=False)

    def _whiteout(self, parts: tuple[str, ...]) -> None:
        name = parts[-1]
        if name == OPAQUE_MARKER:
            directory = self._tree.directory(parts[:-1], create=True)
            if self._overlay:
                os.setxattr(directory, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                self._make_opaque(directory)
            return
        if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, .wh..wh.aufs): meaningless here
        victim = name[len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise InvalidArgument(f"invalid whiteout {'/'.join(parts)!r}")
        try:
            parent = self._tree.directory(parts[:-1], create=self._overlay)
        except Missing:
            return  # nothing to delete below a directory that does not exist
        path = os.path.join(parent, victim)
        self._replace(path)
        if self._overlay:
            os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))

    def _make_opaque(self, directory: str) -> None:
        """Delete everything below ``directory`` that this layer did not write."""
        stack = [directory]
        while stack:
            current = stack.pop()
            with os.scandir(current) as it:
                entries = list(it)
            for entry in entries:
                rel = self._tree.relative(entry.path)
                is_dir = entry.is_dir(follow_symlinks=False)
                if rel in self._written_parents or (rel in self._written and is_dir):
                    stack.append(entry.path)
                elif rel not in self._written:
                    self._tree.remove(entry.path)

    # -- metadata ---------------------------------------------------------------------------

    def _xattrs(self, m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        out = []
        for key, value in m.pax_headers.items():
            if key.startswith(_XATTR_PREFIX):
                name = key[len(_XATTR_PREFIX) :]
                if name.startswith("trusted.overlay."):
                    continue
                out.append((name, value.encode("utf-8", "surrogateescape")))
        return out

    @staticmethod
    def _set_xattr(target: str | int, name: str, value: bytes) -> None:
        try:
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as exc:
            if name.startswith("security.") and exc.errno in (
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
            ):
                return
            raise

    def _metadata_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        if self._as_root:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        if m.pax_headers:
            for name, value in self._xattrs(m):
                self._set_xattr(fd, name, value)
        os.utime(fd, ns=(_ns(m, "atime"), _ns(m, "mtime")))

    def _metadata(self, path: str, m: tarfile.TarInfo) -> None:
        """Owner, mode, xattrs; times too unless ``path`` is a directory (done at the end)."""
        if self._as_root:
            os.chown(path, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)
        if m.pax_headers:
            for name, value in self._xattrs(m):
                self._set_xattr(path, name, value)
        if not m.isdir():
            os.utime(path, ns=(_ns(m, "atime"), _ns(m, "mtime")), follow_symlinks=False)

    def _fix_directory_times(self) -> None:
        for path, atime, mtime in reversed(self._dir_times):
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    os.utime(path, ns=(atime, mtime), follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed later by this same layer
