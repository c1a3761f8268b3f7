"""Whole specs from build_container_spec and build_infra_spec."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import FailedPrecondition, InvalidArgument
from runtime.images.manifest import ImageConfig
from runtime.model.pods import (
    Capabilities,
    ContainerConfig,
    Device,
    IdMapping,
    Mount,
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
    UserNamespace,
)
from runtime.oci import SandboxFiles, build_container_spec, build_infra_spec
from runtime.oci.defaults import DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS

ALL = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_KILL")
PINNED = {"net": "/run/ns/net", "ipc": "/run/ns/ipc", "uts": "/run/ns/uts"}
IMAGE = ImageConfig(
    architecture="amd64",
    os="linux",
    user="app",
    env=("PATH=/img/bin", "IMG=1"),
    entrypoint=("/bin/sleep",),
    cmd=("infinity",),
    working_dir="/work",
)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nadm:x:4:app\n")
    return root


def sandbox(
    *, network: NamespaceMode = NamespaceMode.POD, ipc: NamespaceMode = NamespaceMode.POD
) -> Sandbox:
    config = SandboxConfig(
        metadata=PodMetadata(name="web", uid="uid-1", namespace="default"),
        hostname="web-0",
        log_directory="/var/log/pods/x",
        annotations={"pod": "annotation"},
        security=SecurityContext(namespaces=NamespaceOptions(network=network, ipc=ipc)),
    )
    return Sandbox(
        id="sb1",
        config=config,
        state=SandboxState.READY,
        created_at=1,
        runtime_handler="runc",
        hostname="web-0",
    )


def build(
    rootfs: Path,
    container: ContainerConfig | None = None,
    *,
    sb: Sandbox | None = None,
    paths: dict[str, str] | None = None,
    files: SandboxFiles | None = None,
    host_adj: int = 0,
    cgroup_v2: bool = False,
) -> dict[str, Any]:
    spec = build_container_spec(
        container=container or ContainerConfig(name="c1", image="docker.io/library/app:1"),
        sandbox=sb or sandbox(),
        image=IMAGE,
        rootfs=rootfs,
        cgroups_path="/pinnace/sb1/c1",
        sandbox_files=files or SandboxFiles(),
        namespace_paths=PINNED if paths is None else paths,
        host_oom_score_adj=host_adj,
        cgroup_v2=cgroup_v2,
        all_capabilities=ALL,
    )
    assert json.loads(json.dumps(spec)) == spec  # JSON-able, nothing but plain types
    return spec


def test_defaults(rootfs: Path) -> None:
    spec = build(rootfs)
    assert spec["ociVersion"] == "1.0.2"
    assert spec["root"] == {"path": str(rootfs), "readonly": False}
    proc = spec["process"]
    assert proc["args"] == ["/bin/sleep", "infinity"]
    assert proc["env"] == ["PATH=/img/bin", "HOSTNAME=web-0", "IMG=1"]
    assert proc["cwd"] == "/work"
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [4, 1000]}
    assert proc["terminal"] is False
    assert proc["noNewPrivileges"] is False
    assert proc["capabilities"] == {
        k: list(DEFAULT_CAPABILITIES) for k in ("bounding", "effective", "permitted")
    }
    assert "oomScoreAdj" not in proc  # no resources given
    assert "rlimits" not in proc  # containerd's CRI leaves rlimits to the runtime
    linux = spec["linux"]
    assert linux["cgroupsPath"] == "/pinnace/sb1/c1"
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert "seccomp" not in linux  # the model's default is unconfined
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    allowed = {(r["major"], r.get("minor")) for r in linux["resources"]["devices"][1:]}
    assert {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2), (136, None)} <= allowed
    assert "hostname" not in spec  # the pinned UTS namespace carries it
    assert spec["annotations"] == {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "sb1",
        "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": "uid-1",
        "io.kubernetes.cri.container-name": "c1",
        "io.kubernetes.cri.image-name": "docker.io/library/app:1",
    }


def test_namespaces_join_pinned(rootfs: Path) -> None:
    ns = build(rootfs)["linux"]["namespaces"]
    assert ns == [
        {"type": "pid"},
        {"type": "ipc", "path": "/run/ns/ipc"},
        {"type": "uts", "path": "/run/ns/uts"},
        {"type": "mount"},
        {"type": "network", "path": "/run/ns/net"},
    ]


def test_user_namespace_first_with_its_mappings(rootfs: Path) -> None:
    userns = UserNamespace(
        uids=(IdMapping(container_id=0, host_id=100000, length=65536),),
        gids=(IdMapping(container_id=0, host_id=200000, length=1000),),
    )
    sb = sandbox()
    sb = replace(
        sb,
        config=replace(
            sb.config,
            security=replace(
                sb.config.security,
                namespaces=replace(sb.config.security.namespaces, userns=userns),
            ),
        ),
    )
    paths = {**PINNED, "user": "/run/ns/user"}
    for linux in (
        build(rootfs, sb=sb, paths=paths)["linux"],
        build_infra_spec(
            sandbox=sb,
            image=IMAGE,
            rootfs=rootfs,
            cgroups_path="/pinnace/sb1/infra",
            namespace_paths=paths,
            host_oom_score_adj=0,
            cgroup_v2=False,
        )["linux"],
    ):
        assert linux["namespaces"][0] == {"type": "user", "path": "/run/ns/user"}
        assert linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
        assert linux["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 1000}]
    plain = build(rootfs)["linux"]
    assert "uidMappings" not in plain
    assert all(ns["type"] != "user" for ns in plain["namespaces"])


def test_cgroup_namespace_on_v2_unless_privileged(rootfs: Path) -> None:
    assert {"type": "cgroup"} in build(rootfs, cgroup_v2=True)["linux"]["namespaces"]
    privileged = ContainerConfig(name="c", security=SecurityContext(privileged=True))
    assert {"type": "cgroup"} not in build(rootfs, privileged, cgroup_v2=True)["linux"][
        "namespaces"
    ]


def test_host_network_and_ipc_are_omitted(rootfs: Path) -> None:
    sb = sandbox(network=NamespaceMode.NODE, ipc=NamespaceMode.NODE)
    spec = build(rootfs, sb=sb, paths={})
    assert spec["linux"]["namespaces"] == [{"type": "pid"}, {"type": "mount"}]
    assert "hostname" not in spec


def test_unpinned_pod_gets_new_namespaces_and_hostname(rootfs: Path) -> None:
    spec = build(rootfs, paths={})
    assert [ns["type"] for ns in spec["linux"]["namespaces"]] == [
        "pid",
        "ipc",
        "uts",
        "mount",
        "network",
    ]
    assert all("path" not in ns for ns in spec["linux"]["namespaces"])
    assert spec["hostname"] == "web-0"


@pytest.mark.parametrize("mode", [NamespaceMode.POD, NamespaceMode.TARGET])
def test_shared_pid_namespace(rootfs: Path, mode: NamespaceMode) -> None:
    c = ContainerConfig(name="c", security=SecurityContext(namespaces=NamespaceOptions(pid=mode)))
    ns = build(rootfs, c, paths={**PINNED, "pid": "/proc/42/ns/pid"})["linux"]["namespaces"]
    assert ns[0] == {"type": "pid", "path": "/proc/42/ns/pid"}
    with pytest.raises(FailedPrecondition, match="PID namespace"):
        build(rootfs, c)


def test_host_pid(rootfs: Path) -> None:
    c = ContainerConfig(
        name="c", security=SecurityContext(namespaces=NamespaceOptions(pid=NamespaceMode.NODE))
    )
    assert all(ns["type"] != "pid" for ns in build(rootfs, c)["linux"]["namespaces"])


def test_options_flow_through(rootfs: Path) -> None:
    c = ContainerConfig(
        name="c1",
        image="img",
        command=("/bin/sh", "-c"),
        args=("id",),
        working_dir="/tmp",
        envs=(("IMG", "2"), ("X", "y")),
        tty=True,
        annotations={"user": "a", "io.kubernetes.cri.container-type": "forged"},
        mounts=(Mount(container_path="/data", host_path="/srv/data", readonly=True),),
        devices=(Device(container_path="/dev/mynull", host_path="/dev/null", permissions="rw"),),
        resources=Resources(cpu_shares=256, memory_limit_in_bytes=1 << 26, oom_score_adj=500),
        security=SecurityContext(
            run_as_user=0,
            run_as_group=4,
            supplemental_groups=(99,),
            readonly_rootfs=True,
            no_new_privs=True,
            capabilities=Capabilities(add=("NET_ADMIN",), drop=("KILL",)),
            masked_paths=("/proc/x",),
            readonly_paths=(),
        ),
    )
    files = SandboxFiles(hosts=Path("/sb/hosts"), shm=Path("/sb/shm"))
    spec = build(rootfs, c, files=files)
    proc = spec["process"]
    assert proc["args"] == ["/bin/sh", "-c", "id"]
    assert proc["cwd"] == "/tmp"
    assert proc["env"] == ["PATH=/img/bin", "HOSTNAME=web-0", "IMG=2", "X=y"]
    assert proc["terminal"] is True
    assert proc["noNewPrivileges"] is True
    assert proc["user"] == {"uid": 0, "gid": 4, "additionalGids": [4, 99]}
    assert proc["oomScoreAdj"] == 500
    bounding = proc["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in bounding and "CAP_KILL" not in bounding
    assert spec["root"]["readonly"] is True
    assert spec["annotations"]["user"] == "a"
    assert spec["annotations"]["io.kubernetes.cri.container-type"] == "container"
    linux = spec["linux"]
    assert linux["maskedPaths"] == ["/proc/x"]
    assert linux["readonlyPaths"] == []
    assert linux["resources"]["cpu"] == {"shares": 256}
    assert linux["resources"]["memory"] == {"limit": 1 << 26}
    assert [d["path"] for d in linux["devices"]] == ["/dev/mynull"]
    assert linux["resources"]["devices"][-1] == {
        "allow": True,
        "type": "c",
        "major": 1,
        "minor": 3,
        "access": "rw",
    }
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/data"]["options"] == ["rbind", "rprivate", "ro"]
    assert mounts["/etc/hosts"]["options"] == ["rbind", "rprivate", "ro"]
    assert mounts["/dev/shm"]["source"] == "/sb/shm"
    assert "/etc/resolv.conf" not in mounts


def test_lower_oom_score_adj_is_omitted(rootfs: Path) -> None:
    c = ContainerConfig(name="c", resources=Resources(oom_score_adj=-10))
    assert "oomScoreAdj" not in build(rootfs, c)["process"]
    assert build(rootfs, c, host_adj=-10)["process"]["oomScoreAdj"] == -10


def test_unified_dropped_on_v1_kept_on_v2(rootfs: Path) -> None:
    c = ContainerConfig(name="c", resources=Resources(unified={"memory.high": "1000000"}))
    assert "unified" not in build(rootfs, c)["linux"]["resources"]
    assert build(rootfs, c, cgroup_v2=True)["linux"]["resources"]["unified"] == {
        "memory.high": "1000000"
    }


def test_privileged(rootfs: Path) -> None:
    c = ContainerConfig(
        name="c",
        security=SecurityContext(
            privileged=True,
            capabilities=Capabilities(drop=("ALL",)),
            masked_paths=("/proc/x",),
            seccomp=SecurityProfile(ProfileType.RUNTIME_DEFAULT),
        ),
    )
    spec = build(rootfs, c)
    assert spec["process"]["capabilities"]["effective"] == list(ALL)
    linux = spec["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert "seccomp" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "/dev/null" in {d["path"] for d in linux["devices"]}


def _allowed(profile: dict) -> set[str]:
    """Names some rule allows (with or without argument conditions)."""
    return {n for s in profile["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" for n in s["names"]}


def test_runtime_default_seccomp(rootfs: Path) -> None:
    c = ContainerConfig(
        name="c", security=SecurityContext(seccomp=SecurityProfile(ProfileType.RUNTIME_DEFAULT))
    )
    profile = build(rootfs, c)["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {"read", "execve", "clone"} <= _allowed(profile)
    assert not {"mount", "unshare", "keyctl", "reboot", "init_module"} & _allowed(profile)
    # the rendering follows the container's capabilities: CAP_SYS_ADMIN may mount and unshare
    admin = ContainerConfig(
        name="c",
        security=SecurityContext(
            seccomp=SecurityProfile(ProfileType.RUNTIME_DEFAULT),
            capabilities=Capabilities(add=("SYS_ADMIN",)),
        ),
    )
    profile = build(rootfs, admin)["linux"]["seccomp"]
    assert {"mount", "unshare"} <= _allowed(profile)
    assert "keyctl" not in _allowed(profile)


def test_infra_container_gets_runtime_default(rootfs: Path) -> None:
    sb = sandbox()
    security = replace(sb.config.security, seccomp=SecurityProfile(ProfileType.RUNTIME_DEFAULT))
    sb = replace(sb, config=replace(sb.config, security=security))
    spec = build_infra_spec(
        sandbox=sb,
        image=ImageConfig(architecture="amd64", os="linux", entrypoint=("/pause",)),
        rootfs=rootfs,
        cgroups_path="/p/infra",
        namespace_paths={},
        host_oom_score_adj=0,
        cgroup_v2=False,
    )
    profile = spec["linux"]["seccomp"]
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "unshare" not in _allowed(profile)  # the infra container holds no capabilities


def test_localhost_seccomp(rootfs: Path, tmp_path: Path) -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    ok = SecurityProfile(ProfileType.LOCALHOST, str(tmp_path / "p.json"))
    spec = build(rootfs, ContainerConfig(name="c", security=SecurityContext(seccomp=ok)))
    assert spec["linux"]["seccomp"] == doc
    missing = SecurityProfile(ProfileType.LOCALHOST, str(tmp_path / "nope.json"))
    with pytest.raises(InvalidArgument, match=r"nope\.json"):
        build(rootfs, ContainerConfig(name="c", security=SecurityContext(seccomp=missing)))


@pytest.mark.parametrize(
    ("container", "match"),
    [
        (
            ContainerConfig(name="c", security=SecurityContext(run_as_username="ghost")),
            "'ghost' not found in /etc/passwd of image docker.io/x:1",
        ),
        (
            ContainerConfig(
                name="c",
                devices=(Device(container_path="/dev/gone", host_path="/dev/pinnace-nope"),),
            ),
            "/dev/pinnace-nope",
        ),
        (
            ContainerConfig(
                name="c",
                security=SecurityContext(capabilities=Capabilities(add=("WINGS",))),
            ),
            "WINGS",
        ),
        (
            ContainerConfig(name="c", mounts=(Mount(container_path="/x", host_path="x"),)),
            "must be absolute",
        ),
    ],
)
def test_invalid_requests(rootfs: Path, container: ContainerConfig, match: str) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidArgument, match=match):
        build(rootfs, replace(container, image="docker.io/x:1"))


def test_no_command(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        build_container_spec(
            container=ContainerConfig(name="c"),
            sandbox=sandbox(),
            image=ImageConfig(architecture="amd64", os="linux"),
            rootfs=rootfs,
            cgroups_path="/x",
            sandbox_files=SandboxFiles(),
            namespace_paths={},
            host_oom_score_adj=0,
            cgroup_v2=False,
            all_capabilities=ALL,
        )


def test_infra_spec(rootfs: Path) -> None:
    image = ImageConfig(
        architecture="amd64", os="linux", entrypoint=("/bin/sleep", "infinity"), env=("A=1",)
    )
    spec = build_infra_spec(
        sandbox=sandbox(),
        image=image,
        rootfs=rootfs,
        cgroups_path="/pinnace/sb1/infra",
        namespace_paths=PINNED,
        host_oom_score_adj=0,
        cgroup_v2=False,
        image_name="busybox:1",
    )
    assert json.loads(json.dumps(spec)) == spec
    proc = spec["process"]
    assert proc["args"] == ["/bin/sleep", "infinity"]
    assert proc["noNewPrivileges"] is True
    assert proc["capabilities"] == {"bounding": [], "effective": [], "permitted": []}
    assert proc["user"]["uid"] == 0
    assert "oomScoreAdj" not in proc  # -998 is below the daemon's 0
    assert proc["env"][1:] == ["A=1"]
    assert spec["root"]["readonly"] is True
    assert spec["linux"]["namespaces"][0] == {"type": "pid"}
    assert {"type": "network", "path": "/run/ns/net"} in spec["linux"]["namespaces"]
    assert spec["linux"]["resources"]["cpu"] == {"shares": 2}
    assert "hostname" not in spec
    ann = spec["annotations"]
    assert ann["io.kubernetes.cri.container-type"] == "sandbox"
    assert ann["io.kubernetes.cri.sandbox-id"] == "sb1"
    assert ann["io.kubernetes.cri.sandbox-log-directory"] == "/var/log/pods/x"
    assert ann["io.kubernetes.cri.podsandbox.image-name"] == "busybox:1"
    assert ann["pod"] == "annotation"
    with pytest.raises(InvalidArgument, match="no entrypoint or cmd"):
        build_infra_spec(
            sandbox=sandbox(),
            image=ImageConfig(architecture="amd64", os="linux"),
            rootfs=rootfs,
            cgroups_path="/x",
            namespace_paths=PINNED,
            host_oom_score_adj=0,
            cgroup_v2=False,
        )


def test_apparmor_localhost_profile_in_the_spec_where_the_host_has_apparmor(rootfs: Path) -> None:
    from runtime.errors import FailedPrecondition
    from runtime.oci.lsm import HostSecurityModules

    local = SecurityProfile(ProfileType.LOCALHOST, "my-profile")
    c = ContainerConfig(name="c", security=SecurityContext(apparmor=local))
    kwargs: dict[str, Any] = {
        "container": c,
        "sandbox": sandbox(),
        "image": IMAGE,
        "rootfs": rootfs,
        "cgroups_path": "/p/c",
        "sandbox_files": SandboxFiles(),
        "namespace_paths": PINNED,
        "host_oom_score_adj": 0,
        "cgroup_v2": False,
        "all_capabilities": ALL,
    }
    spec = build_container_spec(**kwargs, security_modules=HostSecurityModules(apparmor=True))
    assert spec["process"]["apparmorProfile"] == "my-profile"
    with pytest.raises(FailedPrecondition, match="AppArmor is not enabled on this host"):
        build_container_spec(**kwargs)
    assert "apparmorProfile" not in build(rootfs)["process"]  # RuntimeDefault: none of ours
