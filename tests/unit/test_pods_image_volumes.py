"""Image volumes through the container controller's seams: a read-only view snapshot of the
image mounted per volume and bound into the spec; removal and failed creates leave nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument, NotFound
from runtime.model.pods import Mount, Sandbox
from runtime.pods import image_volumes
from runtime.snapshots.interfaces import Kind
from tests.support.pods import IMAGE_NAME, PodLayer


@pytest.fixture
async def layer(tmp_path: Path) -> AsyncIterator[PodLayer]:
    built = PodLayer.build(tmp_path)
    yield built
    built.close()


@pytest.fixture
async def sandbox(layer: PodLayer) -> Sandbox:
    return await layer.sandboxes.run(layer.host_pod("web"))


def _beyond(layer: PodLayer, sandbox: Sandbox) -> list[str]:
    mine = {f"dir sandboxes/{sandbox.id}", f"sandbox record {sandbox.id}"}
    return [item for item in layer.leftovers() if item not in mine]


def _with_mounts(layer: PodLayer, *mounts: Mount):
    return dataclasses.replace(layer.container("app"), mounts=mounts)


async def test_image_volume_is_a_view_bound_read_only(layer: PodLayer, sandbox: Sandbox) -> None:
    volume = Mount(container_path="/vol", host_path="", readonly=True, image=IMAGE_NAME)
    plain = Mount(container_path="/data", host_path="/srv/data")
    container = await layer.containers.create(sandbox.id, _with_mounts(layer, plain, volume))
    bundle = Path(container.bundle)
    target = bundle / image_volumes.DIRECTORY / "1"
    assert target in layer.rootfs.mounted
    view = layer.snapshotter.stat(image_volumes.snapshot_key(container.id, 1))
    assert (view.kind, view.parent) == (Kind.VIEW, layer.image.chain_id)
    spec = json.loads((bundle / "config.json").read_text())
    (bound,) = [m for m in spec["mounts"] if m["destination"] == "/vol"]
    assert bound["source"] == str(target)
    assert "ro" in bound["options"] and "noexec" not in bound["options"]
    # the record keeps the CRI mounts as asked (what ContainerStatus reports)
    assert container.config.mounts == (plain, volume)

    await layer.containers.remove(container.id)
    assert _beyond(layer, sandbox) == []


async def test_a_missing_sub_path_or_image_leaves_nothing(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    missing_dir = Mount(
        container_path="/v", host_path="", readonly=True, image=IMAGE_NAME, image_sub_path="x/y"
    )
    with pytest.raises(InvalidArgument, match="image_sub_path 'x/y' is not a directory"):
        await layer.containers.create(sandbox.id, _with_mounts(layer, missing_dir))
    assert _beyond(layer, sandbox) == []
    absent = Mount(container_path="/v", host_path="", readonly=True, image="nowhere:1")
    with pytest.raises(NotFound, match="image volume 'nowhere:1' at /v"):
        await layer.containers.create(sandbox.id, _with_mounts(layer, absent))
    assert _beyond(layer, sandbox) == []


async def test_leftover_views_are_found_by_key(layer: PodLayer, tmp_path: Path) -> None:
    layer.snapshotter.view(image_volumes.snapshot_key("dead", 3), layer.image.chain_id)
    image_volumes.unmount_volumes(
        layer.snapshotter, layer.rootfs, container_id="dead", directory=tmp_path / "x", count=-1
    )
    assert [i.key for i in layer.snapshotter.walk() if "dead" in i.key] == []
