"""The CRI wire contract: generated code is fresh, every RPC is served, key fields are pinned.

The expected names and numbers below are written out from kubernetes/cri-api (runtime.v1), not
read back from our own proto, so removing or renumbering anything in proto/runtime/v1/api.proto
fails here.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from cri.api.runtime.v1 import api_pb2, api_pb2_grpc
from cri.servicers import ImageServicer, RuntimeServicer

REPO_ROOT = Path(__file__).resolve().parents[2]

RUNTIME_SERVICE_RPCS = (
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "StreamPodSandboxes",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "StreamContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "StreamContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "StreamPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
    "CheckpointContainer",
    "CheckpointPod",
    "RestorePod",
    "GetContainerEvents",
    "ListMetricDescriptors",
    "ListPodSandboxMetrics",
    "StreamPodSandboxMetrics",
    "RuntimeConfig",
    "UpdatePodSandboxResources",
)
IMAGE_SERVICE_RPCS = (
    "ListImages",
    "StreamImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
)
# Server-streaming RPCs; every other RPC is unary, and none streams from the client.
SERVER_STREAMING = frozenset(
    {
        "StreamPodSandboxes",
        "StreamContainers",
        "StreamContainerStats",
        "StreamPodSandboxStats",
        "StreamPodSandboxMetrics",
        "StreamImages",
        "GetContainerEvents",
    }
)
SERVICES = {"RuntimeService": RUNTIME_SERVICE_RPCS, "ImageService": IMAGE_SERVICE_RPCS}


def _load_gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pinnace_gen_proto", REPO_ROOT / "scripts" / "gen_proto.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen_proto() -> ModuleType:
    return _load_gen_proto()


# --- (a) drift ---------------------------------------------------------------------------


def test_checked_in_code_matches_protos(gen_proto: ModuleType) -> None:
    problems = gen_proto.check()
    assert problems == [], "\n".join(problems)


def test_drift_check_reports_edited_and_missing_files(
    gen_proto: ModuleType, tmp_path: Path
) -> None:
    shutil.copytree(REPO_ROOT / "cri" / "api", tmp_path / "cri" / "api")
    gen_proto.write(root=tmp_path)  # start from fresh code, whatever the checkout holds
    pyi = tmp_path / "cri/api/runtime/v1/api_pb2.pyi"
    pyi.write_text(pyi.read_text() + "\n# hand edit\n")
    (tmp_path / "cri/api/runtime/v1/api_pb2_grpc.py").unlink()
    (tmp_path / "cri/api/runtime/__init__.py").unlink()
    (tmp_path / "cri/api/runtime/v1/old_pb2.py").write_text("")

    problems = gen_proto.check(root=tmp_path)

    assert len(problems) == 4, problems
    assert problems[0].startswith("cri/api/runtime/v1/api_pb2.pyi: differs")
    assert "+# hand edit" not in problems[0] and "-# hand edit" in problems[0]
    assert problems[1].startswith("cri/api/runtime/v1/api_pb2_grpc.py: missing")
    assert problems[2] == "cri/api/runtime/__init__.py: missing"
    assert problems[3].startswith("cri/api/runtime/v1/old_pb2.py: generated file with no proto")


def test_generated_modules_are_named_under_cri_api() -> None:
    # Not runtime.v1: that would collide with pinnace's own top-level runtime package.
    assert api_pb2.PullImageRequest.__module__ == "cri.api.runtime.v1.api_pb2"
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"


# --- (b) services -------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_has_exactly_the_cri_rpcs(service: str) -> None:
    descriptor = api_pb2.DESCRIPTOR.services_by_name[service]
    assert descriptor.full_name == f"runtime.v1.{service}"
    assert [m.name for m in descriptor.methods] == list(SERVICES[service])


@pytest.mark.parametrize(("service", "rpc"), [(s, r) for s, rpcs in SERVICES.items() for r in rpcs])
def test_rpc_streaming_shape(service: str, rpc: str) -> None:
    method: MethodDescriptor = api_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[rpc]
    assert method.client_streaming is False
    assert method.server_streaming is (rpc in SERVER_STREAMING)


def test_stream_rpcs_are_the_server_streaming_ones() -> None:
    streamed = {name for name in RUNTIME_SERVICE_RPCS + IMAGE_SERVICE_RPCS if "Stream" in name}
    assert streamed | {"GetContainerEvents"} == SERVER_STREAMING


def test_rpc_message_types_spot_checks() -> None:
    runtime = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].methods_by_name
    image = api_pb2.DESCRIPTOR.services_by_name["ImageService"].methods_by_name
    assert runtime["GetContainerEvents"].input_type.full_name == "runtime.v1.GetEventsRequest"
    assert (
        runtime["GetContainerEvents"].output_type.full_name == "runtime.v1.ContainerEventResponse"
    )
    assert image["PullImage"].input_type.full_name == "runtime.v1.PullImageRequest"
    assert runtime["Status"].output_type.full_name == "runtime.v1.StatusResponse"


def _reporting_servicer() -> object:
    """A servicer whose every expected RPC fails with FAILED_PRECONDITION 'reached <Name>'."""

    def unary(name: str):  # type: ignore[no-untyped-def]
        async def handler(self, request, context):  # type: ignore[no-untyped-def]
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"reached {name}")

        return handler

    def streaming(name: str):  # type: ignore[no-untyped-def]
        async def handler(self, request, context):  # type: ignore[no-untyped-def]
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"reached {name}")
            yield  # pragma: no cover - makes this an async generator

        return handler

    methods = {
        rpc: (streaming if rpc in SERVER_STREAMING else unary)(rpc)
        for rpcs in SERVICES.values()
        for rpc in rpcs
    }
    return type("Reporting", (), methods)()


async def test_every_rpc_is_served_at_its_cri_path(tmp_path: Path) -> None:
    """Each CRI path reaches the servicer method of that name, with the right streaming shape."""
    target = f"unix:{tmp_path / 'cri.sock'}"
    server = grpc.aio.server()
    servicer = _reporting_servicer()
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(servicer, server)
    api_pb2_grpc.add_ImageServiceServicer_to_server(servicer, server)
    server.add_insecure_port(target)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(target) as channel:

            async def outcome(path: str, *, streaming: bool) -> tuple[grpc.StatusCode, str]:
                try:
                    if streaming:
                        async for _ in channel.unary_stream(path)(b"", timeout=10):
                            pass
                    else:
                        await channel.unary_unary(path)(b"", timeout=10)
                except grpc.aio.AioRpcError as exc:
                    return exc.code(), exc.details() or ""
                raise AssertionError(f"{path} answered OK; the servicer always aborts")

            unknown = await outcome("/runtime.v1.RuntimeService/NoSuchRpc", streaming=False)
            assert unknown[0] == grpc.StatusCode.UNIMPLEMENTED

            for service, rpcs in SERVICES.items():
                for rpc in rpcs:
                    path = f"/runtime.v1.{service}/{rpc}"
                    got = await outcome(path, streaming=rpc in SERVER_STREAMING)
                    assert got == (grpc.StatusCode.FAILED_PRECONDITION, f"reached {rpc}"), path
    finally:
        await server.stop(None)


# --- (c) field numbers kubelet depends on ------------------------------------------------


def _field(message: str, name: str) -> FieldDescriptor:
    return api_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name[name]


def _type_name(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields
            return f"map<{_type_name(key)}, {_type_name(value)}>"
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    return {
        FieldDescriptor.TYPE_STRING: "string",
        FieldDescriptor.TYPE_BYTES: "bytes",
        FieldDescriptor.TYPE_BOOL: "bool",
        FieldDescriptor.TYPE_INT32: "int32",
        FieldDescriptor.TYPE_INT64: "int64",
        FieldDescriptor.TYPE_UINT32: "uint32",
        FieldDescriptor.TYPE_UINT64: "uint64",
        FieldDescriptor.TYPE_DOUBLE: "double",
    }[field.type]


def _label(field: FieldDescriptor) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "map"
    return "repeated" if field.is_repeated else "singular"


# (message, field, number, label, type) straight from cri-api's api.proto.
PINNED_FIELDS = [
    ("PullImageRequest", "image", 1, "singular", "runtime.v1.ImageSpec"),
    ("PullImageRequest", "auth", 2, "singular", "runtime.v1.AuthConfig"),
    ("PullImageRequest", "sandbox_config", 3, "singular", "runtime.v1.PodSandboxConfig"),
    ("PullImageResponse", "image_ref", 1, "singular", "string"),
    ("PodSandboxStatusResponse", "status", 1, "singular", "runtime.v1.PodSandboxStatus"),
    ("PodSandboxStatusResponse", "info", 2, "map", "map<string, string>"),
    (
        "PodSandboxStatusResponse",
        "containers_statuses",
        3,
        "repeated",
        "runtime.v1.ContainerStatus",
    ),
    ("PodSandboxStatusResponse", "timestamp", 4, "singular", "int64"),
    ("ContainerConfig", "metadata", 1, "singular", "runtime.v1.ContainerMetadata"),
    ("ContainerConfig", "image", 2, "singular", "runtime.v1.ImageSpec"),
    ("ContainerConfig", "command", 3, "repeated", "string"),
    ("ContainerConfig", "args", 4, "repeated", "string"),
    ("ContainerConfig", "working_dir", 5, "singular", "string"),
    ("ContainerConfig", "envs", 6, "repeated", "runtime.v1.KeyValue"),
    ("ContainerConfig", "mounts", 7, "repeated", "runtime.v1.Mount"),
    ("ContainerConfig", "devices", 8, "repeated", "runtime.v1.Device"),
    ("ContainerConfig", "labels", 9, "map", "map<string, string>"),
    ("ContainerConfig", "annotations", 10, "map", "map<string, string>"),
    ("ContainerConfig", "log_path", 11, "singular", "string"),
    ("ContainerConfig", "stdin", 12, "singular", "bool"),
    ("ContainerConfig", "stdin_once", 13, "singular", "bool"),
    ("ContainerConfig", "tty", 14, "singular", "bool"),
    ("ContainerConfig", "linux", 15, "singular", "runtime.v1.LinuxContainerConfig"),
    ("ContainerConfig", "windows", 16, "singular", "runtime.v1.WindowsContainerConfig"),
    ("ContainerConfig", "CDI_devices", 17, "repeated", "runtime.v1.CDIDevice"),
    ("ContainerConfig", "stop_signal", 18, "singular", "runtime.v1.Signal"),
    ("KeyValue", "key", 1, "singular", "string"),
    ("KeyValue", "value", 2, "singular", "bytes"),
    ("StatusResponse", "status", 1, "singular", "runtime.v1.RuntimeStatus"),
    ("StatusResponse", "info", 2, "map", "map<string, string>"),
    ("StatusResponse", "runtime_handlers", 3, "repeated", "runtime.v1.RuntimeHandler"),
    ("StatusResponse", "features", 4, "singular", "runtime.v1.RuntimeFeatures"),
    ("RuntimeStatus", "conditions", 1, "repeated", "runtime.v1.RuntimeCondition"),
    ("RuntimeCondition", "type", 1, "singular", "string"),
    ("RuntimeCondition", "status", 2, "singular", "bool"),
    ("RuntimeCondition", "reason", 3, "singular", "string"),
    ("RuntimeCondition", "message", 4, "singular", "string"),
    ("ContainerStatus", "state", 3, "singular", "runtime.v1.ContainerState"),
    ("ContainerStatus", "exit_code", 7, "singular", "int32"),
    ("ContainerStatus", "image_id", 17, "singular", "string"),
    ("PodSandboxStatus", "network", 5, "singular", "runtime.v1.PodSandboxNetworkStatus"),
    ("LinuxPodSandboxConfig", "cgroup_parent", 1, "singular", "string"),
    ("Mount", "uidMappings", 6, "repeated", "runtime.v1.IDMapping"),
    (
        "ContainerEventResponse",
        "container_event_type",
        2,
        "singular",
        "runtime.v1.ContainerEventType",
    ),
]


@pytest.mark.parametrize(("message", "name", "number", "label", "type_name"), PINNED_FIELDS)
def test_pinned_field(message: str, name: str, number: int, label: str, type_name: str) -> None:
    field = _field(message, name)
    assert (field.number, _label(field), _type_name(field)) == (number, label, type_name)


PINNED_ENUMS = {
    "ContainerState": {
        "CONTAINER_CREATED": 0,
        "CONTAINER_RUNNING": 1,
        "CONTAINER_EXITED": 2,
        "CONTAINER_UNKNOWN": 3,
    },
    "PodSandboxState": {"SANDBOX_READY": 0, "SANDBOX_NOTREADY": 1},
    "NamespaceMode": {"POD": 0, "CONTAINER": 1, "NODE": 2, "TARGET": 3},
    "ContainerEventType": {
        "CONTAINER_CREATED_EVENT": 0,
        "CONTAINER_STARTED_EVENT": 1,
        "CONTAINER_STOPPED_EVENT": 2,
        "CONTAINER_DELETED_EVENT": 3,
    },
    "CgroupDriver": {"SYSTEMD": 0, "CGROUPFS": 1},
    "Protocol": {"TCP": 0, "UDP": 1, "SCTP": 2},
}


@pytest.mark.parametrize("enum", sorted(PINNED_ENUMS))
def test_pinned_enum(enum: str) -> None:
    descriptor = api_pb2.DESCRIPTOR.enum_types_by_name[enum]
    assert {v.name: v.number for v in descriptor.values} == PINNED_ENUMS[enum]


def test_signal_enum_spot_values() -> None:
    assert api_pb2.Signal.Value("SIGNAL_RUNTIME_DEFAULT") == 0
    assert api_pb2.Signal.Value("SIGNAL_SIGKILL") == 13
    assert api_pb2.Signal.Value("SIGNAL_SIGTERM") == 23
    assert api_pb2.Signal.Value("SIGNAL_SIGRTMAX") == 65


def test_wire_bytes_of_a_pull_request() -> None:
    """Hand-encoded bytes: image(1){image(1)="a"}, auth(2){username(1)="u"},
    sandbox_config(3){metadata(1){name(1)="p"}}."""
    request = api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image="a"),
        auth=api_pb2.AuthConfig(username="u"),
        sandbox_config=api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(name="p")),
    )
    expected = b"\x0a\x03\x0a\x01a" + b"\x12\x03\x0a\x01u" + b"\x1a\x05\x0a\x03\x0a\x01p"
    assert request.SerializeToString() == expected
    assert api_pb2.PullImageRequest.FromString(expected) == request


def test_env_value_carries_arbitrary_bytes() -> None:
    raw = b"\xff\x00not utf-8"
    decoded = api_pb2.KeyValue.FromString(api_pb2.KeyValue(key="K", value=raw).SerializeToString())
    assert decoded.value == raw


# --- (d) what pinnace serves -------------------------------------------------------------

# Checkpoint/restore stays UNIMPLEMENTED: criu 3.17 cannot run on these machines' kernel.
NOT_SERVED = frozenset({"CheckpointContainer", "CheckpointPod", "RestorePod"})


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_pinnace_serves_every_rpc_but_checkpoints(service: str) -> None:
    """Every CRI RPC the kubelet may call has a handler of ours (the generated base's method
    answers UNIMPLEMENTED), and checkpoint/restore does not."""
    ours = {"RuntimeService": RuntimeServicer, "ImageService": ImageServicer}[service]
    base = ours.__mro__[1]
    served = {rpc for rpc in SERVICES[service] if getattr(ours, rpc) is not getattr(base, rpc)}
    assert set(SERVICES[service]) - served == (NOT_SERVED if service == "RuntimeService" else set())
