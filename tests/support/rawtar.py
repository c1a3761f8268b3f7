"""Tar archives written byte by byte, without ``tarfile``, so a test controls every byte:
where the stream stops, what padding and end-of-archive blocks follow, headers with
deliberately wrong fields.

A member is a 512-byte ustar header, its data, and zero padding to the next 512-byte
boundary; an archive ends with two zero blocks. :class:`RawTar` records the offset of each
part, so a test can cut the stream exactly where it wants (inside a header, inside data, at
the end of data, inside the padding, after one zero block).
"""

from __future__ import annotations

from dataclasses import dataclass, field

BLOCK = 512
MTIME = 1_700_000_000


def _octal(value: int, width: int) -> bytes:
    """``value`` as zero-padded octal digits and a NUL, ``width`` bytes in all."""
    return f"{value:0{width - 1}o}".encode() + b"\0"


def header(
    name: str,
    *,
    size: int = 0,
    typeflag: bytes = b"0",
    mode: int = 0o644,
    linkname: str = "",
    size_field: bytes | None = None,
) -> bytes:
    """A ustar header block with a correct checksum. ``size_field`` (12 bytes) replaces the
    octal size, e.g. with a base-256 number."""
    raw = bytearray(BLOCK)
    raw[0:100] = name.encode().ljust(100, b"\0")
    raw[100:108] = _octal(mode, 8)
    raw[108:116] = _octal(0, 8)
    raw[116:124] = _octal(0, 8)
    raw[124:136] = size_field if size_field is not None else _octal(size, 12)
    raw[136:148] = _octal(MTIME, 12)
    raw[148:156] = b" " * 8
    raw[156:157] = typeflag
    raw[157:257] = linkname.encode().ljust(100, b"\0")
    raw[257:263] = b"ustar\0"
    raw[263:265] = b"00"
    checksum = sum(raw)
    raw[148:156] = f"{checksum:06o}".encode() + b"\0 "
    return bytes(raw)


def pax_records(**records: str) -> bytes:
    """PAX extended-header records: ``"<length> <key>=<value>\\n"``, length counting itself."""
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


@dataclass
class Part:
    """Where one member lies in the archive: header, data and padding offsets."""

    name: str
    header: int
    data: int
    data_end: int
    end: int  # after the padding


@dataclass
class RawTar:
    """An archive being written: its bytes so far and the :class:`Part` of each member."""

    data: bytearray = field(default_factory=bytearray)
    parts: list[Part] = field(default_factory=list)

    def member(self, head: bytes, body: bytes = b"", *, name: str = "") -> RawTar:
        start = len(self.data)
        self.data += head
        data_start = len(self.data)
        self.data += body
        data_end = len(self.data)
        self.data += bytes(-len(body) % BLOCK)
        self.parts.append(Part(name, start, data_start, data_end, len(self.data)))
        return self

    def file(self, name: str, body: bytes, *, mode: int = 0o644) -> RawTar:
        return self.member(header(name, size=len(body), mode=mode), body, name=name)

    def directory(self, name: str) -> RawTar:
        return self.member(header(name, typeflag=b"5", mode=0o755), name=name)

    def end(self, blocks: int = 2) -> RawTar:
        self.data += bytes(BLOCK * blocks)
        return self

    def build(self) -> bytes:
        return bytes(self.data)
