"""apply_layer into overlay upper directories (whiteout devices, opaque xattrs, devices, owners,
trusted xattrs), checked through a real overlay mount of the snapshotter."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.diff import Compression, HashingReader, apply_layer, decompressing_reader
from runtime.mount import mount_all, unmount_all
from runtime.snapshots import NativeSnapshotter, OverlaySnapshotter

pytestmark = pytest.mark.integration


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object):  # type: ignore[no-untyped-def]
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def build(*entries) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


LOWER = build(
    entry("etc", tarfile.DIRTYPE),
    entry("etc/hosts", data=b"127.0.0.1 localhost\n"),
    entry("etc/gone", data=b"to be deleted"),
    entry("opaque", tarfile.DIRTYPE),
    entry("opaque/old", data=b"hidden later"),
)
UPPER = build(
    entry("etc/.wh.gone"),
    entry("opaque", tarfile.DIRTYPE),
    entry("opaque/.wh..wh..opq"),
    entry("opaque/new", data=b"visible"),
    entry("dev", tarfile.DIRTYPE),
    entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
    entry("dev/loop0", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660, gid=6),
    entry("run/fifo", tarfile.FIFOTYPE, mode=0o600),
    entry("bin", tarfile.DIRTYPE),
    entry("bin/ping", data=b"ELF", uid=0, gid=0, mode=0o4755,
          pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"
                       "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                       "SCHILY.xattr.trusted.note": "t"}),
    entry("home/user/file", data=b"mine", uid=1000, gid=1000, mode=0o640),
)  # fmt: skip


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    t = tmp_path / "mnt"
    t.mkdir()
    yield t
    unmount_all(t, detach=True)


def test_overlay_layers_unpacked_independently(tmp_path: Path, target: Path) -> None:
    sn = OverlaySnapshotter(tmp_path / "sn")
    try:
        sn.prepare("lower-x")
        apply_layer(io.BytesIO(LOWER), sn.layer_dir("lower-x"), overlay_whiteouts=True)
        sn.commit("lower", "lower-x")
        sn.prepare("upper-x")  # no parent
        upper_dir = sn.layer_dir("upper-x")
        apply_layer(io.BytesIO(UPPER), upper_dir, overlay_whiteouts=True)
        wh = os.lstat(upper_dir / "etc/gone")
        assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
        assert os.getxattr(upper_dir / "opaque", "trusted.overlay.opaque") == b"y"
        sn.commit("upper", "upper-x", parent="lower")

        mount_all(sn.view("v", "upper"), target)
        assert sorted(os.listdir(target / "etc")) == ["hosts"]
        assert os.listdir(target / "opaque") == ["new"]
        null = os.lstat(target / "dev/null")
        assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
        assert stat.S_IMODE(null.st_mode) == 0o666
        loop = os.lstat(target / "dev/loop0")
        assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6
        assert stat.S_ISFIFO(os.lstat(target / "run/fifo").st_mode)
        ping = os.lstat(target / "bin/ping")
        assert stat.S_IMODE(ping.st_mode) == 0o4755  # setuid survives the chown
        assert os.getxattr(target / "bin/ping", "security.capability")[:4] == b"\x01\x00\x00\x02"
        assert os.getxattr(target / "bin/ping", "trusted.note") == b"t"
        home = os.lstat(target / "home/user/file")
        assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o640)
    finally:
        unmount_all(target)
        sn.close()


def test_native_layers_applied_in_order(tmp_path: Path) -> None:
    sn = NativeSnapshotter(tmp_path / "sn")
    try:
        sn.prepare("lower-x")
        apply_layer(io.BytesIO(LOWER), sn.layer_dir("lower-x"), overlay_whiteouts=False)
        sn.commit("lower", "lower-x")
        sn.prepare("upper-x", "lower")
        tree = sn.layer_dir("upper-x")
        apply_layer(io.BytesIO(UPPER), tree, overlay_whiteouts=False)
        assert sorted(os.listdir(tree / "etc")) == ["hosts"]
        assert os.listdir(tree / "opaque") == ["new"]
        assert os.stat(tree / "dev/null").st_rdev == os.makedev(1, 3)
    finally:
        sn.close()


def test_gzip_layer_digest_matches_uncompressed_bytes(tmp_path: Path) -> None:
    import hashlib

    blob = gzip.compress(UPPER[: len(UPPER) // 2]) + gzip.compress(UPPER[len(UPPER) // 2 :])
    hashed = HashingReader(decompressing_reader(io.BytesIO(blob), Compression.GZIP))
    apply_layer(hashed, tmp_path, overlay_whiteouts=True)
    assert hashed.digest() == "sha256:" + hashlib.sha256(UPPER).hexdigest()
