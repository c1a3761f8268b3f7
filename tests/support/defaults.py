"""Names and credentials the e2e fixtures use, importable by tests (conftest is not)."""

from __future__ import annotations

from tests.support.push import RegistryAuth

BUSYBOX_REPO = "test/busybox"
BUSYBOX_TAG = "1.35"
TLS_USER = ("alice", "alice-secret")  # htpasswd user of the ``tls_registry`` fixture
TOKEN_USER = ("bob", "bob-secret")  # token-issuer user of the ``token_registry`` fixture


def tls_auth() -> RegistryAuth:
    """Credentials for the ``tls_registry`` fixture."""
    return RegistryAuth(*TLS_USER)


def token_auth() -> RegistryAuth:
    """Credentials for the ``token_registry`` fixture."""
    return RegistryAuth(*TOKEN_USER)
