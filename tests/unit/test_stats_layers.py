"""Writable-layer accounting: resumable walks under a file budget, on real directories."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

from runtime.stats.layers import LayerUsageTable, LayerWalk, WritableLayers
from runtime.stats.walker import serve


def _tree(top: Path, *, files: int, size: int = 0) -> None:
    top.mkdir(parents=True)
    for n in range(files):
        sub = top / f"d{n % 5}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{n}").write_bytes(b"x" * size)


def _walk_fully(top: Path) -> tuple[int, int]:
    walk = LayerWalk(top)
    while not walk.done:
        walk.step(7)
    r = walk.result()
    return r.used_bytes, r.inodes


def test_walk_counts_inodes_and_allocated_bytes(tmp_path: Path) -> None:
    _tree(tmp_path / "l", files=23, size=10_000)
    used, inodes = _walk_fully(tmp_path / "l")
    assert inodes == 23 + 5  # the files and their five directories (not the top itself)
    assert used >= 23 * 10_000


def test_hard_links_count_once(tmp_path: Path) -> None:
    top = tmp_path / "l"
    top.mkdir()
    (top / "a").write_bytes(b"y" * 8192)
    os.link(top / "a", top / "b")
    _used, inodes = _walk_fully(top)
    assert inodes == 1


def test_a_walk_resumes_where_its_budget_ran_out(tmp_path: Path) -> None:
    _tree(tmp_path / "l", files=40)
    walk = LayerWalk(tmp_path / "l")
    assert walk.step(10) == 10
    assert not walk.done
    steps = 1
    while not walk.done:
        assert walk.step(10) <= 10
        steps += 1
    assert steps >= 4 and walk.result().inodes == 45


def test_refresh_spends_at_most_its_budget_and_publishes_only_complete_walks(
    tmp_path: Path,
) -> None:
    _tree(tmp_path / "big", files=300)
    _tree(tmp_path / "small", files=3, size=5000)
    table = LayerUsageTable()
    layers = {"big": tmp_path / "big", "small": tmp_path / "small"}
    refreshes = 0
    while table.get("big") is None:
        assert table.refresh(layers, file_budget=50) <= 50
        refreshes += 1
        assert refreshes < 100
    assert refreshes >= 6  # 300 files cannot be examined in fewer 50-entry refreshes
    big, small = table.get("big"), table.get("small")
    assert big is not None and big.inodes == 305
    assert small is not None and small.inodes == 6 and small.used_bytes >= 15_000


def test_refresh_forgets_containers_no_longer_listed(tmp_path: Path) -> None:
    _tree(tmp_path / "a", files=2)
    table = LayerUsageTable()
    table.refresh({"a": tmp_path / "a"}, file_budget=1000)
    assert table.get("a") is not None
    table.refresh({}, file_budget=1000)
    assert table.get("a") is None


def test_a_vanished_directory_measures_as_empty(tmp_path: Path) -> None:
    table = LayerUsageTable()
    table.refresh({"gone": tmp_path / "nowhere"}, file_budget=100)
    usage = table.get("gone")
    assert usage is not None and (usage.used_bytes, usage.inodes) == (0, 0)


def _component(tmp_path: Path, *, in_process: bool) -> int:
    async def scenario() -> int:
        layers = WritableLayers(
            source=lambda: {"c1": "key1"},
            locate=lambda key: tmp_path / "l" if key == "key1" else None,
            interval=3600,
            file_budget=1000,
            in_process=in_process,
        )
        async with layers:
            assert layers.usage("c2") is None  # unknown: asks for a refresh, never waits
            await asyncio.wait_for(layers.next_refresh(), timeout=30)
            usage = layers.usage("c1")
            assert usage is not None
            assert layers.total() == (usage.used_bytes, usage.inodes)
            return usage.inodes

    return asyncio.run(scenario())


def test_component_measures_in_its_walker_process_and_stops(tmp_path: Path) -> None:
    _tree(tmp_path / "l", files=4, size=4096)
    assert _component(tmp_path, in_process=False) == 8  # four files in four directories


def test_component_can_walk_on_a_thread(tmp_path: Path) -> None:
    _tree(tmp_path / "l", files=4, size=4096)
    assert _component(tmp_path, in_process=True) == 8


def test_walker_protocol_answers_each_request_line(tmp_path: Path) -> None:
    _tree(tmp_path / "l", files=3, size=100)
    out = io.StringIO()
    request = json.dumps({"budget": 1000, "layers": {"c1": str(tmp_path / "l")}})
    serve([request + "\n", "\n"], out)
    (line,) = out.getvalue().splitlines()
    used, inodes, stamp = json.loads(line)["usage"]["c1"]
    assert inodes == 6 and used > 0 and stamp > 0
