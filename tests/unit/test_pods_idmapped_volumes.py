"""Id-mapped volumes of containers in pods with their own user namespace, through the pod
layer's seams: which mounts are id-mapped, the refusals, and removal leaving nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.model.pods import (
    IdMapping,
    Mount,
    NamespaceOptions,
    Propagation,
    SecurityContext,
    UserNamespace,
)
from runtime.pods import idmapped_volumes
from tests.support.pods import FakeRootfs, PodLayer

POD = (IdMapping(container_id=0, host_id=100000, length=65536),)
USERNS = UserNamespace(uids=POD, gids=POD)


def _mapped(path: str, **kwargs: object) -> Mount:
    return Mount(
        container_path=f"/c{path}", host_path=path, uid_mappings=POD, gid_mappings=POD, **kwargs
    )  # type: ignore[arg-type]


def test_only_mounts_with_the_pods_mappings_pass() -> None:
    plain = Mount(container_path="/p", host_path="/srv/p")
    idmapped_volumes.check([plain, _mapped("/srv/a")], USERNS)
    idmapped_volumes.check([plain], None)
    with pytest.raises(InvalidArgument, match=r"mounts\[1\].*need a pod in its own user"):
        idmapped_volumes.check([plain, _mapped("/srv/a")], None)
    other = (IdMapping(container_id=0, host_id=200000, length=65536),)
    wrong = dataclasses.replace(_mapped("/srv/a"), gid_mappings=other)
    with pytest.raises(InvalidArgument, match=r"gids 0:200000:65536\) are not the pod's"):
        idmapped_volumes.check([wrong], USERNS)
    idmapped_volumes.check([_mapped("/srv/a", propagation=Propagation.HOST_TO_CONTAINER)], USERNS)
    shared = _mapped("/srv/a", propagation=Propagation.BIDIRECTIONAL)
    with pytest.raises(InvalidArgument, match="cannot be PROPAGATION_BIDIRECTIONAL"):
        idmapped_volumes.check([shared], USERNS)


def test_mapped_binds_point_at_their_copies_and_go_away(tmp_path: Path) -> None:
    rootfs = FakeRootfs()
    plain = Mount(container_path="/p", host_path="/srv/p")
    image = Mount(
        container_path="/i", host_path="", image="img:1", uid_mappings=POD, gid_mappings=POD
    )
    mounts = (plain, _mapped("/srv/a", readonly=True), image)
    out = idmapped_volumes.mount_volumes(
        rootfs, mounts, directory=tmp_path, userns=tmp_path / "ns" / "user"
    )
    target = tmp_path / idmapped_volumes.DIRECTORY / "1"
    assert out[0] == plain and out[2] == image  # image volumes are id-mapped as views
    assert out[1].host_path == str(target) and not out[1].idmapped and out[1].readonly
    assert rootfs.mounted[target][0].options == ("rbind", "ro", "rprivate")
    assert rootfs.idmapped[target][0] == tmp_path / "ns" / "user"
    idmapped_volumes.unmount_volumes(rootfs, directory=tmp_path)
    assert rootfs.mounted == {}
    assert not (tmp_path / idmapped_volumes.DIRECTORY).exists()
    idmapped_volumes.unmount_volumes(rootfs, directory=tmp_path)  # absent is fine


@pytest.fixture
async def layer(tmp_path: Path) -> AsyncIterator[PodLayer]:
    built = PodLayer.build(tmp_path)
    yield built
    built.close()


async def test_a_container_runs_in_its_pods_user_namespace(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web"))
    own = SecurityContext(namespaces=NamespaceOptions(userns=USERNS))
    container = dataclasses.replace(layer.container("app"), security=own)
    with pytest.raises(
        InvalidArgument, match=r"\(mode POD, uids 0:100000:65536.*\) is not its pod's \(mode NODE"
    ):
        await layer.containers.create(sandbox.id, container)
    mapped = dataclasses.replace(layer.container("app"), mounts=(_mapped("/srv/a"),))
    with pytest.raises(InvalidArgument, match="need a pod in its own user namespace"):
        await layer.containers.create(sandbox.id, mapped)
    mine = {f"dir sandboxes/{sandbox.id}", f"sandbox record {sandbox.id}"}
    assert [item for item in layer.leftovers() if item not in mine] == []
