"""Conformance suite for content stores: every test runs against LocalStore and MemoryStore."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.content import LocalStore, MemoryStore, Store
from runtime.errors import DigestMismatch, InvalidArgument, NotFound, Unavailable


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    if request.param == "local":
        # A factory returning a fresh object on the same root: "reopen" for LocalStore.
        return lambda: LocalStore(tmp_path / "content")
    store = MemoryStore()
    return lambda: store


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


def write_blob(store: Store, data: bytes, ref: str = "ref-1") -> str:
    digest = sha(data)
    with store.writer(ref, expected_digest=digest, expected_size=len(data)) as w:
        w.write(data)
        w.commit()
    return digest


def test_roundtrip(store: Store) -> None:
    data = b"hello content" * 1000
    digest = write_blob(store, data)
    info = store.info(digest)
    assert (info.digest, info.size) == (digest, len(data))
    assert store.exists(digest)
    assert store.read_blob(digest) == data
    with store.open_blob(digest) as f:
        assert f.read() == data
    assert [b.digest for b in store.walk()] == [digest]
    assert store.usage() == (len(data), 1)
    assert store.list_ingests() == []


def test_protocols(store: Store) -> None:
    assert isinstance(store, Store)


def test_missing_blob(store: Store) -> None:
    digest = sha(b"nope")
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.info(digest)
    with pytest.raises(NotFound):
        store.read_blob(digest)
    with pytest.raises(NotFound):
        store.delete(digest)


def test_invalid_digest(store: Store) -> None:
    with pytest.raises(InvalidArgument):
        store.info("sha256:xyz")
    with pytest.raises(InvalidArgument):
        store.writer("r", expected_digest="md5:abc")


def test_delete(store: Store) -> None:
    digest = write_blob(store, b"x")
    store.delete(digest)
    assert not store.exists(digest)
    assert list(store.walk()) == []


def test_digest_mismatch_removes_ingest(store: Store) -> None:
    wrong = sha(b"something else")
    w = store.writer("bad", expected_digest=wrong, expected_size=5)
    w.write(b"hello")
    with pytest.raises(DigestMismatch) as info:
        w.commit()
    assert wrong in str(info.value)
    assert sha(b"hello") in str(info.value)
    assert store.list_ingests() == []
    assert not store.exists(sha(b"hello"))
    assert not store.exists(wrong)


def test_size_mismatch_at_commit(store: Store) -> None:
    data = b"abc"
    w = store.writer("short", expected_digest=sha(data), expected_size=4)
    w.write(data)
    with pytest.raises(DigestMismatch):
        w.commit()
    assert store.list_ingests() == []


def test_size_overrun_on_write(store: Store) -> None:
    digest = sha(b"abcd")
    w = store.writer("over", expected_digest=digest, expected_size=4)
    w.write(b"abc")
    with pytest.raises(DigestMismatch) as info:
        w.write(b"de")
    assert digest in str(info.value)
    assert store.list_ingests() == []


def test_commit_without_expectations_and_at_commit(store: Store) -> None:
    with store.writer("free") as w:
        w.write(b"abc")
        assert w.digest() == sha(b"abc")
        info = w.commit()
    assert info.digest == sha(b"abc")
    with store.writer("late") as w:
        w.write(b"def")
        with pytest.raises(DigestMismatch):
            w.commit(expected_digest=sha(b"xyz"))
    assert not store.exists(sha(b"def"))


def test_resume_after_close(make_store: Callable[[], Store]) -> None:
    data = bytes(range(256)) * 5000
    digest = sha(data)
    store = make_store()
    w = store.writer("resume", expected_digest=digest, expected_size=len(data))
    w.write(data[:300_000])
    w.close()
    [status] = store.list_ingests()
    assert (status.ref, status.offset, status.expected_digest) == ("resume", 300_000, digest)
    assert status.expected_size == len(data)

    store = make_store()  # a restarted daemon sees the same ingest
    with store.writer("resume", expected_digest=digest, expected_size=len(data)) as w:
        assert w.offset == 300_000
        w.write(data[w.offset :])
        info = w.commit()
    assert info.size == len(data)
    assert store.read_blob(digest) == data
    assert store.list_ingests() == []


def test_exception_in_with_keeps_partial_data(store: Store) -> None:
    with pytest.raises(RuntimeError), store.writer("partial") as w:
        w.write(b"12345")
        raise RuntimeError("connection reset")
    [status] = store.list_ingests()
    assert status.offset == 5
    with store.writer("partial") as w:
        assert w.offset == 5


def test_different_expectation_restarts(store: Store) -> None:
    w = store.writer("r", expected_digest=sha(b"one"), expected_size=3)
    w.write(b"on")
    w.close()
    with store.writer("r", expected_digest=sha(b"two!"), expected_size=4) as w:
        assert w.offset == 0


def test_explicit_abort(store: Store) -> None:
    w = store.writer("gone")
    w.write(b"abc")
    w.abort()
    assert store.list_ingests() == []
    w = store.writer("gone2")
    w.write(b"abc")
    w.close()
    store.abort("gone2")
    assert store.list_ingests() == []
    with pytest.raises(NotFound):
        store.abort("gone2")


def test_one_writer_per_ref(store: Store) -> None:
    w = store.writer("locked")
    try:
        with pytest.raises(Unavailable, match="ingest locked is locked"):
            store.writer("locked")
        with pytest.raises(Unavailable):
            store.abort("locked")
        other = store.writer("other")  # a different ref is independent
        other.close()
    finally:
        w.close()
    store.writer("locked").abort()


def test_commit_is_idempotent(store: Store) -> None:
    data = b"same bytes"
    first = write_blob(store, data, ref="a")
    second = write_blob(store, data, ref="b")
    assert first == second
    assert store.read_blob(first) == data
    assert store.list_ingests() == []


def test_concurrent_writers_different_refs(store: Store) -> None:
    blobs = [bytes([i]) * (100_000 + i) for i in range(8)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            write_blob(store, blobs[i], ref=f"ref-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(b.digest for b in store.walk()) == sorted(sha(b) for b in blobs)


def test_sha512(store: Store) -> None:
    data = b"five twelve"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    with store.writer("512", expected_digest=digest) as w:
        w.write(data)
        assert w.commit().digest == digest
    assert store.read_blob(digest) == data


def test_local_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    digest = write_blob(store, b"layout")
    path = tmp_path / "blobs" / "sha256" / digest.split(":")[1]
    assert store.blob_path(digest) == path
    assert path.read_bytes() == b"layout"
    assert path.stat().st_mode & 0o777 == 0o444
    assert list((tmp_path / "ingest").iterdir()) == []
