"""Layer tarballs for test images, built entry by entry, reproducibly.

Terms:
  layer tar     an uncompressed tar whose sha256 is the layer's ``diff_id``.
  whiteout      ``.wh.<name>`` in a layer deletes ``<name>`` from the layers below.
  opaque dir    ``<dir>/.wh..wh..opq`` hides everything the layers below put in ``<dir>``.

Every entry gets the same mtime and owner unless told otherwise, and compression uses fixed
headers (gzip mtime 0), so the same inputs always give the same digests.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from typing import Literal

import zstandard

Compression = Literal["gzip", "zstd", "none"]

MTIME = 1_700_000_000
BUSYBOX = "/bin/busybox"

# Applets linked in the base layer; all exist in Debian's busybox-static 1.35.
APPLETS = (
    "[", "ash", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df",
    "dirname", "du", "echo", "env", "expr", "false", "find", "grep", "head", "hostname", "id",
    "ip", "kill", "ln", "ls", "mkdir", "mkfifo", "mknod", "mount", "mv", "nc", "nproc",
    "nslookup", "ping", "printf", "ps", "pwd", "readlink", "realpath", "rm", "rmdir", "sed",
    "seq", "sh", "sleep", "sort", "stat", "sync", "tail", "tee", "test", "timeout", "top",
    "touch", "tr", "true", "umount", "uname", "uniq", "usleep", "wc", "wget", "which", "whoami",
    "xargs", "yes",
)  # fmt: skip

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"


class TarBuilder:
    """Append entries to an in-memory PAX tar; :meth:`build` returns the bytes.

    Paths are given absolute (``/etc/passwd``) and stored relative (``etc/passwd``), as image
    layers are.
    """

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, path: str, kind: bytes, *, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = MTIME
        return info

    def directory(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> TarBuilder:
        self._tar.addfile(self._info(path, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid))
        return self

    def file(
        self,
        path: str,
        data: bytes | str,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: dict[str, str] | None = None,
    ) -> TarBuilder:
        raw = data.encode() if isinstance(data, str) else data
        info = self._info(path, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid)
        info.size = len(raw)
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        self._tar.addfile(info, io.BytesIO(raw))
        return self

    def symlink(self, path: str, target: str) -> TarBuilder:
        info = self._info(path, tarfile.SYMTYPE, mode=0o777, uid=0, gid=0)
        info.linkname = target
        self._tar.addfile(info)
        return self

    def hardlink(self, path: str, target: str) -> TarBuilder:
        """A hard link to ``target``, an earlier entry of this same tar."""
        info = self._info(path, tarfile.LNKTYPE, mode=0o644, uid=0, gid=0)
        info.linkname = target.lstrip("/")
        self._tar.addfile(info)
        return self

    def char_device(self, path: str, major: int, minor: int, *, mode: int = 0o666) -> TarBuilder:
        info = self._info(path, tarfile.CHRTYPE, mode=mode, uid=0, gid=0)
        info.devmajor, info.devminor = major, minor
        self._tar.addfile(info)
        return self

    def whiteout(self, path: str) -> TarBuilder:
        """Delete ``path`` from the layers below."""
        parent, _, name = path.rstrip("/").rpartition("/")
        return self.file(f"{parent}/.wh.{name}", b"", mode=0o600)

    def opaque(self, directory: str) -> TarBuilder:
        """Hide the lower layers' contents of ``directory`` (which this layer should also list)."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", b"", mode=0o600)

    def build(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def compress(tar: bytes, compression: Compression) -> bytes:
    """Compress a layer tar reproducibly."""
    if compression == "gzip":
        return gzip.compress(tar, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(tar)
    if compression == "none":
        return tar
    raise ValueError(f"unknown compression {compression!r}")


@dataclass(frozen=True, slots=True)
class FixturePaths:
    """Where :func:`fixture_layers` puts each special file, and what a test should find there.

    After both layers are applied: ``removed`` is gone; ``opaque_dir`` holds only ``opaque_new``;
    ``hardlink`` and ``hardlink_target`` are one inode; ``symlink`` points at
    ``symlink_target``; ``device`` is a char device 1:3; ``setuid`` has mode 04755; ``xattr_file``
    carries ``xattr_name=xattr_value``; ``owned`` belongs to 1000:1000 with mode 0600.
    """

    removed: str = "/fixtures/remove-me"
    kept: str = "/fixtures/keep-me"
    opaque_dir: str = "/fixtures/opaque"
    opaque_old: tuple[str, ...] = ("/fixtures/opaque/old-a", "/fixtures/opaque/old-b")
    opaque_new: str = "/fixtures/opaque/new"
    hardlink_target: str = "/fixtures/hardlink-target"
    hardlink: str = "/fixtures/hardlink"
    symlink: str = "/fixtures/symlink"
    symlink_target: str = "../bin/busybox"
    device: str = "/fixtures/null"
    setuid: str = "/fixtures/setuid"
    xattr_file: str = "/fixtures/xattr-file"
    xattr_name: str = "user.pinnace.test"
    xattr_value: str = "hello"
    owned: str = "/fixtures/owned"


FIXTURES = FixturePaths()


def busybox_base_layer(*, busybox: bytes, arch_marker: str) -> bytes:
    """The root filesystem: busybox and its applet symlinks, users, groups and the usual dirs.

    ``/etc/image-arch`` contains ``arch_marker`` so a test can tell which platform was pulled.
    """
    t = TarBuilder()
    for d in ("/bin", "/dev", "/etc", "/proc", "/sys", "/run", "/usr", "/usr/bin", "/var"):
        t.directory(d)
    t.directory("/root", mode=0o700)
    t.directory("/tmp", mode=0o1777)
    t.directory("/var/tmp", mode=0o1777)
    t.directory("/home")
    t.directory("/home/app", uid=1000, gid=1000)
    t.file(BUSYBOX, busybox, mode=0o755)
    for applet in APPLETS:
        t.symlink(f"/bin/{applet}", "busybox")
    t.file("/etc/passwd", PASSWD)
    t.file("/etc/group", GROUP)
    t.file("/etc/image-arch", arch_marker + "\n")
    t.file("/etc/motd", "pinnace test image\n")
    return t.build()


def fixture_layers() -> tuple[bytes, bytes]:
    """Two layers exercising unpack edge cases; see :class:`FixturePaths` for the outcome."""
    f = FIXTURES
    lower = TarBuilder().directory("/fixtures").directory(f.opaque_dir)
    lower.file(f.removed, "to be whited out\n").file(f.kept, "kept\n")
    for old in f.opaque_old:
        lower.file(old, "hidden by the opaque marker\n")

    upper = TarBuilder().directory("/fixtures").whiteout(f.removed)
    upper.directory(f.opaque_dir).opaque(f.opaque_dir).file(f.opaque_new, "new\n")
    upper.file(f.hardlink_target, "linked\n").hardlink(f.hardlink, f.hardlink_target)
    upper.symlink(f.symlink, f.symlink_target)
    upper.char_device(f.device, 1, 3)
    upper.file(f.setuid, "#!/bin/sh\nid -u\n", mode=0o4755)
    upper.file(f.xattr_file, "xattr\n", xattrs={f.xattr_name: f.xattr_value})
    upper.file(f.owned, "owned\n", mode=0o600, uid=1000, gid=1000)
    return lower.build(), upper.build()
