"""Where a layer tar stream may end: Go's ``archive/tar`` rules, in front of Python's ``tarfile``.

containerd and CRI-O read layers with Go's ``archive/tar``, so image builders are tested
against it, and some ship layers that stop early. Go's reader accepts end of input

- at a block boundary where a header would start (no end-of-archive blocks at all),
- right after the last member's data, or anywhere inside its padding to the block boundary,
- after a single zero block (the second end-of-archive block missing),

and refuses end of input inside a header or inside a member's data, a zero block followed by
anything but a second zero block, and a header whose checksum is wrong. Python's ``tarfile``
refuses the first cases ("unexpected end of data") and silently stops at a truncated or
corrupt header after the first member.

:class:`GoTarFraming` follows the tar structure of the bytes passing through it (header
checksums, each member's data size, padding, the end-of-archive blocks). Where Go would stop
normally, it completes the archive with the missing padding and zero blocks, so ``tarfile``
reads a well-formed archive; where Go would fail, it raises :class:`InvalidArgument` saying
where the layer ends. Only the bytes given to ``tarfile`` are completed: a hashing reader
beneath still sees exactly the layer's bytes.

The size of a member's data: zero for hard links, symlinks, devices, directories and fifos
(whatever the header says, as both readers do); otherwise the header's size field (octal or
base-256), replaced by a PAX ``size`` record of a preceding ``x`` header. An old-GNU sparse
header is followed by extension blocks while its "is extended" flag is set.
"""

from __future__ import annotations

from enum import Enum

from runtime.diff.compression import Readable
from runtime.errors import InvalidArgument

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_HEADER_ONLY = frozenset(b"123456")  # link, symlink, char, block, directory, fifo
_META = frozenset(b"xgLK")  # headers describing the next header, not members themselves
_MAX_PAX = 1 << 20  # Go's limit on a PAX header's size
_READ = 1 << 20
_HIGH = bytes(range(128, 256))


class _Where(Enum):
    """What the next byte of the stream belongs to."""

    HEADER = "header"  # a header block (or the first end-of-archive block)
    SPARSE = "sparse"  # an old-GNU sparse extension block
    DATA = "data"  # a member's data
    PADDING = "padding"  # zeros up to the block boundary after a member's data
    ZERO = "zero"  # the second end-of-archive block
    END = "end"  # after the end of the archive: ignored by every reader


def _number(field: bytes, what: str, offset: int) -> int:
    """A numeric header field: base-256 when its high bit is set, else octal text."""
    if field and field[0] & 0x80:
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        if field[0] & 0x40:  # negative: never a valid size
            raise InvalidArgument(f"tar header at byte {offset} has a negative {what}")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArgument(
            f"tar header at byte {offset} has an invalid {what} field {text!r}"
        ) from None


def _checksum_ok(block: bytes) -> bool:
    """Go's check: the checksum field matches the unsigned or the signed sum of the block with
    the field itself counted as spaces."""
    try:
        stored = _number(block[148:156], "checksum", 0)
    except InvalidArgument:
        return False
    field = block[148:156]
    unsigned = sum(block) - sum(field) + 8 * 0x20
    if stored == unsigned:
        return True
    high = len(block) - len(block.translate(None, _HIGH)) - (8 - len(field.translate(None, _HIGH)))
    return stored == unsigned - 256 * high


def _pax_size(records: bytes, offset: int) -> int | None:
    """The ``size`` record of a PAX extended header, if any (records: "<len> key=value\\n")."""
    size = None
    rest = records
    while rest:
        length_text, sep, _ = rest.partition(b" ")
        try:
            length = int(length_text)
        except ValueError:
            length = 0
        if not sep or length <= len(length_text) + 1 or length > len(rest):
            raise InvalidArgument(f"PAX header at byte {offset} has a malformed record")
        record, rest = rest[:length], rest[length:]
        key, eq, value = record[len(length_text) + 1 : -1].partition(b"=")
        if not eq or not record.endswith(b"\n"):
            raise InvalidArgument(f"PAX header at byte {offset} has a malformed record")
        if key == b"size":
            try:
                size = int(value)
            except ValueError:
                raise InvalidArgument(
                    f"PAX header at byte {offset} has an invalid size {value!r}"
                ) from None
            if size < 0:
                raise InvalidArgument(f"PAX header at byte {offset} has a negative size")
    return size


class GoTarFraming:
    """A reader of an uncompressed tar stream that ends it where Go's ``archive/tar`` would
    (see the module docstring). ``read`` raises InvalidArgument where Go fails."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self._where = _Where.HEADER
        self._offset = 0  # bytes of the real stream seen
        self._block = bytearray()  # the header or sparse block being collected
        self._left = 0  # data or padding bytes left in the current region
        self._padding = 0  # padding after the current member's data
        self._header = b""  # the header of the member whose data is passing
        self._pax: bytearray | None = None  # an ``x`` header's records, being collected
        self._pax_size: int | None = None  # its ``size``, for the next member header
        self._tail = b""  # bytes completing the archive, after the real end
        self._ended = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self.read(_READ):
                parts.append(chunk)
            return b"".join(parts)
        if n == 0:
            return b""
        if not self._ended:
            data = self._inner.read(n)
            if data:
                self._scan(data)
                return data
            self._ended = True
            self._tail = self._completion()
        out, self._tail = self._tail[:n], self._tail[n:]
        return out

    # -- following the structure ------------------------------------------------------------

    def _scan(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            where = self._where
            if where is _Where.END:
                break
            if where in (_Where.HEADER, _Where.SPARSE, _Where.ZERO):
                if not self._block and len(view) >= BLOCK:  # a whole block: no copying
                    self._offset += BLOCK
                    block, view = bytes(view[:BLOCK]), view[BLOCK:]
                    self._end_of_block(block)
                    continue
                take = min(BLOCK - len(self._block), len(view))
                self._block += view[:take]
                view = view[take:]
                self._offset += take
                if len(self._block) == BLOCK:
                    block, self._block = bytes(self._block), bytearray()
                    self._end_of_block(block)
                continue
            take = min(self._left, len(view))
            if where is _Where.DATA and self._pax is not None:
                self._pax += view[:take]
            view = view[take:]
            self._offset += take
            self._left -= take
            if self._left == 0:
                self._end_of_region()

    def _end_of_block(self, block: bytes) -> None:
        start = self._offset - BLOCK
        if self._where is _Where.ZERO:
            if block != _ZERO_BLOCK:
                raise InvalidArgument(
                    f"tar stream has a zero block at byte {start - BLOCK} followed by a "
                    "non-zero block (a corrupt end of archive)"
                )
            self._where = _Where.END
            return
        if self._where is _Where.SPARSE:
            if not block[504]:
                self._start_data()
            return
        if block == _ZERO_BLOCK:
            self._where = _Where.ZERO
            return
        if not _checksum_ok(block):
            raise InvalidArgument(f"tar header at byte {start} is corrupt (bad checksum)")
        kind = block[156]
        size = _number(block[124:136], "size", start)
        if kind not in _META and self._pax_size is not None:
            size, self._pax_size = self._pax_size, None
        if kind in _HEADER_ONLY:
            size = 0
        self._header = block
        self._left = size
        self._padding = -size % BLOCK
        if kind == ord("x"):
            if size > _MAX_PAX:
                raise InvalidArgument(f"PAX header at byte {start} is larger than 1 MiB")
            self._pax = bytearray()
        if kind == ord("S") and block[482]:
            self._where = _Where.SPARSE
            return
        self._start_data()

    def _start_data(self) -> None:
        self._where = _Where.DATA
        if self._left == 0:
            self._end_of_region()

    def _end_of_region(self) -> None:
        if self._where is _Where.DATA:
            if self._pax is not None:
                self._pax_size = _pax_size(bytes(self._pax), self._offset)
                self._pax = None
            self._where = _Where.PADDING
            self._left, self._padding = self._padding, 0
            if self._left:
                return
        self._where = _Where.HEADER

    def _completion(self) -> bytes:
        """What completes the archive at the end of the real stream, or InvalidArgument."""
        where = self._where
        if where is _Where.END:
            return b""
        if where is _Where.HEADER and not self._block:
            return _ZERO_BLOCK * 2
        if where is _Where.ZERO and not self._block:
            return _ZERO_BLOCK
        if where is _Where.PADDING:
            return bytes(self._left) + _ZERO_BLOCK * 2
        if where is _Where.DATA:
            raise InvalidArgument(
                f"layer ends inside the data of {_member_name(self._header)!r} "
                f"({self._left} bytes missing)"
            )
        raise InvalidArgument(f"layer ends inside a tar header (at byte {self._offset})")


def _member_name(block: bytes) -> str:
    """The name in a header block: ustar ``prefix/name`` (a PAX or GNU long name, if any,
    came before; this is for messages only)."""
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\x00":
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")
