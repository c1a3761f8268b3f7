"""apply_layer on tars built in Python: entry types, whiteouts (native mode), traversal attacks."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from runtime.diff import HashingReader, apply_layer
from runtime.errors import InvalidArgument


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    linkname: str = "",
    mtime: int = 1_600_000_000,
    pax: dict[str, str] | None = None,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.linkname = linkname
    info.uid = os.geteuid()
    info.gid = os.getegid()
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    if pax:
        info.pax_headers = dict(pax)
    return info, data


def build(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def apply(tar: bytes, target: Path, *, overlay: bool = False) -> None:
    apply_layer(io.BytesIO(tar), target, overlay_whiteouts=overlay)


def DIR(name: str, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    kw.setdefault("mode", 0o755)
    return entry(name, tarfile.DIRTYPE, **kw)  # type: ignore[arg-type]


def test_basic_entry_types(tmp_path: Path) -> None:
    tar = build(
        DIR("etc", mtime=1_000_000_000),
        entry("etc/passwd", data=b"root:x:0:0\n", mode=0o600),
        entry("bin/tool", data=b"#!/bin/sh\n", mode=0o4755),  # parent not in the tar
        entry("etc/link", tarfile.SYMTYPE, linkname="passwd", mtime=1_200_000_000),
        entry("etc/hard", tarfile.LNKTYPE, linkname="etc/passwd"),
        DIR("tmp", mode=0o1777),
    )
    stats = apply_layer(io.BytesIO(tar), tmp_path, overlay_whiteouts=False)
    assert stats.entries == 6
    assert stats.bytes == len(b"root:x:0:0\n") + len(b"#!/bin/sh\n")
    assert (tmp_path / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert stat.S_IMODE((tmp_path / "etc/passwd").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "bin/tool").stat().st_mode) == 0o4755
    assert stat.S_IMODE((tmp_path / "tmp").stat().st_mode) == 0o1777
    assert os.readlink(tmp_path / "etc/link") == "passwd"
    assert os.lstat(tmp_path / "etc/link").st_mtime == 1_200_000_000
    assert os.stat(tmp_path / "etc/hard").st_ino == os.stat(tmp_path / "etc/passwd").st_ino
    # The directory's mtime survives the children created after it.
    assert (tmp_path / "etc").stat().st_mtime == 1_000_000_000
    assert (tmp_path / "etc/passwd").stat().st_mtime == 1_600_000_000


def test_fractional_pax_mtime(tmp_path: Path) -> None:
    apply(build(entry("f", data=b"x", pax={"mtime": "1600000000.123456789"})), tmp_path)
    assert os.stat(tmp_path / "f").st_mtime_ns == 1_600_000_000_123_456_789


def test_large_file_in_chunks(tmp_path: Path) -> None:
    # large files are written past the page cache: bytes and metadata as for any other file
    data = os.urandom(3 * (1 << 20) + 12345)
    big = entry("big", data=data, mode=0o751, pax={"SCHILY.xattr.user.k": "v"})
    apply(build(big, entry("after", data=b"ok")), tmp_path)
    assert (tmp_path / "big").read_bytes() == data
    st = os.stat(tmp_path / "big")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o751, 1_600_000_000 * 10**9)
    assert os.getxattr(tmp_path / "big", "user.k") == b"v"
    assert (tmp_path / "after").read_bytes() == b"ok"


def test_truncated_large_file_data(tmp_path: Path) -> None:
    tar = build(entry("f", data=os.urandom(2 * (1 << 20))))
    with pytest.raises(InvalidArgument, match="ends inside the data"):
        apply(tar[: (1 << 20) + 4096], tmp_path)


def test_user_xattr(tmp_path: Path) -> None:
    pax = {"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.trusted.overlay.redirect": "/x"}
    apply(build(entry("f", data=b"x", pax=pax)), tmp_path)
    assert os.getxattr(tmp_path / "f", "user.note") == b"hello"
    assert "trusted.overlay.redirect" not in os.listxattr(tmp_path / "f")


def test_whiteout_deletes_in_native_mode(tmp_path: Path) -> None:
    apply(
        build(DIR("d"), entry("d/a", data=b"a"), DIR("d/sub"), entry("d/sub/x", data=b"x")),
        tmp_path,
    )
    apply(build(entry("d/.wh.a"), entry("d/.wh.sub"), entry("nowhere/.wh.z")), tmp_path)
    assert sorted(os.listdir(tmp_path / "d")) == []
    assert not (tmp_path / "nowhere").exists()


def test_opaque_directory_in_native_mode(tmp_path: Path) -> None:
    apply(
        build(DIR("d"), entry("d/old", data=b"1"), DIR("d/keep"), entry("d/keep/old", data=b"2")),
        tmp_path,
    )
    apply(
        build(
            DIR("d"),
            entry("d/keep/new", data=b"3"),  # written before the marker: survives
            entry("d/.wh..wh..opq"),
            entry("d/later", data=b"4"),
        ),
        tmp_path,
    )
    assert sorted(os.listdir(tmp_path / "d")) == ["keep", "later"]
    assert os.listdir(tmp_path / "d/keep") == ["new"]


def test_file_replaces_directory_and_directory_replaces_file(tmp_path: Path) -> None:
    apply(build(DIR("a"), entry("a/child", data=b"c"), entry("b", data=b"file")), tmp_path)
    apply(build(entry("a", data=b"now a file"), DIR("b"), entry("b/inner", data=b"i")), tmp_path)
    assert (tmp_path / "a").read_bytes() == b"now a file"
    assert (tmp_path / "b/inner").read_bytes() == b"i"


def test_existing_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").symlink_to(outside / "victim")
    apply(build(entry("f", data=b"mine")), root)
    assert (root / "f").read_bytes() == b"mine" and not (root / "f").is_symlink()
    assert not (outside / "victim").exists()


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/etc/escape"])
def test_traversal_names_are_rejected(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(InvalidArgument):
        apply(build(entry(name, data=b"x")), root)
    assert not (tmp_path / "escape").exists()


def test_symlink_then_write_through_symlink_stays_inside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    tar = build(
        entry("abs", tarfile.SYMTYPE, linkname=str(outside)),
        entry("abs/pwned", data=b"x"),
        entry("rel", tarfile.SYMTYPE, linkname="../../outside"),
        entry("rel/pwned2", data=b"y"),
    )
    apply(tar, root)
    assert os.listdir(outside) == []
    # Followed as if root were "/": the writes land inside the root.
    assert (root / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"
    assert (root / "outside/pwned2").read_bytes() == b"y"


def test_symlink_loop_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="symbolic links"):
        apply(build(entry("loop", tarfile.SYMTYPE, linkname="loop"), entry("loop/x")), tmp_path)


def test_hardlink_outside_layer_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_text("s")
    for target in ("../secret", "missing"):
        with pytest.raises(InvalidArgument):
            apply(build(entry("h", tarfile.LNKTYPE, linkname=target)), root)


def test_hardlink_through_symlink_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    root = tmp_path / "root"
    root.mkdir()
    tar = build(
        entry("up", tarfile.SYMTYPE, linkname=".."),
        entry("h", tarfile.LNKTYPE, linkname="up/secret"),
    )
    with pytest.raises(InvalidArgument):
        apply(tar, root)


def test_empty_stream_and_empty_tar(tmp_path: Path) -> None:
    assert apply_layer(io.BytesIO(b""), tmp_path, overlay_whiteouts=False).entries == 0
    assert apply_layer(io.BytesIO(build()), tmp_path, overlay_whiteouts=False).entries == 0


def test_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        apply(b"this is not a tar archive at all" * 40, tmp_path)


def test_truncated_file_data(tmp_path: Path) -> None:
    tar = build(entry("f", data=b"x" * 5000))
    with pytest.raises(InvalidArgument):
        apply(tar[:2048], tmp_path)


def test_stream_is_drained_so_digest_covers_everything(tmp_path: Path) -> None:
    tar = build(entry("f", data=b"hello")) + b"\0" * 4096  # extra padding after the end
    hashed = HashingReader(io.BytesIO(tar))
    apply_layer(hashed, tmp_path, overlay_whiteouts=False)
    assert hashed.count == len(tar)
    assert hashed.digest() == "sha256:" + hashlib.sha256(tar).hexdigest()
