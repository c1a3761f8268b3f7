"""``DirectAppender``: whatever the write sizes, the file ends up holding exactly the bytes
given, in order, whether the file system takes ``O_DIRECT`` or not."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from runtime.directio import DirectAppender


def _chunks(seed: int, total: int) -> list[bytes]:
    rng = random.Random(seed)
    out, left = [], total
    while left:
        n = min(left, rng.choice([1, 511, 4096, 65_537, 300_000, 1 << 20, (1 << 20) + 3]))
        out.append(rng.randbytes(n))
        left -= n
    return out


@pytest.mark.parametrize("buffer_size", [4096, 1 << 20])
def test_the_file_holds_exactly_the_bytes_written(tmp_path: Path, buffer_size: int) -> None:
    chunks = _chunks(1, 3 * (1 << 20) + 12_345)
    path = tmp_path / "blob"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
    out = DirectAppender(fd, buffer_size=buffer_size)
    for chunk in chunks:
        assert out.write(chunk) == len(chunk)
    out.close()
    assert path.read_bytes() == b"".join(chunks)


def test_a_flush_mid_file_completes_it_so_far_and_later_writes_follow(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    out = DirectAppender.create(path)
    first, second = _chunks(2, 1_500_000), _chunks(3, 2_500_000)
    for chunk in first:
        out.write(chunk)
    out.flush()
    assert path.read_bytes() == b"".join(first)
    for chunk in second:
        out.write(memoryview(chunk))
    out.close()
    out.close()  # a second close does nothing
    assert path.read_bytes() == b"".join(first + second)


def test_a_file_opened_without_o_direct_is_written_through_the_page_cache(
    tmp_path: Path,
) -> None:
    path = tmp_path / "blob"
    out = DirectAppender(os.open(path, os.O_WRONLY | os.O_CREAT))
    assert not out.direct
    chunks = _chunks(4, 2 * (1 << 20) + 7)
    for chunk in chunks:
        out.write(chunk)
    out.close()
    assert path.read_bytes() == b"".join(chunks)


def test_create_truncates_and_writes_direct_where_the_file_system_allows(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 10_000)
    out = DirectAppender.create(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_DIRECT
    try:
        os.close(os.open(tmp_path / "probe", flags))
        supported = True
    except OSError:
        supported = False
    assert out.direct is supported
    out.write(b"abc")
    out.close()
    assert path.read_bytes() == b"abc"
