"""1,000 pod lifecycles from 8 clients on a CNI bridge network (two containers each, one exec,
mixed clean exits, crashes and OOM kills): every count of what a pod leaves on the node is the
same after as before (printed side by side), pinnaced's RSS after the run is within 10% of its
RSS after the first 100 cycles, and pods/s and the List latency during the churn are printed."""

from __future__ import annotations

import os

from tests.e2e.test_churn_short import churn_env, run_and_check  # noqa: F401 - fixture

CYCLES = int(os.environ.get("PINNACE_SOAK_CYCLES", "1000"))


def test_a_thousand_pod_lifecycles_leave_nothing_and_memory_stays_flat(churn_env) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    daemon, network, ref = churn_env
    result = run_and_check(daemon, network, ref, cycles=CYCLES, clients=8)
    assert result.rss_end <= result.rss_after_first * 1.10, result.summary()
