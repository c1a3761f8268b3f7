"""User namespaces are reported only where pinnace, the OCI runtime and the host all can."""

from __future__ import annotations

from runtime.tasks import features


def test_user_namespaces_need_the_runtime_the_host_and_pinnace() -> None:
    runc = features.HandlerFeatures(
        namespaces=frozenset({"user", "net"}), known=True, host_idmapped_mounts=True
    )
    assert runc.user_namespaces is features.PINNACE_USER_NAMESPACES is True
    no_host = features.HandlerFeatures(namespaces=frozenset({"user"}), known=True)
    assert no_host.user_namespaces is False
    # a runtime that states nothing (crun 1.8: no `features` command) is not assumed to
    stated_nothing = features.HandlerFeatures(host_idmapped_mounts=True)
    assert stated_nothing.user_namespaces is False


def test_why_user_namespaces_are_unavailable_is_said() -> None:
    runc = features.HandlerFeatures(
        namespaces=frozenset({"user"}), known=True, host_idmapped_mounts=True
    )
    assert runc.user_namespaces_unavailable == ""
    native = features.HandlerFeatures(
        namespaces=frozenset({"user"}), known=True, host_idmapped_why="the native snapshotter"
    )
    assert native.user_namespaces_unavailable == "the native snapshotter"
    assert "does not state the user namespace" in (
        features.HandlerFeatures().user_namespaces_unavailable
    )
