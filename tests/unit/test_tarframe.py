"""Layer tar streams end where Go's archive/tar lets them end: layers built byte by byte,
cut at every kind of place, applied with apply_layer."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from runtime.diff import HashingReader, apply_layer
from runtime.diff.tarframe import GoTarFraming
from runtime.errors import InvalidArgument
from tests.support.rawtar import BLOCK, RawTar, header, pax_records


def two_files() -> RawTar:
    return RawTar().directory("d/").file("d/a", b"hello\n").file("d/b", b"x" * 700)


def apply(data: bytes, target: Path) -> int:
    return apply_layer(io.BytesIO(data), target, overlay_whiteouts=False).entries


def cut_points(tar: RawTar) -> dict[str, int]:
    last = tar.parts[-1]
    return {
        "end of the last member's data": last.data_end,
        "inside its padding": last.data_end + 17,
        "at the block boundary": last.end,
        "after one zero block": last.end + BLOCK,
        "after both zero blocks": last.end + 2 * BLOCK,
    }


@pytest.mark.parametrize("where", list(cut_points(two_files())))
def test_normal_ends(where: str, tmp_path: Path) -> None:
    tar = two_files().end(2)
    data = tar.build()[: cut_points(tar)[where]]
    hashed = HashingReader(io.BytesIO(data))
    assert apply_layer(hashed, tmp_path, overlay_whiteouts=False).entries == 3
    assert (tmp_path / "d" / "a").read_bytes() == b"hello\n"
    assert (tmp_path / "d" / "b").read_bytes() == b"x" * 700
    # the digest is of the layer's own bytes, not of what completed the archive
    assert hashed.digest() == "sha256:" + hashlib.sha256(data).hexdigest()


def test_last_member_with_data_filling_its_blocks(tmp_path: Path) -> None:
    tar = RawTar().file("full", b"y" * 1024)  # no padding: data ends at a block boundary
    assert apply(tar.build(), tmp_path) == 1
    assert (tmp_path / "full").read_bytes() == b"y" * 1024


def test_empty_layers(tmp_path: Path) -> None:
    assert apply(b"", tmp_path) == 0
    assert apply(bytes(BLOCK), tmp_path) == 0
    assert apply(bytes(BLOCK * 20), tmp_path) == 0  # the record padding tar writers add


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda t: t.parts[2].data + 100, r"inside the data of 'd/b' \(600 bytes missing\)"),
        (lambda t: t.parts[2].data, r"inside the data of 'd/b'"),
        (lambda t: t.parts[2].header + 100, r"inside a tar header \(at byte 1636\)"),
        (lambda t: t.parts[2].end + BLOCK + 1, r"inside a tar header"),
        (lambda t: t.parts[2].end + 3, r"inside a tar header"),
    ],
    ids=["inside data", "data missing", "inside a header", "inside the 2nd zero", "in 1st zero"],
)
def test_truncations_that_are_errors(cut, message: str, tmp_path: Path) -> None:
    tar = two_files().end(2)
    with pytest.raises(InvalidArgument, match=message):
        apply(tar.build()[: cut(tar)], tmp_path)


def test_a_zero_block_then_a_header_is_corrupt(tmp_path: Path) -> None:
    tar = two_files().end(1).file("after", b"z")
    with pytest.raises(InvalidArgument, match="zero block at byte 3072 followed by a non-zero"):
        apply(tar.build(), tmp_path)


def test_anything_after_two_zero_blocks_is_ignored(tmp_path: Path) -> None:
    tar = two_files().end(2).file("ignored", b"z")
    assert apply(tar.build(), tmp_path) == 3
    assert not (tmp_path / "ignored").exists()


def test_a_bad_checksum_after_the_first_member_is_an_error(tmp_path: Path) -> None:
    tar = two_files().end(2)
    data = bytearray(tar.build())
    data[tar.parts[2].header + 10] ^= 0x01  # flip a bit of d/b's name
    with pytest.raises(InvalidArgument, match=r"tar header at byte 1536 is corrupt"):
        apply(bytes(data), tmp_path)


def test_pax_size_record_overrides_the_header(tmp_path: Path) -> None:
    body = b"p" * 600
    tar = RawTar()
    records = pax_records(size=str(len(body)), path="long/" + "n" * 120)
    tar.member(header("PaxHeaders/x", size=len(records), typeflag=b"x"), records)
    tar.member(header("short", size=0), body)  # the header says 0; PAX says 600
    data = tar.build()[: tar.parts[-1].data_end]  # and the stream stops after the data
    assert apply(data, tmp_path) == 1
    assert (tmp_path / "long" / ("n" * 120)).read_bytes() == body
    with pytest.raises(InvalidArgument, match="inside the data of 'short'"):
        apply(tar.build()[: tar.parts[-1].data + 10], tmp_path)


def test_gnu_long_name_then_a_cut_in_padding(tmp_path: Path) -> None:
    name = "deep/" + "m" * 150
    tar = RawTar().member(
        header("././@LongLink", size=len(name) + 1, typeflag=b"L"), name.encode() + b"\0"
    )
    tar.file("trunc", b"long\n")
    assert apply(tar.build()[: tar.parts[-1].data_end + 1], tmp_path) == 1
    assert (tmp_path / "deep" / ("m" * 150)).read_bytes() == b"long\n"


def test_base256_size(tmp_path: Path) -> None:
    body = b"b" * 513
    field = bytes([0x80]) + (513).to_bytes(11, "big")
    tar = RawTar().member(header("big", size_field=field), body)
    assert apply(tar.build()[: tar.parts[-1].data_end], tmp_path) == 1
    assert (tmp_path / "big").read_bytes() == body


def test_header_only_types_have_no_data_whatever_their_size(tmp_path: Path) -> None:
    tar = RawTar().member(header("dir", typeflag=b"5", size=4096, mode=0o755))
    tar.member(header("link", typeflag=b"2", size=999, linkname="dir"))
    tar.file("dir/f", b"f")
    assert apply(tar.build()[: tar.parts[-1].data_end], tmp_path) == 3
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "dir" / "f").read_bytes() == b"f"


def test_framing_in_small_reads() -> None:
    tar = two_files()
    data = tar.build()[: tar.parts[-1].data_end + 5]

    class Trickle:
        def __init__(self) -> None:
            self.rest = data

        def read(self, n: int = -1) -> bytes:
            out, self.rest = self.rest[:7], self.rest[7:]
            return out

    framed = GoTarFraming(Trickle()).read()
    assert framed[: len(data)] == data
    assert len(framed) == tar.parts[-1].end + 2 * BLOCK
    assert framed[len(data) :] == bytes(len(framed) - len(data))
