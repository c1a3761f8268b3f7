"""A plugin registering with a node too large for one Synchronize message: the adaptation
over real pod controllers (tests/support/pods.py) and the independent scripted plugin of
tests/support/nri_plugin.py on a real unix socket, with the chunk limit made small."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from cri.nri import plugin as nri_plugin
from cri.nri.adaptation import Adaptation, NriSettings
from cri.nri.view import PodServiceView
from tests.support.nri_plugin import ScriptedPlugin
from tests.support.pods import PodLayer


async def test_a_large_node_is_synchronized_in_chunks_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nri_plugin, "_SYNC_CHUNK_BYTES", 4000)
    layer = PodLayer.build(tmp_path)
    try:
        pods, ctrs = [], []
        for i in range(8):
            sandbox = await layer.sandboxes.run(layer.host_pod(f"pod{i}"))
            pods.append(f"pod{i}")
            for j in range(2):
                await layer.containers.create(sandbox.id, layer.container(f"c{i}-{j}"))
                ctrs.append(f"c{i}-{j}")
        with tempfile.TemporaryDirectory(prefix="nri-") as short:  # unix socket path limit
            sock = Path(short) / "nri.sock"
            adaptation = Adaptation(
                NriSettings(
                    runtime_name="pinnace",
                    runtime_version="test",
                    socket_path=sock,
                    plugin_path=None,
                    plugin_config_path=None,
                )
            )
            adaptation.bind(PodServiceView(layer.service))
            async with adaptation:
                plugin = ScriptedPlugin(str(sock), name="census", index="10")
                try:
                    await asyncio.to_thread(plugin.start)
                    assert plugin.sync_requests > 2
                    assert plugin.synced is not None
                    assert sorted(plugin.synced[0]) == sorted(pods)
                    assert sorted(plugin.synced[1]) == sorted(ctrs)
                finally:
                    await asyncio.to_thread(plugin.close)
    finally:
        layer.close()
