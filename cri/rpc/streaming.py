"""Exec, Attach and PortForward: validate, then answer with a URL on the streaming server.

The work happens when a client connects to that URL (``cri/streaming``); these handlers only
check the request against what is true now (the container runs, the pod is ready) and issue
a single-use token for it.
"""

from __future__ import annotations

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc import resolve
from cri.rpc.containers import require_command
from cri.rpc.deps import Deps
from cri.streaming.requests import (
    AttachRequest,
    ExecRequest,
    PortForwardRequest,
    StreamingEndpoint,
)
from cri.streaming.tokens import RequestKind
from runtime.errors import FailedPrecondition, Unavailable
from runtime.model.pods import ContainerState, SandboxState


def _endpoint(deps: Deps) -> StreamingEndpoint:
    if deps.streaming is None:
        raise Unavailable("the streaming server is not running")
    return deps.streaming


def _running_container_id(deps: Deps, text: str, what: str) -> str:
    container = resolve.require_container(deps, text)
    if container.state != ContainerState.RUNNING:
        raise FailedPrecondition(
            f"{what}: container {container.id} is {container.state.value}, not running"
        )
    return container.id


async def exec_(deps: Deps, request: pb.ExecRequest) -> pb.ExecResponse:
    endpoint = _endpoint(deps)
    container_id = _running_container_id(deps, request.container_id, "Exec")
    req = ExecRequest(
        container_id=container_id,
        cmd=tuple(require_command(request.cmd, "Exec", may_be_empty=True)),
        tty=request.tty,
        stdin=request.stdin,
        stdout=request.stdout,
        stderr=request.stderr,
    )
    return pb.ExecResponse(url=endpoint.url_for(RequestKind.EXEC, req))


async def attach(deps: Deps, request: pb.AttachRequest) -> pb.AttachResponse:
    endpoint = _endpoint(deps)
    container_id = _running_container_id(deps, request.container_id, "Attach")
    req = AttachRequest(
        container_id=container_id,
        tty=request.tty,
        stdin=request.stdin,
        stdout=request.stdout,
        stderr=request.stderr,
    )
    return pb.AttachResponse(url=endpoint.url_for(RequestKind.ATTACH, req))


async def port_forward(deps: Deps, request: pb.PortForwardRequest) -> pb.PortForwardResponse:
    endpoint = _endpoint(deps)
    sandbox = resolve.require_sandbox(deps, request.pod_sandbox_id)
    if sandbox.state != SandboxState.READY:
        raise FailedPrecondition(f"PortForward: pod sandbox {sandbox.id} is not ready")
    req = PortForwardRequest(
        sandbox_id=sandbox.id,
        netns=sandbox.namespace_paths.get("net", ""),
        ports=tuple(request.port),
    )
    return pb.PortForwardResponse(url=endpoint.url_for(RequestKind.PORTFORWARD, req))
