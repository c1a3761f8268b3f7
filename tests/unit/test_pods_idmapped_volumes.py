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


def test_what_an_id_mapped_mount_may_be() -> None:
    plain = Mount(container_path="/p", host_path="/srv/p")
    other = (IdMapping(container_id=0, host_id=200000, length=65536),)
    own = dataclasses.replace(_mapped("/srv/a"), uid_mappings=other, gid_mappings=other)
    # binds: any mappings, with a user namespace of the pod's or not
    idmapped_volumes.check([plain, _mapped("/srv/a"), own], USERNS)
    idmapped_volumes.check([plain, _mapped("/srv/a"), own], None)
    slave = _mapped("/srv/a", propagation=Propagation.HOST_TO_CONTAINER)
    idmapped_volumes.check([slave], USERNS)
    shared = _mapped("/srv/a", propagation=Propagation.BIDIRECTIONAL)
    idmapped_volumes.check([shared], None)
    with pytest.raises(InvalidArgument, match=r"mounts\[0\].*cannot be PROPAGATION_BIDIRECTIONAL"):
        idmapped_volumes.check([shared], USERNS)
    # image volumes: the pod's mappings only
    image = Mount(
        container_path="/i", host_path="", image="img:1", uid_mappings=POD, gid_mappings=POD
    )
    idmapped_volumes.check([image], USERNS)
    with pytest.raises(InvalidArgument, match=r"uids 0:200000:65536.*not the pod's"):
        idmapped_volumes.check([dataclasses.replace(image, uid_mappings=other)], USERNS)
    with pytest.raises(InvalidArgument, match=r"not the pod's \(none\)"):
        idmapped_volumes.check([image], None)


def test_mapped_binds_point_at_their_copies_and_go_away(tmp_path: Path) -> None:
    rootfs = FakeRootfs()
    plain = Mount(container_path="/p", host_path="/srv/p")
    image = Mount(
        container_path="/i", host_path="", image="img:1", uid_mappings=POD, gid_mappings=POD
    )
    other = (IdMapping(container_id=1000, host_id=100000, length=1),)
    own = Mount(
        container_path="/o",
        host_path="/srv/o",
        uid_mappings=other,
        gid_mappings=other,
        propagation=Propagation.HOST_TO_CONTAINER,
    )
    mounts = (plain, _mapped("/srv/a", readonly=True), image, own)
    pinned = tmp_path / "ns" / "user"
    out = idmapped_volumes.mount_volumes(rootfs, mounts, directory=tmp_path, pod=(pinned, USERNS))
    target = tmp_path / idmapped_volumes.DIRECTORY / "1"
    assert out[0] == plain and out[2] == image  # image volumes are id-mapped as views
    assert out[1].host_path == str(target) and not out[1].idmapped and out[1].readonly
    assert rootfs.mounted[target][0].options == ("rbind", "ro", "rprivate")
    assert rootfs.mappings[target] == pinned  # the pod's mappings: its pinned namespace
    third = tmp_path / idmapped_volumes.DIRECTORY / "3"
    assert rootfs.mappings[third] == (other, other)  # its own: a namespace made for them
    assert rootfs.mounted[third][0].options == ("rbind", "rw", "rslave")
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
    image = Mount(
        container_path="/i", host_path="", image="img:1", uid_mappings=POD, gid_mappings=POD
    )
    mapped = dataclasses.replace(layer.container("app"), mounts=(image,))
    with pytest.raises(InvalidArgument, match="an image volume is id-mapped through its pod"):
        await layer.containers.create(sandbox.id, mapped)
    mine = {f"dir sandboxes/{sandbox.id}", f"sandbox record {sandbox.id}"}
    assert [item for item in layer.leftovers() if item not in mine] == []
