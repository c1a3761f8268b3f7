"""Fixtures for every test directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.iptables import hostport_chains, remove_hostport_chains


@pytest.fixture(scope="session", autouse=True)
def _firewall_as_found() -> Iterator[None]:
    """CNI's portmap plugin leaves its shared nat chains behind; remove the ones this test
    session created, so a run leaves the host's firewall as it found it."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        yield
        return
    before = hostport_chains()
    yield
    remove_hostport_chains(keep=before)
