"""``DirectAppender``: whatever the write sizes, the file ends up holding exactly the bytes
given, in order, whether the file system takes ``O_DIRECT`` or not."""

from __future__ import annotations

import fcntl
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
    out = DirectAppender(os.open(path, os.O_WRONLY | os.O_CREAT), buffer_size=buffer_size)
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


def test_without_o_direct_the_file_is_written_through_the_page_cache(
    tmp_path: Path,
) -> None:
    path = tmp_path / "blob"
    out = DirectAppender(os.open(path, os.O_WRONLY | os.O_CREAT), direct=False)
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
    probe = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.fcntl(probe, fcntl.F_SETFL, os.O_WRONLY | os.O_DIRECT)
        supported = True
    except OSError:
        supported = False
    finally:
        os.close(probe)
    assert out.direct is supported
    out.write(b"abc")
    out.close()
    assert path.read_bytes() == b"abc"


def test_an_exclusive_create_keeps_its_flags(tmp_path: Path) -> None:
    path = tmp_path / "new"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = DirectAppender.create(path, mode=0o600, flags=flags)
    out.write(b"y" * 5000)
    out.close()
    assert path.read_bytes() == b"y" * 5000
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        DirectAppender.create(path, flags=flags)
