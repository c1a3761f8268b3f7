"""A pod's interface counters from the real kernel: through a process in the namespace, and
through the pinned namespace file when no process is in it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.sandbox.namespaces import NamespaceKind, PinnedNamespaces, pin_namespaces, unpin
from runtime.stats.netdev import read_pod_interfaces

pytestmark = pytest.mark.integration


@pytest.fixture
async def pinned() -> AsyncIterator[PinnedNamespaces]:
    with tempfile.TemporaryDirectory(prefix="pinnace-netdev-") as tmp:
        directory = Path(tmp) / "ns"
        try:
            yield await pin_namespaces(directory, kinds=frozenset({NamespaceKind.NET}))
        finally:
            await unpin(directory)


def test_the_daemons_own_namespace_is_read_through_its_own_pid() -> None:
    own = read_pod_interfaces(Path("/proc/self/ns/net"), [os.getpid()])
    assert own is not None
    assert "lo" not in [i.name for i in own]
    # the host's interfaces change as other tests make veths: only loopback is certain
    assert own and all(i.name for i in own)


async def test_a_pinned_namespace_without_processes_is_read_through_its_file(
    pinned: PinnedNamespaces,
) -> None:
    netns = pinned.paths[NamespaceKind.NET]
    # a pid that is not in the pod's namespace is refused, so the file is used: only lo
    # exists there and loopback is left out
    assert read_pod_interfaces(netns, [os.getpid()]) == []
    assert read_pod_interfaces(Path("/nonexistent/netns"), []) is None
