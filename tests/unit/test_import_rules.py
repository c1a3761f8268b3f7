"""The layering rules of DESIGN.md, checked on the source: ``runtime`` never imports ``cri``,
grpc or protobuf; the CRI handlers never touch the kernel themselves; inside ``runtime``,
dependencies point downward (``docs/architecture.md``, "Layers"): value types live in
``runtime.model`` and ``runtime.ocispec``, below every layer that speaks them."""

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


# package -> what it must never import (the layers above or beside it)
_DOWNWARD = {
    # the spec builder works on value types, never on the pod or image layer
    "runtime/oci": ("runtime.pods", "runtime.images", "runtime.tasks", "runtime.sandbox"),
    # the registry client speaks OCI vocabulary (runtime.ocispec), not the image layer's
    "runtime/distribution": ("runtime.images", "runtime.pods", "runtime.content"),
    # value types depend on nothing but errors and each other
    "runtime/model": (
        "runtime.pods",
        "runtime.images",
        "runtime.oci",
        "runtime.tasks",
        "runtime.events",
        "runtime.network",
        "runtime.sandbox",
    ),
    # events carry value types; they do not reach into the layers that publish them
    "runtime/events": ("runtime.pods", "runtime.images", "runtime.network", "runtime.tasks"),
}


@pytest.mark.parametrize("package", sorted(_DOWNWARD))
def test_runtime_dependencies_point_downward(package: str) -> None:
    paths = _modules(package)
    assert paths
    assert _offending(paths, _DOWNWARD[package]) == []


def test_ocispec_is_at_the_bottom() -> None:
    allowed = {"runtime.errors"}
    found = {n for n in _imports(ROOT / "runtime" / "ocispec.py") if n.startswith("runtime")}
    assert found <= allowed


def _store_reaches(path: Path) -> list[str]:
    """``<anything>.pods.store`` / ``<anything>.images.store`` chains: a handler reaching past
    the service into its store."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "store"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr in ("pods", "images")
        ):
            found.append(f"{path}:{node.lineno} reads .{node.value.attr}.store")
    return found


@pytest.mark.parametrize("package", ["cri/rpc", "cri/translate", "cri/nri", "cri"])
def test_handlers_read_through_the_services_not_their_stores(package: str) -> None:
    """Handlers, NRI's view of the pods and the daemon's metrics read records through
    ``PodService`` / ``ImageService``; only the composition root holds the stores (by its own
    names, never through a service)."""
    paths = _modules(package)
    assert paths
    assert [hit for path in paths for hit in _store_reaches(path)] == []


def test_the_store_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(deps):\n    return deps.pods.store.containers.all()\n")
    assert _store_reaches(bad) != []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import grpc\nfrom cri.api.runtime.v1 import api_pb2\n")
    assert _offending([bad], ("cri", "grpc")) != []


#: What the CLI may import of this repository besides itself and the generated client: pure
#: modules the daemon shares, each importing nothing but the standard library and each other
#: (checked below).
CLI_SHARED_PURE = (
    "cri.wire",
    "runtime.errors",
    "runtime.units",
    # the sans-IO SPDY code the streaming CLI drives from the client side
    "cri.streaming.spdy.errors",
    "cri.streaming.spdy.headers",
    "cri.streaming.spdy.frames",
    "cri.streaming.spdy.session",
)


def _first_party(name: str) -> bool:
    return name.split(".")[0] in ("cri", "runtime", "tests")


def _cli_offences(paths: list[Path]) -> list[str]:
    allowed = ("cri.api", "cri.cli", "cri.doctor", *CLI_SHARED_PURE)
    found = []
    for path in paths:
        for name in sorted(_imports(path)):
            if _first_party(name) and not any(
                name == a or name.startswith(a + ".") for a in allowed
            ):
                found.append(f"{path} imports {name}")
    return found


def test_cli_is_a_client_of_the_daemon() -> None:
    """The CLI imports nothing of the server side: only the generated client, itself, and the
    listed pure shared modules."""
    paths = _modules("cri/cli")
    assert len(paths) > 5
    assert _cli_offences(paths) == []


def test_the_doctors_probes_use_no_server_code() -> None:
    """``cri/doctor`` (host probes that run ``runc --version``) is the CLI's too."""
    assert _cli_offences(_modules("cri/doctor")) == []


@pytest.mark.parametrize("module", CLI_SHARED_PURE)
def test_modules_the_cli_shares_are_pure(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    imported = [n for n in _imports(path) if _first_party(n) or n.split(".")[0] == "grpc"]
    assert [n for n in imported if n not in CLI_SHARED_PURE] == []


def test_the_cli_checker_sees_a_server_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from cri.config import load\nfrom runtime.images.store import ImageStore\n")
    assert len(_cli_offences([bad])) == 2


def test_the_test_nri_plugins_share_no_protocol_code_with_the_server() -> None:
    # issue 11: one misreading of the protocol must not hide in both sides, so the plugins the
    # e2e tests and bench_nri run have their own framing, ttrpc and protobuf code
    paths = [ROOT / "tests/support/nri_plugin.py", ROOT / "tests/support/nri_noop.py"]
    forbidden = ("cri", "runtime", "google.protobuf", "grpc")
    assert _offending(paths, forbidden) == []
