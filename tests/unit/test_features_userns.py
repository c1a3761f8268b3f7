"""User namespaces are reported only where pinnace and the OCI runtime both can."""

from __future__ import annotations

from runtime.tasks import features


def test_user_namespaces_need_the_runtime_and_pinnace() -> None:
    runc_1_2 = features.HandlerFeatures(
        mount_options=frozenset({"rro", "idmap"}), namespaces=frozenset({"user"}), known=True
    )
    assert runc_1_2.user_namespaces is features.PINNACE_USER_NAMESPACES
    no_idmap = features.HandlerFeatures(namespaces=frozenset({"user"}), known=True)
    assert no_idmap.user_namespaces is False
