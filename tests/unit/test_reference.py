"""Reference grammar and normalisation, table-driven against docker/distribution's rules."""

from __future__ import annotations

import pytest

from runtime.distribution.reference import Reference, parse_reference
from runtime.errors import InvalidArgument

D = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", ""),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", ""),
        ("library/busybox", "docker.io", "library/busybox", "latest", ""),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", ""),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", ""),
        ("index.docker.io/foo/bar:t", "docker.io", "foo/bar", "t", ""),
        ("foo/bar", "docker.io", "foo/bar", "latest", ""),
        ("foo/bar/baz", "docker.io", "foo/bar/baz", "latest", ""),
        ("localhost/x", "localhost", "x", "latest", ""),
        ("localhost:5000/x", "localhost:5000", "x", "latest", ""),
        ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", ""),
        ("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", ""),
        ("[::1]:5000/img", "[::1]:5000", "img", "latest", ""),
        ("Registry.Example/x", "Registry.Example", "x", "latest", ""),
        ("MyHost/x", "MyHost", "x", "latest", ""),
        (f"busybox@{D}", "docker.io", "library/busybox", "", D),
        (f"busybox:1.36@{D}", "docker.io", "library/busybox", "1.36", D),
        (f"localhost:5000/x:t@{D}", "localhost:5000", "x", "t", D),
        ("a.b/c__d/e-f.g_h---i", "a.b", "c__d/e-f.g_h---i", "latest", ""),
        ("busybox:_x", "docker.io", "library/busybox", "_x", ""),
        ("busybox:" + "t" * 128, "docker.io", "library/busybox", "t" * 128, ""),
        ("localhost:5000", "docker.io", "library/localhost", "5000", ""),
        (f"x@sha512:{'c' * 128}", "docker.io", "library/x", "", f"sha512:{'c' * 128}"),
    ],
)
def test_parse_valid(text: str, domain: str, path: str, tag: str, digest: str) -> None:
    ref = parse_reference(text)
    assert ref == Reference(domain, path, tag, digest)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one component"),
        ("Busybox", "must be lowercase"),
        ("foo/Bar", "must be lowercase"),
        ("busybox:", "empty tag"),
        ("busybox:a$b", "invalid tag 'a$b'"),
        ("busybox:.dot", "invalid tag '.dot'"),
        ("busybox:-dash", "invalid tag '-dash'"),
        ("busybox:" + "t" * 129, "tag is 129 characters long; the limit is 128"),
        ("busybox@sha256:abc", "invalid digest 'sha256:abc'"),
        (f"busybox@{D.upper()}", "invalid digest"),
        ("busybox@", "empty digest"),
        (f"busybox@{D}@{D2}", "more than one '@'"),
        ("a" * 64, "64-character hex string"),
        ("foo//bar", "empty path component"),
        ("foo/bar_", "path component 'bar_' is invalid"),
        ("foo/-bar", "path component '-bar' is invalid"),
        ("foo/b___r", "path component 'b___r' is invalid"),
        ("-bad.host/x", "not a valid registry host"),
        ("host.io:port/x", "not a valid registry host"),
        ("localhost:5000/", "at least one component"),
        ("x/" + "a" * 254, "repository name is 256 characters long; the limit is 255"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert message in str(info.value)


def test_path_of_exactly_255_is_allowed() -> None:
    ref = parse_reference("x/" + "a" * 253)
    assert len(ref.path) == 255


@pytest.mark.parametrize(
    ("text", "name", "canonical", "familiar"),
    [
        (
            "busybox",
            "docker.io/library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        ("foo/bar:1", "docker.io/foo/bar", "docker.io/foo/bar:1", "foo/bar:1"),
        (
            "library/a/b",
            "docker.io/library/a/b",
            "docker.io/library/a/b:latest",
            "library/a/b:latest",
        ),
        ("localhost:5000/x:t", "localhost:5000/x", "localhost:5000/x:t", "localhost:5000/x:t"),
        (
            f"busybox@{D}",
            "docker.io/library/busybox",
            f"docker.io/library/busybox@{D}",
            f"busybox@{D}",
        ),
        (
            f"q.io/a:t@{D}",
            "q.io/a",
            f"q.io/a:t@{D}",
            f"q.io/a:t@{D}",
        ),
    ],
)
def test_forms(text: str, name: str, canonical: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert ref.name == name
    assert str(ref) == canonical
    assert ref.familiar == familiar
    # The canonical form parses back to the same reference.
    assert parse_reference(str(ref)) == ref


def test_with_tag_and_digest() -> None:
    ref = parse_reference(f"busybox:1@{D}")
    assert ref.is_digest_ref
    assert ref.object == D
    by_tag = ref.with_tag("2")
    assert str(by_tag) == "docker.io/library/busybox:2"
    assert not by_tag.is_digest_ref
    assert by_tag.object == "2"
    by_digest = by_tag.with_digest(D2)
    assert str(by_digest) == f"docker.io/library/busybox@{D2}"
    with pytest.raises(InvalidArgument, match="invalid tag"):
        ref.with_tag("no good")
    with pytest.raises(InvalidArgument, match="invalid digest"):
        ref.with_digest("sha256:zz")


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("busybox")
    assert {ref, parse_reference("docker.io/library/busybox:latest")} == {ref}
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]
