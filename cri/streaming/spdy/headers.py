"""SPDY/3 header compression: zlib with the protocol's preset dictionary, one stream per
direction for the whole session.

A header block (before compression) is a 32-bit count of pairs, then per pair a 32-bit name
length, the name (lower case), a 32-bit value length and the value; several values of one
name are joined by NUL bytes. Each block is compressed with a sync flush, so a block always
ends on a byte boundary and the next continues the same zlib stream (its window and the
dictionary). Both ends must therefore process every header block in order, even for streams
they reject, or the contexts drift apart.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence

from cri.streaming.spdy.errors import ProtocolError

# The preset dictionary of SPDY/3 (draft 3, section 2.6.10.1): first these words, each
# preceded by its length as 4 big-endian bytes, then the literal tail below. 1423 bytes.
_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_TAIL = (
    "10010120120220520630030230330430530630740240540640740840941041141241341441541641"
    "7502504505203 Non-Authoritative Information204 No Content301 Moved Permanently40"
    "0 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept O"
    "ct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,imag"
    "e/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/"
    "javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1"
    ",utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()

# A decompressed header block larger than this is refused: headers in the k8s stream protocols
# are a few hundred bytes, and the bound keeps a zlib bomb from costing memory.
MAX_HEADER_BLOCK = 64 * 1024

Headers = tuple[tuple[str, str], ...]


def encode_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """The uncompressed header block for ``headers``: names lower-cased, values of a
    repeated name joined by NUL (the protocol allows each name once)."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.lower(), []).append(value)
    out = [struct.pack(">I", len(merged))]
    for name, values in merged.items():
        n = name.encode()
        v = "\0".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_block(block: bytes) -> Headers:
    """Parse an uncompressed header block; a NUL-joined value becomes several pairs."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        pairs: list[tuple[str, str]] = []
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n]
            pos += 4 + n
            (m,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + m]
            pos += 4 + m
            if len(name) != n or len(value) != m or not name:
                raise ProtocolError("header block is truncated or has an empty name")
            text = name.decode("utf-8").lower()
            pairs += [(text, v) for v in value.decode("utf-8").split("\0")]
    except (struct.error, UnicodeDecodeError) as e:
        raise ProtocolError(f"malformed header block: {e}") from None
    if pos != len(block):
        raise ProtocolError("header block has trailing bytes")
    return tuple(pairs)


def get(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` (case-insensitive), or None."""
    name = name.lower()
    for key, value in headers:
        if key == name:
            return value
    return None


class HeaderCompressor:
    """Compresses our header blocks (one zlib stream for the session's outgoing side)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
        )

    def compress(self, headers: Iterable[tuple[str, str]]) -> bytes:
        block = encode_block(headers)
        return self._z.compress(block) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """Decompresses the peer's header blocks (one zlib stream for the incoming side)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(15, DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK + 1)
        except zlib.error as e:
            raise ProtocolError(f"header block does not decompress: {e}") from None
        if len(block) > MAX_HEADER_BLOCK or self._z.unconsumed_tail:
            raise ProtocolError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return decode_block(block)
