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
