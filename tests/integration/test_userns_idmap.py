"""A pod's user namespace and id-mapped layers against the real kernel: the helper's pins,
maps and hostname, an overlay over read-only id-mapped lower layers, and nothing left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from runtime.errors import FailedPrecondition
from runtime.model.pods import IdMapping, UserNamespace
from runtime.mount import Mount, idmap, unmount
from runtime.sandbox.namespaces import ALL_KINDS, NamespaceKind, is_pinned, unpin
from runtime.sandbox.userns import pin_user_namespaces

pytestmark = pytest.mark.integration

USERNS = UserNamespace(
    uids=(IdMapping(container_id=0, host_id=100000, length=65536),),
    gids=(IdMapping(container_id=0, host_id=200000, length=65536),),
)


def _mounts_under(directory: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(directory))]


def test_pinned_user_namespace_owns_the_pod_namespaces_and_idmaps_layers() -> None:
    # under /var/tmp (not pytest's tmp_path): a real disk file system, like the state dirs
    base = Path(tempfile.mkdtemp(prefix="pinnace-userns-", dir="/var/tmp"))
    try:
        ok, why = idmap.supported(base)
        assert ok, why
        user, pinned = asyncio.run(
            pin_user_namespaces(base / "ns", kinds=ALL_KINDS, userns=USERNS, hostname="pod-a")
        )
        try:
            assert is_pinned(user)
            assert all(is_pinned(p) for p in pinned.paths.values())
            net, uts = pinned.paths[NamespaceKind.NET], pinned.paths[NamespaceKind.UTS]
            script = "cat /proc/self/uid_map /proc/self/gid_map; hostname"
            inside = subprocess.run(
                ["nsenter", f"--user={user}", f"--net={net}", f"--uts={uts}", "sh", "-c",
                 script + "; ip -o link show lo"],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            words = inside.split()
            assert words[:6] == ["0", "100000", "65536", "0", "200000", "65536"]
            assert words[6] == "pod-a"
            assert ",UP," in inside  # lo is up in the pod's network namespace

            for name in ("l1", "l2", "up", "work", "merged"):
                (base / name).mkdir()
            (base / "l1" / "f").write_text("lower\n")
            m = Mount(
                "overlay",
                "overlay",
                ("index=off", f"lowerdir={base / 'l1'}:{base / 'l2'}",
                 f"upperdir={base / 'up'}", f"workdir={base / 'work'}"),
            )  # fmt: skip
            idmap.mount_idmapped_overlay(m, base / "merged", userns=user, root=USERNS.root)
            try:
                st = os.stat(base / "merged" / "f")
                assert (st.st_uid, st.st_gid) == USERNS.root  # host 0 seen as the mapped root
                assert os.stat(base / "merged").st_uid == 100000  # the upper dir, given to it
                # only the overlay is left: the scratch clones went at once
                assert _mounts_under(base / ".idmap") == []
                assert [p for p in _mounts_under(base) if "/ns/" not in p] == [str(base / "merged")]
            finally:
                unmount(base / "merged", detach=True)
        finally:
            asyncio.run(unpin(base / "ns"))
        assert _mounts_under(base) == []
        assert not (base / "ns").exists()
    finally:
        with contextlib.suppress(OSError):
            for point in reversed(_mounts_under(base)):
                unmount(Path(point), detach=True)
        shutil.rmtree(base, ignore_errors=True)


def test_idmapped_clone_is_read_only() -> None:
    base = Path(tempfile.mkdtemp(prefix="pinnace-userns-", dir="/var/tmp"))
    try:
        user, _ = asyncio.run(pin_user_namespaces(base / "ns", kinds=frozenset(), userns=USERNS))
        (base / "src").mkdir()
        (base / "dst").mkdir()
        idmap.idmapped_clone(base / "src", base / "dst", user)
        try:
            with pytest.raises(OSError, match="Read-only file system"):
                (base / "dst" / "x").write_text("no")
        finally:
            unmount(base / "dst", detach=True)
        asyncio.run(unpin(base / "ns"))
        assert _mounts_under(base) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_bind_snapshot_is_refused() -> None:
    from runtime.pods.rootfs import mount_rootfs_idmapped

    with pytest.raises(FailedPrecondition, match="overlay snapshotter"):
        mount_rootfs_idmapped(
            [Mount("bind", "/nonexistent", ("rbind", "rw"))],
            Path("/nonexistent/target"),
            userns=Path("/nonexistent/user"),
            root=(1, 1),
        )
