"""The layering rules of DESIGN.md, checked on the source: ``runtime`` never imports ``cri``,
grpc or protobuf; the CRI handlers never touch the kernel themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path} imports {name}")
    return found


def test_runtime_never_imports_cri_grpc_or_protobuf() -> None:
    paths = _modules("runtime")
    assert len(paths) > 20
    assert _offending(paths, ("cri", "grpc", "google.protobuf")) == []


@pytest.mark.parametrize("package", ["cri/rpc", "cri/translate", "cri/cli"])
def test_cri_handlers_do_no_kernel_work(package: str) -> None:
    paths = _modules(package)
    assert paths
    forbidden = ("ctypes", "subprocess", "runtime.mount", "runtime.sandbox.namespaces")
    assert _offending(paths, forbidden) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import grpc\nfrom cri.api.runtime.v1 import api_pb2\n")
    assert _offending([bad], ("cri", "grpc")) != []
