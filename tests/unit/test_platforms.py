"""Platform parsing, normalisation and selection from an index."""

from __future__ import annotations

import platform as host_platform

import pytest

from runtime import ocispec
from runtime.errors import InvalidArgument, NotFound
from runtime.images.manifest import Index
from runtime.images.platforms import (
    Matcher,
    default_platform,
    normalize,
    parse_platform,
    select_manifest,
    select_manifests,
)
from runtime.ocispec import Descriptor, Platform


def test_default_platform_names_this_machine() -> None:
    p = default_platform()
    assert p.os == "linux"
    expected = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(host_platform.machine())
    if expected:
        assert p.architecture == expected
    if p.architecture == "arm64":
        assert p.variant == "v8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "")),
        ("linux/arm64", Platform("linux", "arm64", "")),
        ("linux/aarch64", Platform("linux", "arm64", "")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/6", Platform("linux", "arm", "v6")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("amd64", Platform("linux", "amd64")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected os/arch"),
        ("linux/amd64/v2/x", "expected os/arch"),
        ("linux//v7", "expected os/arch"),
        ("linux/am d64", "expected os/arch"),
        ("plan10/amd64", "unknown operating system 'plan10'"),
        ("linux/z80", "unknown architecture 'z80'"),
        ("z80", "neither a known OS nor arch"),
    ],
)
def test_parse_platform_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_platform(text)


def test_normalize_arm64_variants() -> None:
    assert normalize(Platform("linux", "arm64", "v8")) == normalize(Platform("linux", "arm64"))
    assert normalize(Platform("linux", "amd64", "v1")).variant == ""
    assert normalize(Platform("linux", "i386")).architecture == "386"


@pytest.mark.parametrize(
    ("host", "candidate", "matches"),
    [
        (Platform("linux", "amd64"), Platform("linux", "amd64"), True),
        (Platform("linux", "amd64"), Platform("linux", "386"), True),
        (Platform("linux", "amd64"), Platform("linux", "amd64", "v2"), False),
        (Platform("linux", "amd64", "v3"), Platform("linux", "amd64", "v2"), True),
        (Platform("linux", "amd64"), Platform("windows", "amd64"), False),
        (Platform("linux", "amd64"), Platform("linux", "arm64"), False),
        (Platform("linux", "arm64", "v8"), Platform("linux", "arm64"), True),
        (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),
        (Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7"), True),
        (Platform("linux", "arm64", "v8"), Platform("linux", "arm64", "v9"), False),
        (Platform("linux", "arm64", "v9"), Platform("linux", "arm64", "v8"), True),
        (Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"), True),
        (Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"), False),
        (Platform("linux", "arm", "v7"), Platform("linux", "arm"), True),
        (Platform("linux", "arm", "v7"), Platform("linux", "arm64"), False),
        (Platform("linux", "riscv64"), Platform("linux", "riscv64"), True),
    ],
)
def test_matcher(host: Platform, candidate: Platform, matches: bool) -> None:
    assert Matcher(host).match(candidate) is matches


def desc(n: int, platform: Platform | None, media_type: str = ocispec.OCI_MANIFEST) -> Descriptor:
    return Descriptor(media_type, "sha256:" + f"{n:x}" * 64, 10, platform=platform)


def test_select_prefers_exact_then_compatible_then_unlabelled() -> None:
    index = Index(
        ocispec.OCI_INDEX,
        (
            desc(1, None),
            desc(2, Platform("linux", "386")),
            desc(3, Platform("unknown", "unknown")),
            desc(4, Platform("linux", "amd64")),
            desc(5, Platform("linux", "arm64", "v8")),
            desc(6, Platform("linux", "amd64"), media_type="application/vnd.example+json"),
        ),
    )
    chosen = select_manifests(index, Platform("linux", "amd64"))
    assert [d.digest[7] for d in chosen] == ["4", "2", "1"]
    assert select_manifest(index, Platform("linux", "arm64", "v8")).digest[7] == "5"


def test_select_keeps_index_order_among_equals() -> None:
    index = Index(
        ocispec.OCI_INDEX,
        (desc(7, Platform("linux", "arm64", "v8")), desc(8, Platform("linux", "arm64"))),
    )
    assert select_manifest(index, Platform("linux", "arm64")).digest[7] == "7"


def test_select_none_lists_what_is_available() -> None:
    index = Index(
        ocispec.OCI_INDEX,
        (desc(1, Platform("linux", "arm64", "v8")), desc(2, Platform("linux", "s390x"))),
    )
    with pytest.raises(NotFound) as info:
        select_manifest(index, Platform("linux", "amd64"), ref="docker.io/library/x:1")
    assert str(info.value) == (
        "no manifest for platform linux/amd64 in docker.io/library/x:1; "
        "available: linux/arm64/v8, linux/s390x"
    )
