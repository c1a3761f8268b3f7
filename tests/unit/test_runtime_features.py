"""Reading an OCI runtime's `features` document."""

from __future__ import annotations

import json

import pytest

from runtime.tasks.features import HandlerFeatures, parse_features

# The shape of runc 1.1.5's output on the test machines (abridged).
RUNC = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.0.2-dev",
    "mountOptions": ["bind", "rbind", "ro", "rro", "rw", "rprivate"],
    "linux": {"namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"]},
}


def test_runc_features() -> None:
    features = parse_features(json.dumps(RUNC).encode())
    assert features.known
    assert features.recursive_read_only
    assert not features.idmapped_mounts
    assert "user" in features.namespaces


def test_a_runtime_without_rro_or_idmap_lists() -> None:
    features = parse_features(json.dumps({"mountOptions": ["idmap", "ro"]}).encode())
    assert features.idmapped_mounts and not features.recursive_read_only
    assert parse_features(b"{}") == HandlerFeatures(known=True)


def test_nothing_stated_means_nothing_supported() -> None:
    assert not HandlerFeatures().recursive_read_only
    assert not HandlerFeatures().known


@pytest.mark.parametrize(
    "document", [b"unknown command features", b"[1, 2]", b'{"mountOptions": 3}']
)
def test_unreadable_output(document: bytes) -> None:
    with pytest.raises(ValueError):
        parse_features(document)
