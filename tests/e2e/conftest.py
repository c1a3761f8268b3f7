"""Fixtures for end-to-end tests: real registries, test images and real pinnaced daemons.

Every test in this directory is skipped (with the reason) when the machine lacks what they need:
root, docker-registry, htpasswd, runc, conmon, busybox-static. Under ``CI=true`` a missing
prerequisite is an error instead, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import images
from tests.support.daemon import Pinnaced, hosts_toml
from tests.support.defaults import BUSYBOX_REPO, BUSYBOX_TAG, TLS_USER, TOKEN_USER
from tests.support.images import Image
from tests.support.pki import TestCA
from tests.support.push import push_image
from tests.support.registry import Registry
from tests.support.token_issuer import TokenIssuer

_TOOLS = {
    "docker-registry": "/usr/bin/docker-registry",
    "htpasswd": "/usr/bin/htpasswd",
    "runc": "runc",
    "conmon": "conmon",
    "busybox": "/bin/busybox",
}


def _missing_prerequisites() -> list[str]:
    missing = [f"{name} ({where})" for name, where in _TOOLS.items() if not shutil.which(where)]
    if os.geteuid() != 0:
        missing.insert(0, "root (euid is not 0)")
    return missing


_MISSING = _missing_prerequisites()
if _MISSING and os.environ.get("CI", "").lower() == "true":
    raise pytest.UsageError(
        "e2e prerequisites missing under CI=true: " + ", ".join(_MISSING)
    )  # CI installs these; a skip there would hide a broken setup

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
            if _MISSING:
                item.add_marker(
                    pytest.mark.skip(reason="e2e prerequisites missing: " + ", ".join(_MISSING))
                )


_DAEMONS = pytest.StashKey[list[Pinnaced]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the last 100 lines of each daemon's log to a failed test's report."""
    report = yield
    daemons: list[Pinnaced] = item.stash.get(_DAEMONS, [])
    if report.failed and report.when in ("setup", "call"):
        for n, daemon in enumerate(daemons):
            report.sections.append(
                (f"pinnaced[{n}] log {daemon.log_path} (last 100 lines)", daemon.log_tail(100))
            )
    return report


# -- registries --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A plain-HTTP docker-registry without auth."""
    with Registry.plain() as reg:
        yield reg


@pytest.fixture(scope="session")
def tls_registry(test_ca: TestCA) -> Iterator[Registry]:
    """HTTPS (certificate from ``test_ca``) with htpasswd Basic auth for ``TLS_USER``."""
    with Registry.basic_auth(test_ca, dict([TLS_USER])) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_issuer(test_ca: TestCA) -> Iterator[TokenIssuer]:
    with TokenIssuer(test_ca, users=dict([TOKEN_USER])) as issuer:
        yield issuer


@pytest.fixture(scope="session")
def token_registry(token_issuer: TokenIssuer) -> Iterator[Registry]:
    """Plain HTTP with Bearer-token auth issued by ``token_issuer`` for ``TOKEN_USER``."""
    with Registry.token_auth(token_issuer) as reg:
        yield reg


# -- images ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def busybox_image() -> Image:
    """The single-platform (amd64, OCI, gzip) busybox image, built once per session."""
    return images.busybox_image()


@pytest.fixture(scope="session")
def pushed_busybox(registry: Registry, busybox_image: Image) -> str:
    """The busybox image pushed to ``registry``; returns ``<host>/test/busybox:1.35``."""
    push_image(registry.url, BUSYBOX_REPO, BUSYBOX_TAG, busybox_image)
    return f"{registry.host}/{BUSYBOX_REPO}:{BUSYBOX_TAG}"


# -- daemons -----------------------------------------------------------------------------
PinnacedFactory = Callable[..., Pinnaced]

# Every daemon runs its loop in asyncio debug mode, timed by cri/loopwatch.py; a callback that
# holds the loop longer than this (time its thread waited for a CPU not counted, so a loaded
# machine does not trip it) fails the test at teardown: blocking work belongs in threads.
# PINNACE_E2E_SLOW_CALLBACK_MS=0 turns it off; PINNACE_E2E_SLOW_CALLBACK_ENFORCE=0 only logs.
SLOW_CALLBACK_MS = int(os.environ.get("PINNACE_E2E_SLOW_CALLBACK_MS", "100"))
_ENFORCE_SLOW_CALLBACKS = os.environ.get("PINNACE_E2E_SLOW_CALLBACK_ENFORCE", "1") != "0"


@pytest.fixture
def pinnaced(
    request: pytest.FixtureRequest, tmp_path: Path, registry: Registry
) -> Iterator[PinnacedFactory]:
    """A factory: ``pinnaced(**kwargs)`` starts a daemon (kwargs as :class:`Pinnaced`, plus
    ``start=False`` to only build it). Its hosts dir already routes the plain ``registry``
    over HTTP. Every daemon is stopped and its leftovers removed at teardown."""
    daemons: list[Pinnaced] = []
    request.node.stash[_DAEMONS] = daemons

    def make(*, start: bool = True, **kwargs: Any) -> Pinnaced:
        base = tmp_path / f"pinnaced{len(daemons)}"
        base.mkdir()
        hosts_dir = kwargs.pop("registry_hosts_dir", None) or base / "certs.d"
        hosts_toml(hosts_dir, registry.host, plain_http=True)
        kwargs.setdefault("slow_callback_ms", SLOW_CALLBACK_MS)
        daemon = Pinnaced(base, registry_hosts_dir=hosts_dir, **kwargs)
        daemons.append(daemon)
        return daemon.start() if start else daemon

    yield make
    for daemon in daemons:
        daemon.close()
    slow = [f"pinnaced[{n}] {cb}" for n, d in enumerate(daemons) for cb in d.slow_callbacks()]
    if slow and _ENFORCE_SLOW_CALLBACKS:
        pytest.fail(
            f"callbacks held the event loop longer than {SLOW_CALLBACK_MS} ms:\n" + "\n".join(slow),
            pytrace=False,
        )
