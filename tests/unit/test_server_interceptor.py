"""The interceptor's error mapping: an RPC the servicer does not define is UNIMPLEMENTED; a
``NotImplementedError`` raised by our own code is a bug (INTERNAL, logged); a deliberate
``runtime.errors.Unimplemented`` keeps its message; an answer already serialized goes out as
it is. Through a real grpc.aio server."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from cri.api.runtime.v1 import api_pb2 as pb
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc
from cri.metrics import Metrics
from cri.server import build_server, not_served
from runtime.errors import Unimplemented


def _helper_not_written_yet() -> None:
    raise NotImplementedError("a code path somebody forgot")


class _Servicer(pb_grpc.RuntimeServiceServicer):
    """Version has a bug; RuntimeConfig is a known gap; Status is not defined at all;
    ListContainers answers with bytes already serialized, ListPodSandbox with a message."""

    async def ListContainers(self, request: Any, context: Any) -> bytes:
        return pb.ListContainersResponse(containers=[pb.Container(id="c1")]).SerializeToString()

    async def ListPodSandbox(self, request: Any, context: Any) -> pb.ListPodSandboxResponse:
        return pb.ListPodSandboxResponse(items=[pb.PodSandbox(id="p1")])

    async def Version(self, request: Any, context: Any) -> pb.VersionResponse:
        _helper_not_written_yet()
        return pb.VersionResponse()

    async def RuntimeConfig(self, request: Any, context: Any) -> pb.RuntimeConfigResponse:
        raise Unimplemented("RuntimeConfig: cgroup driver reporting is not built")

    async def GetContainerEvents(
        self, request: Any, context: Any
    ) -> AsyncIterator[pb.ContainerEventResponse]:
        _helper_not_written_yet()
        yield pb.ContainerEventResponse()


@pytest.fixture
async def stub() -> AsyncIterator[pb_grpc.RuntimeServiceStub]:
    server = build_server(Metrics())
    pb_grpc.add_RuntimeServiceServicer_to_server(_Servicer(), server)
    with tempfile.TemporaryDirectory(prefix="pint-", dir="/tmp") as tmp:
        target = f"unix:{Path(tmp) / 'cri.sock'}"
        server.add_insecure_port(target)
        await server.start()
        try:
            async with aio.insecure_channel(target) as channel:
                yield pb_grpc.RuntimeServiceStub(channel)
        finally:
            await server.stop(None)


async def test_an_rpc_the_servicer_does_not_define_is_unimplemented(
    stub: pb_grpc.RuntimeServiceStub,
) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.Status(pb.StatusRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "Status" in (raised.value.details() or "")


async def test_a_not_implemented_error_from_our_code_is_internal_and_logged(
    stub: pb_grpc.RuntimeServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="cri.server"):
        with pytest.raises(aio.AioRpcError) as raised:
            await stub.Version(pb.VersionRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "a code path somebody forgot" in (raised.value.details() or "")
    assert any("Version" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_the_same_bug_in_a_stream_is_internal(stub: pb_grpc.RuntimeServiceStub) -> None:
    call = stub.GetContainerEvents(pb.GetEventsRequest(), timeout=10)
    with pytest.raises(aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.INTERNAL


async def test_a_deliberate_unimplemented_keeps_its_message(
    stub: pb_grpc.RuntimeServiceStub,
) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.RuntimeConfig(pb.RuntimeConfigRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert raised.value.details() == "RuntimeConfig: cgroup driver reporting is not built"


async def test_an_answer_in_bytes_goes_out_as_they_are_and_a_message_is_serialized(
    stub: pb_grpc.RuntimeServiceStub,
) -> None:
    containers = await stub.ListContainers(pb.ListContainersRequest(), timeout=10)
    assert [c.id for c in containers.containers] == ["c1"]
    pods = await stub.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10)
    assert [p.id for p in pods.items] == ["p1"]


def test_not_served_tells_the_generated_base_from_a_bug() -> None:
    base = pb_grpc.RuntimeServiceServicer()

    class Context:
        def set_code(self, code: Any) -> None: ...
        def set_details(self, details: str) -> None: ...

    with pytest.raises(NotImplementedError) as generated:
        base.Status(pb.StatusRequest(), Context())
    with pytest.raises(NotImplementedError) as ours:
        _helper_not_written_yet()
    assert not_served(generated.value)
    assert not not_served(ours.value)
    assert not not_served(ValueError("x"))
