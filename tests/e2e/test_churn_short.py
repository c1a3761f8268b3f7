"""A short pod churn (50 lifecycles, 4 clients) on a CNI bridge network that must leave every
count exactly as it found it; the 1,000-cycle soak (tests/soak) is the long form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_network import Network
from tests.support import images
from tests.support.churn import NodeCounts, churn, expected_exits
from tests.support.daemon import Pinnaced
from tests.support.push import push_image
from tests.support.registry import Registry


def churn_daemon(
    pinnaced, registry: Registry, tmp_path: Path, **daemon: Any
) -> Iterator[tuple[Pinnaced, Network, str]]:  # type: ignore[no-untyped-def]
    """A daemon (``daemon`` as the ``pinnaced`` factory takes) on a bridge network of its
    own, the churn image pulled."""
    push_image(registry.url, "test/churnbox", "v1", images.busybox_image())
    ref = f"{registry.host}/test/churnbox:v1"
    daemon = pinnaced(start=False, **daemon)
    network = Network(daemon.cni_conf_dir, tmp_path / "ipam")
    try:
        daemon.start()
        daemon.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
        yield daemon, network, ref
    finally:
        network.teardown()


@pytest.fixture
def churn_env(
    pinnaced, registry: Registry, tmp_path: Path
) -> Iterator[tuple[Pinnaced, Network, str]]:  # type: ignore[no-untyped-def]
    # the e2e default: the daemon's loop in debug mode, failing the test on a callback that
    # holds it (tests/e2e/conftest.py)
    yield from churn_daemon(pinnaced, registry, tmp_path)


def counts(daemon: Pinnaced, network: Network) -> NodeCounts:
    return NodeCounts.take(
        daemon,
        bridge=network.bridge,
        ipam_dir=network.data_dir,
        subnet_prefix=f"10.213.{network.subnet_octet}.",
        network_name=network.name,
    )


def run_and_check(daemon: Pinnaced, network: Network, ref: str, *, cycles: int, clients: int):  # type: ignore[no-untyped-def]
    # one lifecycle first, so lazily opened things (connection pools, the bridge) exist
    # before the baseline is taken
    churn(daemon, ref, cycles=1, clients=1)
    before = counts(daemon, network)
    result = churn(daemon, ref, cycles=cycles, clients=clients)
    after = counts(daemon, network)
    print()
    print(before.table(after))
    print(result.summary())
    assert result.cycles == cycles
    assert after == before
    # each pod's second container exited as its kind does, and its status says so
    assert result.exit_reasons == expected_exits(cycles), result.exit_reasons
    return result


def test_fifty_pod_lifecycles_leave_nothing(churn_env) -> None:  # type: ignore[no-untyped-def]
    daemon, network, ref = churn_env
    run_and_check(daemon, network, ref, cycles=50, clients=4)
