"""1,000 pod lifecycles from 8 clients on a CNI bridge network (two containers each, one exec,
mixed clean exits, crashes and OOM kills): every count of what a pod leaves on the node is the
same after as before (printed side by side), pinnaced's RSS after the run is within 10% of its
RSS after the first 100 cycles, and pods/s and the List latency during the churn are printed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_churn_short import churn_daemon, run_and_check
from tests.e2e.test_network import Network
from tests.support.daemon import Pinnaced
from tests.support.registry import Registry

CYCLES = int(os.environ.get("PINNACE_SOAK_CYCLES", "1000"))


@pytest.fixture
def soak_env(
    pinnaced, registry: Registry, tmp_path: Path
) -> Iterator[tuple[Pinnaced, Network, str]]:  # type: ignore[no-untyped-def]
    # The daemon as it ships: its loop not in asyncio's debug mode, which the e2e suite turns
    # on to catch callbacks that hold the loop (the 50-cycle churn keeps it) and which times
    # every callback: with it the soak measured the debug mode's cost, not the daemon's.
    yield from churn_daemon(pinnaced, registry, tmp_path, slow_callback_ms=0)


def test_a_thousand_pod_lifecycles_leave_nothing_and_memory_stays_flat(soak_env) -> None:  # type: ignore[no-untyped-def]
    daemon, network, ref = soak_env
    result = run_and_check(daemon, network, ref, cycles=CYCLES, clients=8)
    assert result.rss_end <= result.rss_after_first * 1.10, result.summary()
