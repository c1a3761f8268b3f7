"""``docs/architecture.md`` stays the map of the tree: every package under ``cri/`` and
``runtime/`` appears in it, and every module or package path it names exists (outside the
section on extensions still to come, which names where they will live).

A package is a directory with an ``__init__.py``. The generated code under ``cri/api/`` is one
entry (``cri/api/``): its sub-packages mirror ``proto/`` and are not listed one by one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "docs" / "architecture.md"
GENERATED = "cri/api/"

# `cri/rpc/`, `runtime/model/pods.py`, `cri/daemon.py` written as code spans in the map
_PATH = re.compile(r"`((?:cri|runtime)/[A-Za-z0-9_/]*?(?:/|\.py))`")


def packages(root: Path = ROOT) -> list[str]:
    found = []
    for top in ("cri", "runtime"):
        for init in sorted((root / top).rglob("__init__.py")):
            rel = init.parent.relative_to(root).as_posix() + "/"
            if rel in (f"{top}/",):
                continue
            if rel.startswith(GENERATED) and rel != GENERATED:
                continue
            found.append(rel)
    return found


def named_paths(text: str) -> set[str]:
    return set(_PATH.findall(text))


def missing_from_map(text: str, root: Path = ROOT) -> list[str]:
    named = named_paths(text)
    return [p for p in packages(root) if p not in named]


EXTENSIONS = "## Where extensions plug in"


def stale_in_map(text: str, root: Path = ROOT) -> list[str]:
    as_is = text.split(EXTENSIONS, 1)[0]
    return sorted(p for p in named_paths(as_is) if not (root / p).exists())


def test_every_package_is_on_the_map() -> None:
    assert len(packages()) > 15
    assert missing_from_map(MAP.read_text()) == []


def test_every_path_on_the_map_exists() -> None:
    assert stale_in_map(MAP.read_text()) == []


def test_the_map_has_its_walk_throughs() -> None:
    text = MAP.read_text()
    for heading in (
        "## Layers",
        "## Module map",
        "## Walk-through: RunPodSandbox",
        "## Walk-through: CreateContainer + StartContainer",
        "## Walk-through: PullImage",
        EXTENSIONS,
    ):
        assert heading in text


def test_the_checker_sees_a_missing_package_and_a_stale_path(tmp_path: Path) -> None:
    (tmp_path / "runtime" / "newpkg").mkdir(parents=True)
    (tmp_path / "runtime" / "newpkg" / "__init__.py").write_text("")
    (tmp_path / "cri" / "api" / "x" / "v1").mkdir(parents=True)
    (tmp_path / "cri" / "api" / "__init__.py").write_text("")
    (tmp_path / "cri" / "api" / "x" / "__init__.py").write_text("")
    (tmp_path / "cri" / "api" / "x" / "v1" / "__init__.py").write_text("")
    text = f"`cri/api/` and `runtime/gone.py`\n{EXTENSIONS}\n`runtime/coming/`"
    assert missing_from_map(text, tmp_path) == ["runtime/newpkg/"]
    assert stale_in_map(text, tmp_path) == ["runtime/gone.py"]
