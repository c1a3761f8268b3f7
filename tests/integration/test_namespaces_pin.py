"""Pinned pod namespaces against the real kernel: unshare, bind mounts, nsenter, sysctls."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.errors import AlreadyExists, InvalidArgument
from runtime.sandbox.namespaces import (
    ALL_KINDS,
    NamespaceKind,
    PinnedNamespaces,
    is_pinned,
    pin_namespaces,
    run_in_namespaces,
    sysctl_namespace,
    sysctls,
    unpin,
)

pytestmark = pytest.mark.integration


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _mountinfo_mentions(path: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(str(path) in line for line in f)


@pytest.fixture
async def pinned() -> AsyncIterator[PinnedNamespaces]:
    with tempfile.TemporaryDirectory(prefix="pinnace-ns-") as tmp:
        directory = Path(tmp) / "sb" / "ns"
        try:
            yield await pin_namespaces(directory, kinds=ALL_KINDS, hostname="pod-host")
        finally:
            await unpin(directory)


async def test_pin_gives_fresh_namespaces_with_only_lo_up(pinned: PinnedNamespaces) -> None:
    assert set(pinned.paths) == set(NamespaceKind)
    for kind, path in pinned.paths.items():
        assert is_pinned(path)
        assert os.stat(path).st_ino != os.stat(f"/proc/self/ns/{kind.value}").st_ino
    out = (
        await asyncio.to_thread(
            _run, "nsenter", f"--net={pinned.paths[NamespaceKind.NET]}", "ip", "-o", "link"
        )
    ).splitlines()
    assert len(out) == 1 and ": lo:" in out[0] and "UP" in out[0].split("<")[1]


async def test_hostname_is_set_in_the_uts_namespace_only(pinned: PinnedNamespaces) -> None:
    out = await asyncio.to_thread(
        _run, "nsenter", f"--uts={pinned.paths[NamespaceKind.UTS]}", "hostname"
    )
    out = out.strip()
    assert out == "pod-host"
    assert socket.gethostname() != "pod-host"


async def test_sockets_made_in_the_netns_live_there(pinned: PinnedNamespaces) -> None:
    server = await run_in_namespaces(
        {NamespaceKind.NET: pinned.paths[NamespaceKind.NET]},
        lambda: socket.create_server(("127.0.0.1", 0)),
    )
    with server:
        port = server.getsockname()[1]
        with socket.socket() as probe:  # the host's loopback has no such listener
            assert probe.connect_ex(("127.0.0.1", port)) != 0

        def connect_inside() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"hi")
            conn, _ = server.accept()
            with conn:
                return conn.recv(2)

        assert (
            await run_in_namespaces(
                {NamespaceKind.NET: pinned.paths[NamespaceKind.NET]}, connect_inside
            )
            == b"hi"
        )


async def test_sysctls_are_written_inside_the_pod_namespaces(pinned: PinnedNamespaces) -> None:
    host_forward = _read("/proc/sys/net/ipv4/ip_forward")
    host_shm = _read("/proc/sys/kernel/shm_rmid_forced")
    new_forward = "0" if host_forward.strip() == "1" else "1"
    new_shm = "0" if host_shm.strip() == "1" else "1"
    await sysctls(
        pinned.paths, {"net.ipv4.ip_forward": new_forward, "kernel/shm_rmid_forced": new_shm}
    )
    assert _read("/proc/sys/net/ipv4/ip_forward") == host_forward
    assert _read("/proc/sys/kernel/shm_rmid_forced") == host_shm
    inside = await run_in_namespaces(
        pinned.paths,
        lambda: (
            _read("/proc/sys/net/ipv4/ip_forward").strip(),
            _read("/proc/sys/kernel/shm_rmid_forced").strip(),
        ),
    )
    assert inside == (new_forward, new_shm)


@pytest.mark.parametrize("name", ["kernel.hostname", "vm.swappiness", "kernel.pid_max", "net..x"])
def test_non_namespaced_sysctls_are_rejected(name: str) -> None:
    with pytest.raises(InvalidArgument):
        sysctl_namespace(name)


async def test_unpin_leaves_no_mounts_or_files_and_is_idempotent() -> None:
    with tempfile.TemporaryDirectory(prefix="pinnace-ns-") as tmp:
        directory = Path(tmp) / "ns"
        try:
            pinned = await pin_namespaces(directory, kinds=frozenset({NamespaceKind.NET}))
            assert list(pinned.paths) == [NamespaceKind.NET]
            with pytest.raises(AlreadyExists):
                await pin_namespaces(directory, kinds=frozenset({NamespaceKind.NET}))
            assert is_pinned(pinned.paths[NamespaceKind.NET])  # the failed attempt kept it
        finally:
            await unpin(directory)
        assert not directory.exists()
        assert not _mountinfo_mentions(directory)
        await unpin(directory)  # again: fine


async def test_failed_pin_leaves_nothing() -> None:
    with tempfile.TemporaryDirectory(prefix="pinnace-ns-") as tmp:
        directory = Path(tmp) / "ns"
        with pytest.raises(InvalidArgument):
            await pin_namespaces(directory, kinds=frozenset({NamespaceKind.NET}), hostname="x")
        with pytest.raises(InvalidArgument):
            await pin_namespaces(directory, kinds=ALL_KINDS, hostname="h" * 65)
        assert not _mountinfo_mentions(directory)
        assert not directory.exists() or not any(directory.iterdir())
