"""Isolation end to end: what the kernel enforces inside real containers of a real pinnaced,
checked from inside them. Seccomp's RuntimeDefault (an allow list) refuses the calls outside
it with EPERM while busybox, a shell and exec probes keep working."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images, syscalls
from tests.support.daemon import Pinnaced, mounts_under
from tests.support.layers import TarBuilder
from tests.support.push import push_image
from tests.support.registry import Registry

U64 = (1 << 64) - 1
# name → (program, errno without seccomp on the test machines, as root without the caps)
PROBES = {
    # KEYCTL_GET_KEYRING_ID of the session keyring: succeeds for anyone
    "keyctl": (syscalls.program("keyctl", (0, -3 & U64, 0)), 0),
    # an unknown bpf command: EINVAL when the kernel gets to see it
    "bpf": (syscalls.program("bpf", (999, 0, 0)), 22),
    # unknown kexec flags: EINVAL, or ENOSYS on kernels without kexec
    "kexec_load": (syscalls.program("kexec_load", (0, 0, 0, 0xDEAD0000)), None),
    # unshare of nothing: a no-op that succeeds
    "unshare": (syscalls.program("unshare", (0,)), 0),
    # ADDR_NO_RANDOMIZE: allowed by the kernel, refused by the profile's argument rule (a
    # deny list of calls would let it through)
    "personality": (syscalls.program("personality", (0x0040000,)), 0),
    "getpid": (syscalls.program("getpid"), 0),
}

pytestmark = pytest.mark.skipif(
    not syscalls.supported(), reason="the syscall probes are x86_64 programs"
)


@pytest.fixture(scope="module")
def iso_images(registry: Registry) -> dict[str, str]:
    probes = TarBuilder().directory("/probe")
    for name, (program, _) in PROBES.items():
        probes.file(f"/probe/{name}", program, mode=0o755)
    probes.symlink("/bin/unshare", "busybox")
    # for the groups policy: app (1000:1000) is a member of group 50000
    probes.file("/etc/group", "root:x:0:\napp:x:1000:\nfifty:x:50000:app\n")
    box = images.busybox_image(
        config=images.ImageConfig(cmd=("/bin/sh",)), extra_layers=(probes.build(),)
    )
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/isobox", "v1", box)
    push_image(registry.url, "test/isopause", "v1", pause)
    return {"box": f"{registry.host}/test/isobox:v1", "pause": f"{registry.host}/test/isopause:v1"}


@dataclass
class Env:
    daemon: Pinnaced
    runtime: Any
    images: dict[str, str]
    log_dir: Path

    def pod_config(self, *, pid: int = pb.CONTAINER, seccomp: Any = None) -> pb.PodSandboxConfig:
        name = f"iso-{uuid.uuid4().hex[:8]}"
        sc = pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(pid=pid))
        if seccomp is not None:
            sc.seccomp.CopyFrom(seccomp)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
            hostname=name,
            log_directory=str(self.log_dir / name),
            linux=pb.LinuxPodSandboxConfig(security_context=sc),
        )

    def run_pod(self, config: pb.PodSandboxConfig, handler: str = "") -> str:
        reply = self.runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=handler), timeout=120
        )
        return str(reply.pod_sandbox_id)

    def run(
        self,
        pod_id: str,
        pod: pb.PodSandboxConfig,
        name: str,
        security: pb.LinuxContainerSecurityContext,
        command: tuple[str, ...] = ("sleep", "1000"),
        mounts: tuple[pb.Mount, ...] = (),
    ) -> str:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=self.images["box"]),
            command=list(command),
            log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(security_context=security),
            mounts=list(mounts),
        )
        cid = self.runtime.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod),
            timeout=60,
        ).container_id
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        return str(cid)

    def exec(self, cid: str, cmd: list[str]) -> pb.ExecSyncResponse:
        return self.runtime.ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=30), timeout=60
        )

    def errnos(self, cid: str) -> dict[str, int]:
        """Each probe's errno, run inside the container."""
        script = "for p in /probe/*; do $p; echo ${p#/probe/} $?; done"
        reply = self.exec(cid, ["sh", "-c", script])
        assert reply.exit_code == 0, reply.stderr
        return {k: int(v) for k, v in (ln.split() for ln in reply.stdout.decode().splitlines())}


CRUN_WRAPPER = Path(__file__).resolve().parents[2] / "deploy" / "crun-hybrid-cgroups"


@pytest.fixture
def env(pinnaced, iso_images, tmp_path) -> Iterator[Env]:
    daemon = pinnaced(
        config_text=(
            f'[images]\nsandbox_image = "{iso_images["pause"]}"\n'
            '[runtime.handlers.runc]\nbinary = "/usr/sbin/runc"\n'
            f'[runtime.handlers.crun]\nbinary = "{CRUN_WRAPPER}"\n'
        ),
        start=False,
    )
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    daemon.start()
    runtime, image = daemon.clients()
    for ref in iso_images.values():
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    yield Env(daemon, runtime, iso_images, tmp_path / "logs")
    for pod in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    assert mounts_under([daemon.root, daemon.state]) == []


RUNTIME_DEFAULT = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)
UNCONFINED = pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)


def _security(
    seccomp: pb.SecurityProfile, *, pid: int = pb.CONTAINER, add: tuple[str, ...] = ()
) -> pb.LinuxContainerSecurityContext:
    return pb.LinuxContainerSecurityContext(
        seccomp=seccomp,
        namespace_options=pb.NamespaceOption(pid=pid),
        capabilities=pb.Capability(add_capabilities=list(add)),
    )


@pytest.mark.parametrize("handler", ["", "crun"], ids=["runc", "crun"])
def test_runtime_default_refuses_calls_outside_the_allow_list(env: Env, handler: str) -> None:
    # what the kubelet sends: RuntimeDefault for the sandbox (`seccomp: {}`) and the
    # container; a shared PID namespace, so the infra container runs under it too
    pod = env.pod_config(pid=pb.POD, seccomp=pb.SecurityProfile())
    pod_id = env.run_pod(pod, handler=handler)
    confined = env.run(pod_id, pod, "confined", _security(RUNTIME_DEFAULT, pid=pb.POD))
    free = env.run(pod_id, pod, "free", _security(UNCONFINED, pid=pb.POD))

    assert env.errnos(confined) == {
        "keyctl": syscalls.EPERM,
        "bpf": syscalls.EPERM,
        "kexec_load": syscalls.EPERM,
        "unshare": syscalls.EPERM,
        "personality": syscalls.EPERM,
        "getpid": 0,
    }
    # the same programs unconfined get the kernel's own answers: the EPERMs were seccomp's
    unconfined = env.errnos(free)
    for name, (_, errno) in PROBES.items():
        if errno is not None:
            assert unconfined[name] == errno, name
    assert unconfined["kexec_load"] != syscalls.EPERM

    refused = env.exec(confined, ["unshare", "true"])
    assert refused.exit_code != 0
    assert b"Operation not permitted" in refused.stderr

    # a shell, busybox and exec probes work; the container and the infra container
    # (PID 1 of the shared namespace) are filtered, the unconfined one is not
    probe = env.exec(
        confined,
        [
            "sh",
            "-c",
            "echo $(( 6 * 7 )); ls /bin | grep -c busybox; id -u; "
            "grep Seccomp: /proc/self/status /proc/1/status",
        ],
    )
    assert probe.exit_code == 0, probe.stderr
    lines = probe.stdout.decode().splitlines()
    assert lines[:3] == ["42", "1", "0"]
    assert lines[3].split() == ["/proc/self/status:Seccomp:", "2"]
    assert lines[4].split() == ["/proc/1/status:Seccomp:", "2"]
    status = env.exec(free, ["grep", "Seccomp:", "/proc/self/status"]).stdout.split()
    assert status == [b"Seccomp:", b"0"]


def test_runtime_default_follows_the_capabilities(env: Env) -> None:
    pod = env.pod_config(seccomp=pb.SecurityProfile())
    pod_id = env.run_pod(pod)
    admin = env.run(pod_id, pod, "admin", _security(RUNTIME_DEFAULT, add=("SYS_ADMIN",)))
    # CAP_SYS_ADMIN opens namespaces (clone with namespace flags, unshare) and mounts...
    made = env.exec(admin, ["unshare", "-u", "sh", "-c", "hostname inner && hostname"])
    assert made.exit_code == 0, made.stderr
    assert made.stdout == b"inner\n"
    assert env.exec(admin, ["hostname"]).stdout.strip() != b"inner"
    # ...but the calls refused to everyone stay refused
    errnos = env.errnos(admin)
    assert errnos["keyctl"] == errnos["kexec_load"] == syscalls.EPERM
    assert errnos["unshare"] == 0


# -- recursive read-only mounts ----------------------------------------------------------
@pytest.fixture
def tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted on its ``sub`` directory (unmounted after)."""
    top = tmp_path / "vol"
    (top / "sub").mkdir(parents=True)
    (top / "top-file").write_text("top\n")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "pinnace-test", str(top / "sub")], check=True
    )
    try:
        (top / "sub" / "marker").write_text("submount\n")
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top / "sub")], check=False)


def _write(env: Env, cid: str, path: str) -> tuple[int, str]:
    reply = env.exec(cid, ["sh", "-c", f"echo x > {path}"])
    return reply.exit_code, reply.stderr.decode()


def test_recursive_read_only_mounts(env: Env, tree_with_submount: Path) -> None:
    handlers = {
        h.name: h.features.recursive_read_only_mounts
        for h in env.runtime.Status(pb.StatusRequest()).runtime_handlers
    }
    # runc lists rro in its `features`; Debian's crun 1.8.1 has no `features` command
    assert handlers == {"": True, "runc": True, "crun": False}

    pod = env.pod_config()
    pod_id = env.run_pod(pod)
    plain_mount = pb.Mount(container_path="/vol", host_path=str(tree_with_submount), readonly=True)
    rro_mount = pb.Mount(
        container_path="/vol",
        host_path=str(tree_with_submount),
        readonly=True,
        recursive_read_only=True,
    )
    plain = env.run(pod_id, pod, "plain", _security(RUNTIME_DEFAULT), mounts=(plain_mount,))
    rro = env.run(pod_id, pod, "rro", _security(RUNTIME_DEFAULT), mounts=(rro_mount,))

    # a plain read-only bind is recursive: the submount is there, but only the top is
    # read-only (the kernel's rule, and why rro exists)
    assert env.exec(plain, ["cat", "/vol/sub/marker"]).stdout == b"submount\n"
    code, err = _write(env, plain, "/vol/top-new")
    assert code != 0 and "Read-only file system" in err
    assert _write(env, plain, "/vol/sub/plain-new") == (0, "")
    # rro: the whole tree is read-only
    assert env.exec(rro, ["cat", "/vol/sub/marker"]).stdout == b"submount\n"
    for path in ("/vol/top-new", "/vol/sub/rro-new"):
        code, err = _write(env, rro, path)
        assert code != 0 and "Read-only file system" in err, path
    assert not (tree_with_submount / "sub" / "rro-new").exists()

    # ContainerStatus.mounts: exactly the CRI mounts asked for (no /etc/hosts and the like)
    status = env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=rro)).status
    assert list(status.mounts) == [rro_mount]


@pytest.mark.parametrize(
    ("mount", "handler", "message"),
    [
        ({"readonly": False}, "", "recursive_read_only needs readonly: true"),
        (
            {"readonly": True, "propagation": pb.PROPAGATION_HOST_TO_CONTAINER},
            "",
            "needs PROPAGATION_PRIVATE",
        ),
        ({"readonly": True}, "crun", "not supported by this runtime handler"),
    ],
    ids=["not-readonly", "propagation", "handler-without-rro"],
)
def test_recursive_read_only_refusals(env: Env, tmp_path: Path, mount, handler, message) -> None:
    pod = env.pod_config()
    pod_id = env.run_pod(pod, handler=handler)
    bad = pb.Mount(
        container_path="/vol", host_path=str(tmp_path), recursive_read_only=True, **mount
    )
    with pytest.raises(grpc.RpcError) as info:
        env.run(pod_id, pod, "bad", _security(RUNTIME_DEFAULT), mounts=(bad,))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


# -- supplemental groups policy ------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "groups"),
    [(pb.Merge, [1000, 50000, 60000]), (pb.Strict, [1000, 60000])],
    ids=["merge", "strict"],
)
def test_supplemental_groups_policy(env: Env, policy, groups: list[int]) -> None:
    assert env.runtime.Status(pb.StatusRequest()).features.supplemental_groups_policy
    pod = env.pod_config()
    pod_id = env.run_pod(pod)
    security = pb.LinuxContainerSecurityContext(
        run_as_user=pb.Int64Value(value=1000),
        supplemental_groups=[60000],
        supplemental_groups_policy=policy,
        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER),
    )
    cid = env.run(pod_id, pod, "groups", security)
    # what the kernel gave the process
    reply = env.exec(cid, ["sh", "-c", "id -u; id -g; id -G; grep ^Groups: /proc/self/status"])
    lines = reply.stdout.decode().splitlines()
    assert lines[:2] == ["1000", "1000"]
    assert sorted(int(g) for g in lines[2].split()) == groups
    assert sorted(int(g) for g in lines[3].split()[1:]) == groups
    # and what ContainerStatus says of it
    status = env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert status.user.linux == pb.LinuxContainerUser(
        uid=1000, gid=1000, supplemental_groups=groups
    )


# -- AppArmor and SELinux on a host without them ---------------------------------------------
LOCAL_APPARMOR = pb.SecurityProfile(
    profile_type=pb.SecurityProfile.Localhost, localhost_ref="localhost/my-profile"
)


def test_apparmor_and_selinux_on_a_host_without_them(env: Env, tmp_path: Path) -> None:
    if Path("/sys/module/apparmor/parameters/enabled").exists():
        pytest.skip("this host has AppArmor")
    # a pod asking for a specific AppArmor profile: refused before anything is made
    pod = env.pod_config()
    pod.linux.security_context.apparmor.CopyFrom(LOCAL_APPARMOR)
    with pytest.raises(grpc.RpcError) as info:
        env.run_pod(pod)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "AppArmor profile 'my-profile' requested" in info.value.details()
    assert env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []

    # SELinux labels and relabelling are accepted and ignored; RuntimeDefault AppArmor is
    # accepted and reported as not applied
    pod = env.pod_config()
    pod.linux.security_context.selinux_options.CopyFrom(
        pb.SELinuxOption(user="system_u", role="system_r", type="spc_t", level="s0")
    )
    pod_id = env.run_pod(pod)
    security = _security(RUNTIME_DEFAULT)
    security.apparmor.CopyFrom(pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    security.selinux_options.CopyFrom(pb.SELinuxOption(type="container_t", level="s0:c1,c2"))
    relabelled = pb.Mount(container_path="/data", host_path=str(tmp_path), selinux_relabel=True)
    cid = env.run(pod_id, pod, "labels", security, mounts=(relabelled,))
    assert env.exec(cid, ["sh", "-c", "echo ok > /data/f && cat /data/f"]).stdout == b"ok\n"
    verbose = env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True))
    assert json.loads(verbose.info["info"])["apparmor"] == {
        "requested": "runtime/default",
        "applied": "",
    }

    # a container asking for a specific profile: refused, naming it
    security = _security(RUNTIME_DEFAULT)
    security.apparmor.CopyFrom(LOCAL_APPARMOR)
    with pytest.raises(grpc.RpcError) as info:
        env.run(pod_id, pod, "confined", security)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "container 'confined': AppArmor profile 'my-profile'" in info.value.details()


# -- image volumes -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def volume_image(registry: Registry) -> str:
    """An image of data and programs only (no busybox): /tools/bin/{getpid,hello.sh}."""
    tar = TarBuilder().directory("/tools").directory("/tools/bin").directory("/data")
    tar.file("/tools/bin/getpid", syscalls.program("getpid"), mode=0o755)
    tar.file("/tools/bin/hello.sh", "#!/bin/sh\necho hello from the volume\n", mode=0o755)
    tar.file("/data/motd", "volume data\n")
    image = images.ImageBuilder(config=images.ImageConfig(cmd=None)).add_layer(tar.build())
    push_image(registry.url, "test/isovolume", "v1", image.build())
    return f"{registry.host}/test/isovolume:v1"


def test_image_volumes(env: Env, volume_image: str) -> None:
    _, image_client = env.daemon.clients()
    image_id = image_client.PullImage(
        pb.PullImageRequest(image=pb.ImageSpec(image=volume_image)), timeout=120
    ).image_ref
    pod = env.pod_config()
    pod_id = env.run_pod(pod)
    # as the kubelet sends them: the image by its id, read-only
    whole = pb.Mount(container_path="/vol", image=pb.ImageSpec(image=image_id), readonly=True)
    sub = pb.Mount(
        container_path="/tools",
        image=pb.ImageSpec(image=volume_image),
        image_sub_path="tools/bin",
        readonly=True,
    )
    cid = env.run(pod_id, pod, "uses-volume", _security(RUNTIME_DEFAULT), mounts=(whole, sub))

    assert env.exec(cid, ["cat", "/vol/data/motd"]).stdout == b"volume data\n"
    # programs in the volume run (no noexec): a static binary and a script
    assert env.exec(cid, ["/vol/tools/bin/getpid"]).exit_code == 0
    assert env.exec(cid, ["/tools/hello.sh"]).stdout == b"hello from the volume\n"
    assert env.exec(cid, ["ls", "/tools"]).stdout.split() == [b"getpid", b"hello.sh"]
    code, err = _write(env, cid, "/vol/data/new")
    assert code != 0 and "Read-only file system" in err

    status = env.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert [(m.container_path, m.image.image, m.image_sub_path) for m in status.mounts] == [
        ("/vol", image_id, ""),
        ("/tools", volume_image, "tools/bin"),
    ]
    # the image's layers outlive its record while a container uses them
    image_client.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image_id)))
    assert env.exec(cid, ["cat", "/vol/data/motd"]).stdout == b"volume data\n"
    # removing the running container takes its image volumes with it (the env fixture then
    # checks nothing is left mounted)
    env.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    assert env.runtime.ListContainers(pb.ListContainersRequest()).containers == []


def test_image_volume_refusals(env: Env, volume_image: str) -> None:
    _, image_client = env.daemon.clients()
    image_client.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=volume_image)))
    pod = env.pod_config()
    pod_id = env.run_pod(pod)
    cases = [
        (pb.Mount(container_path="/v", image=pb.ImageSpec(image=volume_image)), "must be readonly"),
        (
            pb.Mount(
                container_path="/v",
                image=pb.ImageSpec(image=volume_image),
                image_sub_path="no/such/dir",
                readonly=True,
            ),
            "image_sub_path 'no/such/dir' is not a directory in the image",
        ),
    ]
    for mount, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            env.run(pod_id, pod, "bad-volume", _security(RUNTIME_DEFAULT), mounts=(mount,))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in info.value.details()
    assert mounts_under([env.daemon.state / "containers"]) == []  # nothing half-made


# -- user namespaces: the request rules (running pods in one: tests/e2e/test_userns.py) ----
def test_user_namespace_requests(env: Env) -> None:
    mapping = pb.IDMapping(host_id=100000, container_id=0, length=65536)
    cases = [
        (pb.UserNamespace(mode=pb.CONTAINER), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.UserNamespace(mode=pb.POD, uids=[mapping]), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.UserNamespace(
                mode=pb.POD,
                uids=[pb.IDMapping(host_id=100000, container_id=1, length=10)],
                gids=[mapping],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # crun 1.8.1 states no features, so no user namespace (runc: tests/e2e/test_userns.py)
        (
            pb.UserNamespace(mode=pb.POD, uids=[mapping], gids=[mapping]),
            grpc.StatusCode.UNIMPLEMENTED,
        ),
    ]
    for userns, code in cases:
        pod = env.pod_config()
        pod.linux.security_context.namespace_options.userns_options.CopyFrom(userns)
        with pytest.raises(grpc.RpcError) as info:
            env.run_pod(pod, handler="crun")
        assert info.value.code() == code, userns
    assert env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    # what the kubelet sends for hostUsers: true
    pod = env.pod_config()
    pod.linux.security_context.namespace_options.userns_options.CopyFrom(
        pb.UserNamespace(mode=pb.NODE)
    )
    assert env.run_pod(pod)
