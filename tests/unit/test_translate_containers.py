"""cri.translate.containers: ContainerConfig, resources, status and list entries."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.translate import containers
from runtime.errors import InvalidArgument, Unimplemented
from runtime.model.pods import (
    Capabilities,
    Container,
    ContainerState,
    ContainerUser,
    Device,
    HugepageLimit,
    Mount,
    NamespaceMode,
    NamespaceOptions,
    ProfileType,
    Propagation,
    Resources,
    SecurityProfile,
    SupplementalGroupsPolicy,
)


def full_resources() -> pb.LinuxContainerResources:
    return pb.LinuxContainerResources(
        cpu_period=100000,
        cpu_quota=50000,
        cpu_shares=512,
        memory_limit_in_bytes=64 << 20,
        oom_score_adj=500,
        cpuset_cpus="0-1",
        cpuset_mems="0",
        hugepage_limits=[pb.HugepageLimit(page_size="2MB", limit=4 << 20)],
        unified={"memory.high": "50000000"},
        memory_swap_limit_in_bytes=128 << 20,
    )


def full_config() -> pb.ContainerConfig:
    sc = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(
            add_capabilities=["NET_ADMIN"],
            drop_capabilities=["ALL"],
            add_ambient_capabilities=["NET_BIND_SERVICE"],
        ),
        privileged=False,
        namespace_options=pb.NamespaceOption(
            network=pb.POD, pid=pb.TARGET, ipc=pb.POD, target_id="other"
        ),
        run_as_username="nobody",
        readonly_rootfs=True,
        supplemental_groups=[10, 20],
        supplemental_groups_policy=pb.Strict,
        no_new_privs=True,
        masked_paths=["/proc/kcore"],
        readonly_paths=["/proc/sys"],
        seccomp=pb.SecurityProfile(
            profile_type=pb.SecurityProfile.Localhost, localhost_ref="/etc/seccomp/p.json"
        ),
        apparmor=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined),
    )
    sc.run_as_user.value = 1000
    sc.run_as_group.value = 0
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=3),
        image=pb.ImageSpec(image="docker.io/library/busybox:1.36"),
        command=["/bin/sh"],
        args=["-c", "echo hi"],
        working_dir="/work",
        envs=[pb.KeyValue(key="A", value=b"1"), pb.KeyValue(key="B", value="é".encode())],
        mounts=[
            pb.Mount(
                container_path="/data",
                host_path="/srv/data",
                readonly=True,
                selinux_relabel=True,
                propagation=pb.PROPAGATION_BIDIRECTIONAL,
                recursive_read_only=True,
            ),
            pb.Mount(
                container_path="/cache",
                host_path="/srv/cache",
                propagation=pb.PROPAGATION_HOST_TO_CONTAINER,
            ),
        ],
        devices=[pb.Device(container_path="/dev/fuse", host_path="/dev/fuse", permissions="rw")],
        labels={"io.kubernetes.container.name": "app"},
        annotations={"a": "b"},
        log_path="app/3.log",
        stdin=True,
        stdin_once=True,
        tty=True,
        linux=pb.LinuxContainerConfig(resources=full_resources(), security_context=sc),
        stop_signal=pb.SIGNAL_SIGRTMINPLUS3,
    )


def test_container_config_reads_every_field() -> None:
    cfg = containers.container_config(full_config())
    assert cfg.name == "app" and cfg.attempt == 3
    assert cfg.image == "docker.io/library/busybox:1.36"
    assert cfg.command == ("/bin/sh",)
    assert cfg.args == ("-c", "echo hi")
    assert cfg.working_dir == "/work"
    assert cfg.envs == (("A", "1"), ("B", "é"))
    assert cfg.mounts == (
        Mount("/data", "/srv/data", True, Propagation.BIDIRECTIONAL, True, True),
        Mount("/cache", "/srv/cache", propagation=Propagation.HOST_TO_CONTAINER),
    )
    assert cfg.devices == (Device("/dev/fuse", "/dev/fuse", "rw"),)
    assert cfg.labels == {"io.kubernetes.container.name": "app"}
    assert cfg.annotations == {"a": "b"}
    assert cfg.log_path == "app/3.log"
    assert (cfg.stdin, cfg.stdin_once, cfg.tty) == (True, True, True)
    assert cfg.stop_signal == "SIGRTMIN+3"
    assert cfg.resources == Resources(
        cpu_period=100000,
        cpu_quota=50000,
        cpu_shares=512,
        memory_limit_in_bytes=64 << 20,
        oom_score_adj=500,
        cpuset_cpus="0-1",
        cpuset_mems="0",
        hugepage_limits=(HugepageLimit("2MB", 4 << 20),),
        unified={"memory.high": "50000000"},
        memory_swap_limit_in_bytes=128 << 20,
    )
    sc = cfg.security
    assert sc.capabilities == Capabilities(("NET_ADMIN",), ("ALL",), ("NET_BIND_SERVICE",))
    assert sc.namespaces == NamespaceOptions(
        NamespaceMode.POD, NamespaceMode.TARGET, NamespaceMode.POD, "other"
    )
    assert sc.run_as_user == 1000
    assert sc.run_as_group == 0
    assert sc.run_as_username == "nobody"
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert sc.supplemental_groups == (10, 20)
    assert sc.masked_paths == ("/proc/kcore",)
    assert sc.readonly_paths == ("/proc/sys",)
    assert sc.seccomp == SecurityProfile(ProfileType.LOCALHOST, "/etc/seccomp/p.json")
    assert sc.apparmor == SecurityProfile(ProfileType.UNCONFINED)


def test_container_config_round_trips_through_pb() -> None:
    msg = full_config()
    cfg = containers.container_config(msg)
    again = containers.container_config_to_pb(cfg)
    assert again == msg
    assert containers.container_config(again) == cfg


def minimal(**kwargs: Any) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="c"), image=pb.ImageSpec(image="img"), **kwargs
    )


def test_minimal_config_defaults() -> None:
    cfg = containers.container_config(minimal())
    assert cfg.resources is None
    assert cfg.stop_signal == ""
    sc = cfg.security
    assert sc.run_as_user is None and sc.run_as_group is None
    assert sc.masked_paths is None and sc.readonly_paths is None  # runtime defaults
    assert sc.seccomp.type is ProfileType.UNCONFINED
    assert sc.apparmor.type is ProfileType.RUNTIME_DEFAULT
    assert sc.capabilities == Capabilities()


def test_privileged_masks_nothing() -> None:
    sc = pb.LinuxContainerSecurityContext(privileged=True, masked_paths=["/proc/kcore"])
    cfg = containers.container_config(minimal(linux=pb.LinuxContainerConfig(security_context=sc)))
    assert cfg.security.masked_paths == ()
    assert cfg.security.readonly_paths == ()


def test_capability_names_are_normalised() -> None:
    sc = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(add_capabilities=["cap_sys_admin", "CAP_NET_RAW"])
    )
    cfg = containers.container_config(minimal(linux=pb.LinuxContainerConfig(security_context=sc)))
    assert cfg.security.capabilities.add == ("SYS_ADMIN", "NET_RAW")


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ("runtime/default", SecurityProfile(ProfileType.RUNTIME_DEFAULT)),
        ("unconfined", SecurityProfile(ProfileType.UNCONFINED)),
        ("localhost/k8s-nginx", SecurityProfile(ProfileType.LOCALHOST, "k8s-nginx")),
    ],
)
def test_deprecated_apparmor_and_seccomp_strings(legacy: str, expected: SecurityProfile) -> None:
    sc = pb.LinuxContainerSecurityContext(apparmor_profile=legacy, seccomp_profile_path=legacy)
    cfg = containers.container_config(minimal(linux=pb.LinuxContainerConfig(security_context=sc)))
    assert cfg.security.apparmor == expected
    assert cfg.security.seccomp == expected


def test_bad_apparmor_string() -> None:
    sc = pb.LinuxContainerSecurityContext(apparmor_profile="weird")
    with pytest.raises(InvalidArgument, match=r"linux\.security_context\.apparmor"):
        containers.container_config(minimal(linux=pb.LinuxContainerConfig(security_context=sc)))


def test_env_values_with_non_utf8_bytes_round_trip() -> None:
    raw = b"\xff\xfe latin1 \xe9"
    cfg = containers.container_config(minimal(envs=[pb.KeyValue(key="BIN", value=raw)]))
    ((key, value),) = cfg.envs
    assert key == "BIN"
    assert containers.env_value_bytes(value) == raw
    assert containers.container_config_to_pb(cfg).envs[0].value == raw


def test_env_order_and_duplicates_are_kept() -> None:
    envs = [pb.KeyValue(key="X", value=b"1"), pb.KeyValue(key="X", value=b"2")]
    assert containers.container_config(minimal(envs=envs)).envs == (("X", "1"), ("X", "2"))


@pytest.mark.parametrize(
    ("kv", "match"),
    [
        (pb.KeyValue(key="BAD", value=b"a\0b"), r"envs\[0\] \(BAD\).*NUL"),
        (pb.KeyValue(key="", value=b"x"), r"envs\[0\].key is empty"),
        (pb.KeyValue(key="A=B", value=b"x"), r"envs\[0\].key"),
    ],
)
def test_bad_envs(kv: pb.KeyValue, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        containers.container_config(minimal(envs=[kv]))


def test_metadata_name_required() -> None:
    with pytest.raises(InvalidArgument, match=r"metadata\.name is empty"):
        containers.container_config(pb.ContainerConfig(image=pb.ImageSpec(image="x")))
    with pytest.raises(InvalidArgument, match=r"metadata\.name is empty"):
        containers.container_config(
            pb.ContainerConfig(metadata=pb.ContainerMetadata(), image=pb.ImageSpec(image="x"))
        )


def test_image_required() -> None:
    with pytest.raises(InvalidArgument, match=r"image\.image is empty"):
        containers.container_config(pb.ContainerConfig(metadata=pb.ContainerMetadata(name="c")))


@pytest.mark.parametrize(
    ("mount", "match"),
    [
        (pb.Mount(host_path="/a"), r"mounts\[0\].container_path is empty"),
        (pb.Mount(container_path="rel", host_path="/a"), r"mounts\[0\].container_path 'rel'"),
        (pb.Mount(container_path="/c"), r"mounts\[0\].host_path is empty"),
        (
            pb.Mount(container_path="/c", host_path="/a", propagation=7),  # type: ignore[arg-type]
            r"mounts\[0\].propagation",
        ),
    ],
)
def test_bad_mounts(mount: pb.Mount, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        containers.container_config(minimal(mounts=[mount]))


def test_unsupported_mount_options_are_unimplemented() -> None:
    mount = pb.Mount(container_path="/c", host_path="/a", mount_options=["noexec"])
    with pytest.raises(Unimplemented, match=r"mounts\[0\]"):
        containers.container_config(minimal(mounts=[mount]))


def test_id_mapped_mounts_round_trip() -> None:
    mapping = pb.IDMapping(host_id=100000, container_id=0, length=65536)
    msg = pb.Mount(
        container_path="/c", host_path="/a", uidMappings=[mapping], gidMappings=[mapping]
    )
    (mount,) = containers.container_config(minimal(mounts=[msg])).mounts
    assert mount.idmapped
    assert [(m.container_id, m.host_id, m.length) for m in mount.uid_mappings] == [
        (0, 100000, 65536)
    ]
    assert mount.gid_mappings == mount.uid_mappings
    assert containers.mount_to_pb(mount) == msg
    plain = containers.container_config(
        minimal(mounts=[pb.Mount(container_path="/c", host_path="/a")])
    )
    assert not plain.mounts[0].idmapped


@pytest.mark.parametrize(
    ("uids", "gids", "match"),
    [
        ([pb.IDMapping(host_id=1, length=1)], [], "both uidMappings and gidMappings"),
        (
            [pb.IDMapping(host_id=1, length=0)],
            [pb.IDMapping(host_id=1, length=1)],
            r"uidMappings\[0\]: the length",
        ),
        (
            [pb.IDMapping(host_id=1, length=1)],
            [pb.IDMapping(host_id=(1 << 32) - 1, length=2)],
            r"gidMappings\[0\]: the mapping runs past",
        ),
    ],
)
def test_bad_id_mappings(uids: list[pb.IDMapping], gids: list[pb.IDMapping], match: str) -> None:
    msg = pb.Mount(container_path="/c", host_path="/a", uidMappings=uids, gidMappings=gids)
    with pytest.raises(InvalidArgument, match=match):
        containers.container_config(minimal(mounts=[msg]))


def test_image_volumes() -> None:
    msg = pb.Mount(
        container_path="/c", image=pb.ImageSpec(image="vol:1"), image_sub_path="a/b", readonly=True
    )
    cfg = containers.container_config(minimal(mounts=[msg]))
    (mount,) = cfg.mounts
    assert (mount.image, mount.image_sub_path, mount.readonly, mount.host_path) == (
        "vol:1",
        "a/b",
        True,
        "",
    )
    assert containers.mount_to_pb(mount) == msg


@pytest.mark.parametrize(
    ("mount", "match"),
    [
        (pb.Mount(container_path="/c", image=pb.ImageSpec(image="v:1")), "must be readonly"),
        (
            pb.Mount(
                container_path="/c", image=pb.ImageSpec(image="v:1"), readonly=True, host_path="/h"
            ),
            "has no host_path",
        ),
        (
            pb.Mount(
                container_path="/c",
                image=pb.ImageSpec(image="v:1"),
                readonly=True,
                image_sub_path="../etc",
            ),
            "image_sub_path '../etc' must be a relative path",
        ),
    ],
)
def test_bad_image_volumes(mount: pb.Mount, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        containers.container_config(minimal(mounts=[mount]))


def test_cdi_devices_are_kept_by_name() -> None:
    cfg = containers.container_config(
        minimal(CDI_devices=[pb.CDIDevice(name="vendor.com/gpu=0"), pb.CDIDevice(name="a.b/c=1")])
    )
    assert cfg.cdi_devices == ("vendor.com/gpu=0", "a.b/c=1")
    assert containers.container_config(containers.container_config_to_pb(cfg)) == cfg


def test_cdi_device_without_a_name_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match=r"CDI_devices\[0\].name"):
        containers.container_config(minimal(CDI_devices=[pb.CDIDevice()]))


@pytest.mark.parametrize(
    ("device", "match"),
    [
        (pb.Device(host_path="/dev/null"), r"devices\[0\].container_path is empty"),
        (pb.Device(container_path="/dev/null"), r"devices\[0\].host_path is empty"),
        (pb.Device(container_path="/d", host_path="/d", permissions="rwx"), "permissions"),
    ],
)
def test_bad_devices(device: pb.Device, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        containers.container_config(minimal(devices=[device]))


def test_device_permissions_default_to_rwm() -> None:
    cfg = containers.container_config(
        minimal(devices=[pb.Device(container_path="/dev/null", host_path="/dev/null")])
    )
    assert cfg.devices[0].permissions == "rwm"


@pytest.mark.parametrize("path", ["/abs/log", "../escape.log", "a/../../b.log", ".."])
def test_bad_log_paths(path: str) -> None:
    with pytest.raises(InvalidArgument, match="log_path"):
        containers.container_config(minimal(log_path=path))


def test_dotted_names_in_log_path_are_fine() -> None:
    assert containers.container_config(minimal(log_path="a..b/c.log")).log_path == "a..b/c.log"


def test_unknown_stop_signal_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="stop_signal"):
        containers.container_config(minimal(stop_signal=999))


def test_every_signal_round_trips() -> None:
    for value in pb.Signal.values():
        assert containers.signal_to_pb(containers.signal_from_pb(value)) == value
    assert containers.signal_from_pb(pb.SIGNAL_SIGTERM) == "SIGTERM"
    assert containers.signal_from_pb(pb.SIGNAL_SIGRTMAXMINUS1) == "SIGRTMAX-1"
    assert containers.signal_from_pb(pb.SIGNAL_RUNTIME_DEFAULT) == ""
    assert containers.signal_to_pb("15") == pb.SIGNAL_SIGTERM
    assert containers.signal_to_pb("quit") == pb.SIGNAL_SIGQUIT
    assert containers.signal_to_pb("SIGNOPE") == pb.SIGNAL_RUNTIME_DEFAULT


# --- resources -------------------------------------------------------------------------------


def test_resources_round_trip() -> None:
    msg = full_resources()
    r = containers.resources(msg)
    assert containers.resources_to_pb(r) == msg
    assert containers.resources(pb.LinuxContainerResources()) == Resources()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpu_shares": -2}, "cpu_shares"),
        ({"cpu_period": -1}, "cpu_period"),
        ({"memory_limit_in_bytes": -1}, "memory_limit_in_bytes"),
        ({"cpu_quota": -2}, "cpu_quota"),
        ({"memory_swap_limit_in_bytes": -5}, "memory_swap_limit_in_bytes"),
        ({"oom_score_adj": 1001}, "oom_score_adj"),
        ({"hugepage_limits": [pb.HugepageLimit(limit=1)]}, r"hugepage_limits\[0\].page_size"),
    ],
)
def test_bad_resources(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidArgument, match=f"linux.resources.{match}"):
        containers.resources(pb.LinuxContainerResources(**kwargs))  # type: ignore[arg-type]


def test_unlimited_quota_and_swap_are_accepted() -> None:
    r = containers.resources(
        pb.LinuxContainerResources(cpu_quota=-1, memory_swap_limit_in_bytes=-1)
    )
    assert (r.cpu_quota, r.memory_swap_limit_in_bytes) == (-1, -1)


def make_container(**kwargs: object) -> Container:
    values: dict[str, object] = {
        "id": "c0ffee",
        "sandbox_id": "abc123",
        "config": containers.container_config(full_config()),
        "image_id": "sha256:" + "1" * 64,
        "image_name": "sha256:" + "1" * 64,
        "state": ContainerState.EXITED,
        "created_at": 10,
        "started_at": 20,
        "finished_at": 30,
        "exit_code": 137,
        "reason": "OOMKilled",
        "message": "out of memory",
        "log_path": "/var/log/pods/x/app/3.log",
    }
    values.update(kwargs)
    return Container(**values)  # type: ignore[arg-type]


def test_container_status() -> None:
    st = containers.container_status(make_container(), repo_tags=("busybox:1.36",))
    assert st.id == "c0ffee"
    assert st.metadata == pb.ContainerMetadata(name="app", attempt=3)
    assert st.state == pb.CONTAINER_EXITED
    assert (st.created_at, st.started_at, st.finished_at) == (10, 20, 30)
    assert st.exit_code == 137
    assert st.image.image == "busybox:1.36"
    assert st.image_ref == "sha256:" + "1" * 64
    assert st.image_id == "sha256:" + "1" * 64
    assert (st.reason, st.message) == ("OOMKilled", "out of memory")
    assert dict(st.labels) == {"io.kubernetes.container.name": "app"}
    assert dict(st.annotations) == {"a": "b"}
    assert list(st.mounts) == list(full_config().mounts)
    assert st.log_path == "/var/log/pods/x/app/3.log"
    assert st.resources.linux == full_resources()
    assert st.stop_signal == pb.SIGNAL_SIGRTMINPLUS3
    assert not st.HasField("user")


def test_container_status_reports_the_effective_user() -> None:
    user = ContainerUser(uid=1000, gid=1000, groups=(1000, 50000, 60000))
    st = containers.container_status(make_container(user=user))
    assert st.user.linux == pb.LinuxContainerUser(
        uid=1000, gid=1000, supplemental_groups=[1000, 50000, 60000]
    )


def test_supplemental_groups_policy() -> None:
    strict = pb.LinuxContainerSecurityContext(supplemental_groups_policy=pb.Strict)
    sc = containers.container_security(strict)
    assert sc.supplemental_groups_policy is SupplementalGroupsPolicy.STRICT
    merge = containers.container_security(pb.LinuxContainerSecurityContext())
    assert merge.supplemental_groups_policy is SupplementalGroupsPolicy.MERGE
    with pytest.raises(InvalidArgument, match=r"supplemental_groups_policy: unknown value 7"):
        containers.container_security(
            pb.LinuxContainerSecurityContext(supplemental_groups_policy=7)  # type: ignore[arg-type]
        )


_ID = "sha256:" + "1" * 64
_DIGEST = "sha256:" + "2" * 64


def test_container_status_names_the_image_as_the_kubelet_asked_and_its_repo_digest() -> None:
    """As containerd answered the recorded kubelet: the image the pod spec named, and the
    digest reference of that repository (``kubectl`` shows them as image and imageID)."""
    cfg = dataclasses.replace(
        containers.container_config(full_config()),
        image=_ID,
        user_specified_image="127.0.0.1:5000/busybox:1.35",
    )
    st = containers.container_status(
        make_container(config=cfg, image_name=_ID),
        repo_tags=("other.io/x:1", "127.0.0.1:5000/busybox:1.35"),
        repo_digests=(f"other.io/x@{_DIGEST}", f"127.0.0.1:5000/busybox@{_DIGEST}"),
    )
    assert st.image.image == "127.0.0.1:5000/busybox:1.35"
    assert st.image_ref == f"127.0.0.1:5000/busybox@{_DIGEST}"
    assert st.image_id == _ID


def test_container_status_image_without_names_or_a_user_specified_image() -> None:
    by_tag = containers.container_status(
        make_container(),
        repo_tags=("busybox:1.36",),
        repo_digests=(f"docker.io/library/busybox@{_DIGEST}",),
    )
    # the familiar name and the normalised digest name the same repository
    assert by_tag.image.image == "busybox:1.36"
    assert by_tag.image_ref == f"docker.io/library/busybox@{_DIGEST}"
    bare = containers.container_status(make_container())
    assert (bare.image.image, bare.image_ref) == (_ID, _ID)


def test_user_specified_image_round_trips() -> None:
    msg = full_config()
    msg.image.user_specified_image = "busybox:1.35"
    cfg = containers.container_config(msg)
    assert cfg.user_specified_image == "busybox:1.35"
    assert containers.container_config_to_pb(cfg).image.user_specified_image == "busybox:1.35"


def test_container_status_prefers_applied_resources() -> None:
    st = containers.container_status(make_container(resources=Resources(cpu_shares=2)))
    assert st.resources.linux == pb.LinuxContainerResources(cpu_shares=2)


def test_container_status_stop_signal_falls_back_to_image_then_sigterm() -> None:
    cfg = containers.container_config(minimal())
    c = make_container(config=cfg)
    assert containers.container_status(c).stop_signal == pb.SIGNAL_SIGTERM
    st = containers.container_status(c, image_stop_signal="SIGQUIT")
    assert st.stop_signal == pb.SIGNAL_SIGQUIT
    assert not st.HasField("resources")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (ContainerState.CREATED, pb.CONTAINER_CREATED),
        (ContainerState.RUNNING, pb.CONTAINER_RUNNING),
        (ContainerState.EXITED, pb.CONTAINER_EXITED),
        (ContainerState.UNKNOWN, pb.CONTAINER_UNKNOWN),
    ],
)
def test_states(state: ContainerState, expected: int) -> None:
    assert containers.container_summary(make_container(state=state)).state == expected


def test_container_summary() -> None:
    s = containers.container_summary(make_container(image_name="busybox:1.36"))
    assert s.id == "c0ffee"
    assert s.pod_sandbox_id == "abc123"
    assert s.metadata.name == "app"
    assert s.image.image == "busybox:1.36"
    assert s.image_ref == s.image_id == "sha256:" + "1" * 64
    assert s.created_at == 10
    assert dict(s.labels) == {"io.kubernetes.container.name": "app"}
    assert dict(s.annotations) == {"a": "b"}
