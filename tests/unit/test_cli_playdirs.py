"""The host directories ``pinnace play`` makes, and what ``pinnace rm`` / ``play --down``
may remove: only a directory directly under one of the CLI's roots, named after the pod's
identity, and also named by the pod's annotations. A pod's metadata comes from any CRI
client, so an identity that would point elsewhere (the daemon's root, say) owns nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import manifest, playdirs


@pytest.fixture
def roots(tmp_path: Path) -> playdirs.PlayRoots:
    return playdirs.PlayRoots(log_root=str(tmp_path / "logs"), play_root=str(tmp_path / "play"))


def _status(
    namespace: str, name: str, uid: str, *, log_dir: str, volume_dir: str
) -> pb.PodSandboxStatus:
    return pb.PodSandboxStatus(
        metadata=pb.PodSandboxMetadata(namespace=namespace, name=name, uid=uid),
        annotations={
            manifest.LOG_DIRECTORY_ANNOTATION: log_dir,
            manifest.VOLUME_DIRECTORY_ANNOTATION: volume_dir,
        },
    )


def test_a_pods_directories_lie_directly_under_the_roots(
    roots: playdirs.PlayRoots, tmp_path: Path
) -> None:
    assert playdirs.owned("default", "web", "u1", roots) == [
        tmp_path / "logs" / "default_web_u1",
        tmp_path / "play" / "u1",
    ]
    assert playdirs.owned("default", "web", "", roots) == []


@pytest.mark.parametrize("uid", ["/var/lib/pinnace", "../../var/lib/pinnace", "a/b", ".."])
def test_an_identity_that_names_another_place_owns_nothing_there(
    roots: playdirs.PlayRoots, tmp_path: Path, uid: str
) -> None:
    for path in playdirs.owned("default", "web", uid, roots):
        assert path.parent in (tmp_path / "logs", tmp_path / "play")
        assert path.name not in (".", "..") and "/" not in path.name
    assert tmp_path / "play" / uid not in playdirs.owned("default", "web", uid, roots)


def test_rm_removes_what_play_made_and_nothing_else(
    roots: playdirs.PlayRoots, tmp_path: Path
) -> None:
    logs, volumes = tmp_path / "logs" / "default_web_u1", tmp_path / "play" / "u1"
    for directory in (logs, volumes / "cache"):
        directory.mkdir(parents=True)
    removed = playdirs.remove(
        _status("default", "web", "u1", log_dir=str(logs), volume_dir=str(volumes)), roots
    )
    assert sorted(removed) == sorted([str(logs), str(volumes)])
    assert not logs.exists() and not volumes.exists()


def test_rm_leaves_a_directory_the_annotations_name_but_the_identity_does_not(
    roots: playdirs.PlayRoots, tmp_path: Path
) -> None:
    daemon_root = tmp_path / "var-lib-pinnace"  # what a crafted pod would like removed
    (daemon_root / "content").mkdir(parents=True)
    other = tmp_path / "play" / "someone-else"
    other.mkdir(parents=True)
    for status in (
        _status("default", "web", str(daemon_root), log_dir="", volume_dir=str(daemon_root)),
        _status("default", "web", "u1", log_dir=str(other), volume_dir=str(other)),
        _status("default", "web", "../var-lib-pinnace", log_dir="", volume_dir=str(daemon_root)),
    ):
        assert playdirs.remove(status, roots) == []
    assert (daemon_root / "content").is_dir() and other.is_dir()
