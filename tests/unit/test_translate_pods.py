"""cri.translate.pods: PodSandboxConfig -> SandboxConfig and sandboxes -> status messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.translate import containers, pods
from runtime.errors import InvalidArgument
from runtime.model.network import DnsConfig, PortMapping, PortProtocol
from runtime.model.pods import (
    IdMapping,
    NamespaceMode,
    NamespaceOptions,
    PodMetadata,
    ProfileType,
    Resources,
    Sandbox,
    SandboxConfig,
    SandboxState,
    SecurityContext,
    SecurityProfile,
)


def full_config() -> pb.PodSandboxConfig:
    msg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid="u-1", namespace="default", attempt=2),
        hostname="web-0",
        log_directory="/var/log/pods/default_web_u-1",
        dns_config=pb.DNSConfig(
            servers=["10.0.0.10"], searches=["svc.cluster.local"], options=["ndots:5"]
        ),
        port_mappings=[
            pb.PortMapping(protocol=pb.UDP, container_port=53, host_port=5353, host_ip="127.0.0.1"),
            pb.PortMapping(protocol=pb.SCTP, container_port=80),
        ],
        labels={"app": "web"},
        annotations={"note": "x"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent="/kubepods/pod-u-1",
            sysctls={"net.ipv4.ip_forward": "1"},
            overhead=pb.LinuxContainerResources(cpu_shares=10),
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=1 << 20),
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD),
                readonly_rootfs=True,
                supplemental_groups=[5, 6],
                supplemental_groups_policy=pb.Strict,
                privileged=True,
                seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
                apparmor=pb.SecurityProfile(
                    profile_type=pb.SecurityProfile.Localhost, localhost_ref="my-profile"
                ),
            ),
        ),
    )
    msg.linux.security_context.run_as_user.value = 0
    msg.linux.security_context.run_as_group.value = 7
    return msg


def test_sandbox_config_reads_every_field() -> None:
    cfg = pods.sandbox_config(full_config(), runtime_handler="crun")
    assert cfg.metadata == PodMetadata(name="web", uid="u-1", namespace="default", attempt=2)
    assert cfg.hostname == "web-0"
    assert cfg.log_directory == "/var/log/pods/default_web_u-1"
    assert cfg.dns == DnsConfig(
        servers=("10.0.0.10",), searches=("svc.cluster.local",), options=("ndots:5",)
    )
    assert cfg.port_mappings == (
        PortMapping(PortProtocol.UDP, 53, 5353, "127.0.0.1"),
        PortMapping(PortProtocol.SCTP, 80, 0),
    )
    assert cfg.labels == {"app": "web"}
    assert cfg.annotations == {"note": "x"}
    assert cfg.cgroup_parent == "/kubepods/pod-u-1"
    assert cfg.sysctls == {"net.ipv4.ip_forward": "1"}
    assert cfg.overhead == Resources(cpu_shares=10)
    assert cfg.resources == Resources(memory_limit_in_bytes=1 << 20)
    assert cfg.runtime_handler == "crun"
    sc = cfg.security
    assert sc.namespaces == NamespaceOptions(
        network=NamespaceMode.NODE, pid=NamespaceMode.CONTAINER, ipc=NamespaceMode.POD
    )
    assert sc.run_as_user == 0  # a set zero is root, not "unset"
    assert sc.run_as_group == 7
    assert sc.readonly_rootfs is True
    assert sc.supplemental_groups == (5, 6)
    assert sc.privileged is True
    assert sc.seccomp == SecurityProfile(ProfileType.RUNTIME_DEFAULT)
    assert sc.apparmor == SecurityProfile(ProfileType.LOCALHOST, "my-profile")


def test_sandbox_config_round_trips_through_pb() -> None:
    msg = full_config()
    cfg = pods.sandbox_config(msg, runtime_handler="runc")
    again = pods.sandbox_config_to_pb(cfg)
    assert again == msg
    assert pods.sandbox_config(again, runtime_handler="runc") == cfg


def test_minimal_config_defaults() -> None:
    msg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="a", uid="b", namespace="c"))
    cfg = pods.sandbox_config(msg, runtime_handler="")
    assert cfg.dns is None
    assert cfg.overhead is None and cfg.resources is None
    sc = cfg.security
    assert sc.run_as_user is None and sc.run_as_group is None
    # Absent namespace options read as the proto's zeros: POD for everything (containerd too).
    assert sc.namespaces == NamespaceOptions(
        NamespaceMode.POD, NamespaceMode.POD, NamespaceMode.POD
    )
    assert sc.seccomp.type is ProfileType.UNCONFINED
    assert sc.apparmor.type is ProfileType.RUNTIME_DEFAULT


@pytest.mark.parametrize("field", ["name", "uid", "namespace"])
def test_metadata_fields_are_required(field: str) -> None:
    md = pb.PodSandboxMetadata(name="a", uid="b", namespace="c")
    setattr(md, field, "")
    with pytest.raises(InvalidArgument, match=f"metadata.{field} is empty"):
        pods.sandbox_config(pb.PodSandboxConfig(metadata=md), runtime_handler="")


def test_missing_metadata_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match=r"metadata\.name is empty"):
        pods.sandbox_config(pb.PodSandboxConfig(), runtime_handler="")


def _with(**kwargs: Any) -> pb.PodSandboxConfig:
    msg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="a", uid="b", namespace="c"), **kwargs
    )
    return msg


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        (pb.PortMapping(container_port=0), r"port_mappings\[0\].container_port 0"),
        (pb.PortMapping(container_port=70000), r"port_mappings\[0\].container_port 70000"),
        (pb.PortMapping(container_port=80, host_port=-1), r"port_mappings\[0\].host_port -1"),
        (pb.PortMapping(container_port=80, host_port=65536), r"host_port 65536"),
        (pb.PortMapping(protocol=9, container_port=80), r"port_mappings\[0\].protocol"),  # type: ignore[arg-type]
        (pb.PortMapping(container_port=80, host_ip="nope"), r"port_mappings\[0\].host_ip"),
    ],
)
def test_bad_port_mappings(mapping: pb.PortMapping, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        pods.sandbox_config(_with(port_mappings=[mapping]), runtime_handler="")


def test_port_edges_are_accepted() -> None:
    cfg = pods.sandbox_config(
        _with(port_mappings=[pb.PortMapping(container_port=65535, host_port=65535)]),
        runtime_handler="",
    )
    assert cfg.port_mappings[0].container_port == 65535


def test_relative_log_directory_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="log_directory"):
        pods.sandbox_config(_with(log_directory="logs"), runtime_handler="")


def _security(**kwargs: Any) -> pb.PodSandboxConfig:
    return _with(
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(**kwargs))
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("runtime/default", SecurityProfile(ProfileType.RUNTIME_DEFAULT)),
        ("docker/default", SecurityProfile(ProfileType.RUNTIME_DEFAULT)),
        ("unconfined", SecurityProfile(ProfileType.UNCONFINED)),
        (
            "localhost//etc/seccomp/x.json",
            SecurityProfile(ProfileType.LOCALHOST, "/etc/seccomp/x.json"),
        ),
        ("", SecurityProfile(ProfileType.UNCONFINED)),
    ],
)
def test_deprecated_seccomp_profile_path(path: str, expected: SecurityProfile) -> None:
    cfg = pods.sandbox_config(_security(seccomp_profile_path=path), runtime_handler="")
    assert cfg.security.seccomp == expected


def test_structured_seccomp_wins_over_deprecated_path() -> None:
    msg = _security(
        seccomp_profile_path="runtime/default",
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined),
    )
    assert (
        pods.sandbox_config(msg, runtime_handler="").security.seccomp.type is ProfileType.UNCONFINED
    )


@pytest.mark.parametrize("path", ["localhost/", "bogus", "/abs/path"])
def test_bad_deprecated_seccomp_path(path: str) -> None:
    with pytest.raises(InvalidArgument, match="seccomp"):
        pods.sandbox_config(_security(seccomp_profile_path=path), runtime_handler="")


def test_localhost_profile_needs_a_ref() -> None:
    msg = _security(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost))
    with pytest.raises(InvalidArgument, match=r"seccomp\.localhost_ref is empty"):
        pods.sandbox_config(msg, runtime_handler="")


def test_unknown_namespace_mode_is_invalid() -> None:
    msg = _security(namespace_options=pb.NamespaceOption(network=42))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"namespace_options\.network"):
        pods.sandbox_config(msg, runtime_handler="")


def _userns(**kwargs: Any) -> pb.PodSandboxConfig:
    userns = pb.UserNamespace(**kwargs)
    return _security(namespace_options=pb.NamespaceOption(userns_options=userns))


MAP = pb.IDMapping(host_id=100000, container_id=0, length=65536)
OFF_ZERO = pb.IDMapping(host_id=1, container_id=1, length=5)
TOO_FAR = pb.IDMapping(host_id=4294967000, container_id=0, length=1000)


def test_pod_user_namespace_is_read_and_node_is_none() -> None:
    node = pods.sandbox_config(_userns(mode=pb.NODE), runtime_handler="")
    assert node.security.namespaces.userns is None
    gids = pb.IDMapping(host_id=200000, container_id=0, length=1000)
    cfg = pods.sandbox_config(_userns(mode=pb.POD, uids=[MAP], gids=[gids]), runtime_handler="")
    userns = cfg.security.namespaces.userns
    assert userns is not None
    assert userns.uids == (IdMapping(container_id=0, host_id=100000, length=65536),)
    assert userns.gids == (IdMapping(container_id=0, host_id=200000, length=1000),)
    assert userns.root == (100000, 200000)
    back = containers.namespace_options_to_pb(cfg.security.namespaces).userns_options
    assert back == pb.UserNamespace(mode=pb.POD, uids=[MAP], gids=[gids])


@pytest.mark.parametrize("kind", ["network", "pid", "ipc"])
def test_pod_user_namespace_refuses_node_namespaces(kind: str) -> None:
    userns = pb.UserNamespace(mode=pb.POD, uids=[MAP], gids=[MAP])
    opts = pb.NamespaceOption(userns_options=userns, **{kind: pb.NODE})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=rf"namespace_options\.{kind}: a pod in its own"):
        pods.sandbox_config(_security(namespace_options=opts), runtime_handler="")


@pytest.mark.parametrize(
    ("userns", "match"),
    [
        ({"mode": pb.CONTAINER}, r"userns_options\.mode: a user namespace is NODE or POD, not CON"),
        ({"mode": pb.TARGET}, "not TARGET"),
        ({"mode": pb.NODE, "uids": [MAP]}, "mode NODE takes no uid or gid mappings"),
        ({"mode": pb.POD, "gids": [MAP]}, r"uids: mode POD needs exactly one mapping, got 0"),
        ({"mode": pb.POD, "uids": [MAP, MAP], "gids": [MAP]}, "exactly one mapping, got 2"),
        ({"mode": pb.POD, "uids": [MAP], "gids": [OFF_ZERO]}, r"gids: the mapping must start at"),
        ({"mode": pb.POD, "uids": [TOO_FAR], "gids": [MAP]}, "runs past id"),
    ],
)
def test_bad_user_namespaces_are_invalid(userns: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        pods.sandbox_config(_userns(**userns), runtime_handler="")


def test_negative_run_as_user_is_invalid() -> None:
    msg = _security()
    msg.linux.security_context.run_as_user.value = -1
    with pytest.raises(InvalidArgument, match="run_as_user"):
        pods.sandbox_config(msg, runtime_handler="")


def test_bad_overhead_names_its_field() -> None:
    msg = _with(linux=pb.LinuxPodSandboxConfig(overhead=pb.LinuxContainerResources(cpu_shares=-1)))
    with pytest.raises(InvalidArgument, match=r"linux\.overhead\.cpu_shares"):
        pods.sandbox_config(msg, runtime_handler="")


def make_sandbox(**kwargs: object) -> Sandbox:
    cfg = pods.sandbox_config(full_config(), runtime_handler="runc")
    values: dict[str, object] = {
        "id": "abc123",
        "config": cfg,
        "state": SandboxState.READY,
        "created_at": 1_700_000_000_000_000_000,
        "runtime_handler": "runc",
        "namespace_paths": {"net": "/run/pinnace/netns/abc123"},
        "ip": "10.88.0.5",
        "additional_ips": ("fd00::5",),
        "infra_pid": 4242,
    }
    values.update(kwargs)
    return Sandbox(**values)  # type: ignore[arg-type]


def _pod_network_sandbox(**kwargs: object) -> Sandbox:
    sb = make_sandbox(**kwargs)
    security = SecurityContext(namespaces=NamespaceOptions(network=NamespaceMode.POD))
    cfg = SandboxConfig(metadata=sb.config.metadata, labels=sb.config.labels, security=security)
    return Sandbox(
        id=sb.id,
        config=cfg,
        state=sb.state,
        created_at=sb.created_at,
        runtime_handler=sb.runtime_handler,
        ip=sb.ip,
        additional_ips=sb.additional_ips,
    )


def test_sandbox_status() -> None:
    sb = _pod_network_sandbox()
    st = pods.sandbox_status(sb)
    assert st.id == "abc123"
    assert st.metadata == pb.PodSandboxMetadata(
        name="web", uid="u-1", namespace="default", attempt=2
    )
    assert st.state == pb.SANDBOX_READY
    assert st.created_at == 1_700_000_000_000_000_000
    assert st.network.ip == "10.88.0.5"
    assert [p.ip for p in st.network.additional_ips] == ["fd00::5"]
    assert st.linux.namespaces.options.network == pb.POD
    assert st.linux.namespaces.options.pid == pb.CONTAINER
    assert dict(st.labels) == {"app": "web"}
    assert st.runtime_handler == "runc"


def test_host_network_sandbox_reports_no_ip() -> None:
    st = pods.sandbox_status(make_sandbox(state=SandboxState.NOTREADY))
    assert st.state == pb.SANDBOX_NOTREADY
    assert st.network.ip == ""
    assert len(st.network.additional_ips) == 0
    assert st.linux.namespaces.options.network == pb.NODE
    assert dict(st.annotations) == {"note": "x"}


def test_sandbox_status_response() -> None:
    cs = pb.ContainerStatus(id="c1")
    resp = pods.sandbox_status_response(
        make_sandbox(), info={"info": "{}"}, containers_statuses=[cs], timestamp_ns=5
    )
    assert resp.status.id == "abc123"
    assert dict(resp.info) == {"info": "{}"}
    assert [c.id for c in resp.containers_statuses] == ["c1"]
    assert resp.timestamp == 5
    assert dict(pods.sandbox_status_response(make_sandbox()).info) == {}


def test_sandbox_summary() -> None:
    s = pods.sandbox_summary(make_sandbox(state=SandboxState.NOTREADY, runtime_handler="crun"))
    assert s.id == "abc123"
    assert s.metadata.uid == "u-1"
    assert s.state == pb.SANDBOX_NOTREADY
    assert s.created_at == 1_700_000_000_000_000_000
    assert dict(s.labels) == {"app": "web"}
    assert dict(s.annotations) == {"note": "x"}
    assert s.runtime_handler == "crun"


def test_sandbox_verbose_info() -> None:
    info = pods.sandbox_verbose_info(
        make_sandbox(), extra={"cniResult": {"ips": ["10.88.0.5"]}, "pid": 1}
    )
    assert set(info) == {"info"}
    body = json.loads(info["info"])
    assert body["pid"] == 1  # extra wins
    assert body["namespaces"] == {"net": "/run/pinnace/netns/abc123"}
    assert body["runtimeHandler"] == "runc"
    assert body["cniResult"] == {"ips": ["10.88.0.5"]}
    assert body["config"]["metadata"]["name"] == "web"
    assert body["config"]["linux"]["cgroup_parent"] == "/kubepods/pod-u-1"
    plain = json.loads(pods.sandbox_verbose_info(make_sandbox(), extra={})["info"])
    assert plain["pid"] == 4242
    assert plain["status"] == "ready"
