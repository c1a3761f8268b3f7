"""Pods in their own user namespace (``userns_options`` mode POD, what the kubelet sends for
``hostUsers: false``), end to end with a real pinnaced, runc and containers: what the kernel
enforces, checked from inside the container, and nothing left on the node afterwards."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.mount import linux
from tests.e2e.test_cli_pods import Cli
from tests.support import images
from tests.support.daemon import Pinnaced, cgroup_dirs_of, mounts_under
from tests.support.push import push_image
from tests.support.registry import Registry

CRUN_WRAPPER = Path(__file__).resolve().parents[2] / "deploy" / "crun-hybrid-cgroups"
HOST_ID = 100000
LENGTH = 65536
MAPPING = pb.IDMapping(host_id=HOST_ID, container_id=0, length=LENGTH)


@pytest.fixture(scope="module")
def userns_images(registry: Registry) -> dict[str, str]:
    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",)))
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/usernsbox", "v1", box)
    push_image(registry.url, "test/usernspause", "v1", pause)
    return {
        "box": f"{registry.host}/test/usernsbox:v1",
        "pause": f"{registry.host}/test/usernspause:v1",
    }


@pytest.fixture
def daemon(pinnaced: Any, userns_images: dict[str, str]) -> Iterator[Pinnaced]:
    d: Pinnaced = pinnaced(
        config_text=(
            f'[images]\nsandbox_image = "{userns_images["pause"]}"\n'
            '[runtime.handlers.runc]\nbinary = "/usr/sbin/runc"\n'
            f'[runtime.handlers.crun]\nbinary = "{CRUN_WRAPPER}"\n'
        ),
        start=False,
    )
    # the harness's state directory is a mkdtemp (0700); the pod's root must reach its
    # rootfs by path from inside its user namespace
    d.short_dir.chmod(0o711)
    d.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    _, image = d.clients()
    for ref in userns_images.values():
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    yield d
    runtime = d.runtime
    for pod in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    assert mounts_under([d.root, d.state]) == []


def _pod_config(tmp_path: Path, *, pid: int = pb.POD) -> pb.PodSandboxConfig:
    name = f"userns-{uuid.uuid4().hex[:8]}"
    userns = pb.UserNamespace(mode=pb.POD, uids=[MAPPING], gids=[MAPPING])
    sc = pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(pid=pid, userns_options=userns)
    )
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
        hostname=name,
        log_directory=str(tmp_path / "logs" / name),
        linux=pb.LinuxPodSandboxConfig(security_context=sc),
    )


def _container(
    image: str, pod: pb.PodSandboxConfig, mounts: list[pb.Mount], pid: int = pb.POD
) -> pb.ContainerConfig:
    ns = pod.linux.security_context.namespace_options
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app"),
        image=pb.ImageSpec(image=image),
        command=["sleep", "1000"],
        log_path="app.log",
        mounts=mounts,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pid, userns_options=ns.userns_options)
            )
        ),
    )


def _started(
    runtime: Any, pod_id: str, pod: pb.PodSandboxConfig, config: pb.ContainerConfig
) -> tuple[str, Callable[[str], pb.ExecSyncResponse]]:
    """Create and start ``config`` in the pod: its id, and ``sh(script)`` run in it."""
    cid = runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod),
        timeout=60,
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)

    def sh(script: str) -> pb.ExecSyncResponse:
        return runtime.ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=30), timeout=60
        )

    return cid, sh


def _children_of(pid: int) -> list[str]:
    """The commands of ``pid``'s live children."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(cmd)
    return out


def test_status_reports_user_namespaces_where_they_work(daemon: Pinnaced) -> None:
    handlers = {
        h.name: h.features.user_namespaces
        for h in daemon.runtime.Status(pb.StatusRequest()).runtime_handlers
    }
    # runc states the user namespace in its `features`; Debian's crun 1.8.1 states nothing
    assert handlers == {"": True, "runc": True, "crun": False}


@pytest.mark.parametrize("pid", [pb.POD, pb.CONTAINER], ids=["shared-pid", "own-pid"])
def test_pod_in_its_own_user_namespace(
    daemon: Pinnaced, userns_images: dict[str, str], tmp_path: Path, pid: int
) -> None:
    runtime = daemon.runtime
    # a host directory the pod's root can reach (pytest's tmp_path is under a 0700 directory)
    host_dir = daemon.short_dir / "host"
    host_dir.mkdir(mode=0o755)
    secret = host_dir / "secret"
    secret.write_text("host\n")
    secret.chmod(0o644)
    assert os.stat(secret).st_uid == 0

    pod = _pod_config(tmp_path, pid=pid)
    pod_id = runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=pod, runtime_handler="runc"), timeout=120
    ).pod_sandbox_id
    mount = pb.Mount(container_path="/host", host_path=str(host_dir), readonly=False)
    _, sh = _started(runtime, pod_id, pod, _container(userns_images["box"], pod, [mount], pid))

    maps = sh("cat /proc/self/uid_map /proc/self/gid_map")
    assert maps.exit_code == 0, maps.stderr
    assert [ln.split() for ln in maps.stdout.decode().splitlines()] == [
        ["0", str(HOST_ID), str(LENGTH)]
    ] * 2
    # the rootfs (id-mapped layers, upper dir given to the mapped root) is owned by root
    owners = sh("id -u; stat -c '%u:%g' / /bin/busybox /etc; touch /written && stat -c %u /written")
    assert owners.exit_code == 0, owners.stderr
    assert owners.stdout.decode().split() == ["0", "0:0", "0:0", "0:0", "0"]
    # pinnace's pod files are the pod root's; sysfs and /proc mounted in its namespaces
    files = sh("stat -c '%u' /etc/hostname /etc/hosts /dev/shm; ls /sys/class/net; hostname")
    assert files.exit_code == 0, files.stderr
    assert files.stdout.decode().split() == ["0", "0", "0", "lo", pod.hostname]
    # root inside is not root outside: a host file reachable through a read-write mount
    # stays unwritable, and so does the host directory
    attack = sh("echo pwned >> /host/secret; echo $?; touch /host/new; echo $?")
    assert attack.stdout.decode().split() == ["1", "1"], attack.stdout
    assert b"Permission denied" in attack.stderr
    assert secret.read_text() == "host\n"
    assert not (host_dir / "new").exists()

    status = runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert status.status.state == pb.SANDBOX_READY

    runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    # nothing left: mounts (id-mapped scratch mounts, rootfs overlays, pins including the
    # user namespace's), directories, cgroups, helper processes
    assert mounts_under([daemon.root, daemon.state]) == []
    assert not (daemon.state / "sandboxes" / pod_id).exists()
    assert [d for d in cgroup_dirs_of(daemon.cgroup_root) if any(d.rglob(f"*{pod_id}*"))] == []
    assert daemon.pid is not None
    assert [c for c in _children_of(daemon.pid) if "unshare" in c or "read _" in c] == []
    assert runtime.ListContainers(pb.ListContainersRequest()).containers == []


def test_user_namespace_refusals(daemon: Pinnaced, tmp_path: Path) -> None:
    runtime = daemon.runtime
    host_net = _pod_config(tmp_path)
    host_net.linux.security_context.namespace_options.network = pb.NODE
    with pytest.raises(grpc.RpcError) as info:
        runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=host_net))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot use the node's namespaces" in info.value.details()
    # crun (no `features`) is not assumed to join a user namespace
    with pytest.raises(grpc.RpcError) as info:
        runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=_pod_config(tmp_path), runtime_handler="crun")
        )
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # a failure after the namespaces are pinned (a sysctl the kernel does not know) undoes
    # them, the user namespace's pin included, and leaves no helper behind
    bad_sysctl = _pod_config(tmp_path)
    bad_sysctl.linux.sysctls["net.ipv4.no_such_sysctl"] = "1"
    with pytest.raises(grpc.RpcError) as info:
        runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=bad_sysctl))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert mounts_under([daemon.root, daemon.state]) == []
    assert list((daemon.state / "sandboxes").iterdir()) == []
    assert daemon.pid is not None
    assert [c for c in _children_of(daemon.pid) if "unshare" in c or "read _" in c] == []


def test_user_namespaced_pod_survives_a_daemon_restart(
    daemon: Pinnaced, userns_images: dict[str, str], tmp_path: Path
) -> None:
    volume = daemon.short_dir / "volume"
    volume.mkdir(mode=0o755)
    (volume / "keep").write_text("host\n")
    pod = _pod_config(tmp_path, pid=pb.CONTAINER)
    pod_id = daemon.runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=pod), timeout=120
    ).pod_sandbox_id
    cid = daemon.runtime.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=_container(
                userns_images["box"], pod, [_idmapped("/data", str(volume))], pb.CONTAINER
            ),
            sandbox_config=pod,
        ),
        timeout=60,
    ).container_id
    daemon.runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    daemon.restart()
    runtime = daemon.runtime
    # recovery found every pin (the user namespace's too) alive: the pod is still ready
    status = runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert status.status.state == pb.SANDBOX_READY
    maps = runtime.ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/proc/self/uid_map"], timeout=30),
        timeout=60,
    )
    assert maps.stdout.decode().split() == ["0", str(HOST_ID), str(LENGTH)]
    # the id-mapped volume made before the restart still serves the container
    wrote = runtime.ExecSync(
        pb.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "touch /data/new && stat -c %u /data/keep"]
        ),
        timeout=60,
    )
    assert wrote.stdout == b"0\n", wrote
    # the pod removed whole (its container with it): the id-mapped view is detached, and the
    # host directory keeps every file
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert mounts_under([daemon.root, daemon.state]) == []
    assert sorted(p.name for p in volume.iterdir()) == ["keep", "new"]


def _idmapped(container_path: str, host_path: str, **kwargs: Any) -> pb.Mount:
    """A mount as the kubelet sends it for a pod with ``hostUsers: false``: the pod's
    mappings on it."""
    return pb.Mount(
        container_path=container_path,
        host_path=host_path,
        uidMappings=[MAPPING],
        gidMappings=[MAPPING],
        **kwargs,
    )


def test_volumes_are_id_mapped_as_the_kubelet_asks(
    daemon: Pinnaced, userns_images: dict[str, str], tmp_path: Path
) -> None:
    runtime = daemon.runtime
    # what the kubelet makes: an emptyDir-like directory of host root's, a file of another
    # host user's in it, a configMap-like directory mounted read-only; and a host directory
    # sent without mappings (a plain bind)
    empty_dir = daemon.short_dir / "empty-dir"
    empty_dir.mkdir(mode=0o755)
    (empty_dir / "root-file").write_text("root\n")
    (empty_dir / "root-file").chmod(0o644)
    (empty_dir / "user-file").write_text("user\n")
    os.chown(empty_dir / "user-file", 1000, 1000)
    config_map = daemon.short_dir / "config-map"
    config_map.mkdir(mode=0o755)
    (config_map / "key").write_text("value\n")
    termination_log = daemon.short_dir / "termination-log"  # the kubelet's, a file
    termination_log.touch(mode=0o644)
    plain = daemon.short_dir / "plain"
    plain.mkdir(mode=0o755)
    (plain / "secret").write_text("host\n")
    (plain / "secret").chmod(0o644)

    pod = _pod_config(tmp_path, pid=pb.CONTAINER)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id
    mounts = [
        _idmapped("/data", str(empty_dir)),
        _idmapped("/config", str(config_map), readonly=True),
        pb.Mount(container_path="/plain", host_path=str(plain)),
        _idmapped("/image", "", image=pb.ImageSpec(image=userns_images["box"]), readonly=True),
        _idmapped("/dev/termination-log", str(termination_log)),
    ]
    cid, sh = _started(
        runtime, pod_id, pod, _container(userns_images["box"], pod, mounts, pb.CONTAINER)
    )

    # owners as the kernel shows them inside: through the id-mapped mounts host root is the
    # pod's root and host uid 1000 is 1000; through the plain bind host root is nobody
    owners = sh(
        "stat -c '%u:%g' /data /data/root-file /data/user-file /config/key /plain/secret "
        "/image/bin/busybox"
    )
    assert owners.exit_code == 0, owners.stderr
    assert owners.stdout.decode().split() == [
        "0:0",
        "0:0",
        "1000:1000",
        "0:0",
        "65534:65534",
        "0:0",
    ]
    # the pod's root writes its id-mapped volume (the write lands as host root's), not the
    # read-only one, and not the host file reached through the plain bind
    writes = sh(
        "echo more >> /data/root-file; echo $?; touch /data/new; echo $?; "
        "touch /config/new; echo $?; echo pwned >> /plain/secret; echo $?; "
        "touch /image/new; echo $?"
    )
    assert writes.stdout.decode().split() == ["0", "0", "1", "1", "1"], writes
    assert b"Read-only file system" in writes.stderr
    assert b"Permission denied" in writes.stderr
    assert (empty_dir / "root-file").read_text() == "root\nmore\n"
    assert (os.stat(empty_dir / "new").st_uid, os.stat(empty_dir / "new").st_gid) == (0, 0)
    assert not (config_map / "new").exists()
    assert (plain / "secret").read_text() == "host\n"
    # a file mount is id-mapped too: the container's root writes its termination message
    message = sh("stat -c '%u:%g' /dev/termination-log && echo done > /dev/termination-log")
    assert message.stdout == b"0:0\n", message
    assert termination_log.read_text() == "done\n"
    # a binary from the id-mapped image volume runs
    ran = sh("/image/bin/busybox echo from-image")
    assert ran.stdout == b"from-image\n", ran

    # the status reports the mounts as asked (host paths, mappings), not pinnace's copies
    status = runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    reported = {m.container_path: m for m in status.mounts}
    assert reported["/data"].host_path == str(empty_dir)
    assert list(reported["/data"].uidMappings) == [MAPPING]
    assert not reported["/plain"].uidMappings

    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    # the id-mapped views are gone and nothing of the host's went with them
    assert mounts_under([daemon.root, daemon.state / "containers"]) == []
    assert sorted(p.name for p in empty_dir.iterdir()) == ["new", "root-file", "user-file"]
    assert (config_map / "key").read_text() == "value\n"
    assert termination_log.read_text() == "done\n"
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert mounts_under([daemon.root, daemon.state]) == []


def test_mounts_with_their_own_mappings(
    daemon: Pinnaced, userns_images: dict[str, str], tmp_path: Path
) -> None:
    """As runc does for the mappings containerd hands it: a mount's own mappings apply,
    whatever the pod's user namespace (pinnace maps it through a namespace made for them)."""
    runtime = daemon.runtime
    users = daemon.short_dir / "users"  # a host directory of host user 1000's
    users.mkdir(mode=0o755)
    os.chown(users, 1000, 1000)
    (users / "file").write_text("a\n")
    os.chown(users / "file", 1000, 1000)
    rooted = daemon.short_dir / "rooted"  # and one of host root's
    rooted.mkdir(mode=0o755)
    (rooted / "file").write_text("b\n")

    def sh(cid: str, script: str) -> list[str]:
        out = runtime.ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script]), timeout=60
        )
        return out.stdout.decode().split()

    # in a pod with its own user namespace (0 -> 100000): host uid 1000 as the pod's root
    pod = _pod_config(tmp_path, pid=pb.CONTAINER)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id
    to_root = pb.IDMapping(container_id=1000, host_id=HOST_ID, length=1)
    mount = pb.Mount(
        container_path="/users", host_path=str(users), uidMappings=[to_root], gidMappings=[to_root]
    )
    cid = runtime.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            config=_container(userns_images["box"], pod, [mount], pb.CONTAINER),
            sandbox_config=pod,
        ),
        timeout=60,
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert sh(cid, "stat -c %u:%g /users/file; touch /users/new; echo $?") == ["0:0", "0"]
    # the namespace made for the mount's mappings lived only while it was id-mapped
    assert daemon.pid is not None
    assert [c for c in _children_of(daemon.pid) if "unshare" in c or "read _" in c] == []
    assert (os.stat(users / "new").st_uid, os.stat(users / "new").st_gid) == (1000, 1000)

    # in a pod in the node's user namespace: host root's files shown as uid 1000, and root
    # (unmapped on that mount) cannot create files there (the kernel has no on-disk owner
    # to give them)
    plain_pod = _pod_config(tmp_path, pid=pb.CONTAINER)
    plain_pod.linux.security_context.namespace_options.ClearField("userns_options")
    plain_id = runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=plain_pod), timeout=120
    ).pod_sandbox_id
    shift = pb.IDMapping(container_id=0, host_id=1000, length=1)
    mount = pb.Mount(
        container_path="/rooted", host_path=str(rooted), uidMappings=[shift], gidMappings=[shift]
    )
    config = _container(userns_images["box"], plain_pod, [mount], pb.CONTAINER)
    config.linux.security_context.namespace_options.ClearField("userns_options")
    plain_cid = runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=plain_id, config=config, sandbox_config=plain_pod),
        timeout=60,
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=plain_cid), timeout=60)
    seen = sh(plain_cid, "id -u; stat -c %u /rooted/file; touch /rooted/new; echo $?")
    assert seen == ["0", "1000", "1"], seen
    assert not (rooted / "new").exists()

    for sid in (pod_id, plain_id):
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)
    assert mounts_under([daemon.root, daemon.state]) == []
    assert sorted(p.name for p in users.iterdir()) == ["file", "new"]


def test_id_mapping_refusals(
    daemon: Pinnaced, userns_images: dict[str, str], tmp_path: Path
) -> None:
    runtime = daemon.runtime
    host_dir = daemon.short_dir / "refusals"
    host_dir.mkdir(mode=0o755)
    pod = _pod_config(tmp_path, pid=pb.CONTAINER)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id

    def create(config: pb.ContainerConfig) -> str:
        with pytest.raises(grpc.RpcError) as info:
            runtime.CreateContainer(
                pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod),
                timeout=60,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
        return str(info.value.details())

    # an id-mapped mount of a user-namespaced pod cannot send mounts back to the node
    mount = _idmapped("/v", str(host_dir), propagation=pb.PROPAGATION_BIDIRECTIONAL)
    details = create(_container(userns_images["box"], pod, [mount], pb.CONTAINER))
    assert "mounts[0]" in details and "cannot be PROPAGATION_BIDIRECTIONAL" in details
    # an image volume is id-mapped through the pod's user namespace only
    other = pb.IDMapping(host_id=200000, container_id=0, length=LENGTH)
    volume = pb.Mount(
        container_path="/i",
        image=pb.ImageSpec(image=userns_images["box"]),
        readonly=True,
        uidMappings=[other],
        gidMappings=[other],
    )
    details = create(_container(userns_images["box"], pod, [volume], pb.CONTAINER))
    assert "image volume" in details and "200000" in details
    # a container whose userns_options are not its pod's (other mappings, or none at all)
    mismatched = _container(userns_images["box"], pod, [], pb.CONTAINER)
    own = mismatched.linux.security_context.namespace_options.userns_options
    own.uids[0].host_id = 300000
    details = create(mismatched)
    assert "userns_options" in details and "300000" in details and "100000" in details
    unset = _container(userns_images["box"], pod, [], pb.CONTAINER)
    unset.linux.security_context.namespace_options.ClearField("userns_options")
    assert "mode NODE (or unset)" in create(unset)
    # mappings the kernel refuses (overlapping ranges) are named
    overlap = [
        pb.IDMapping(container_id=0, host_id=HOST_ID, length=10),
        pb.IDMapping(container_id=5, host_id=HOST_ID + 100, length=10),
    ]
    mount = pb.Mount(
        container_path="/v", host_path=str(host_dir), uidMappings=overlap, gidMappings=overlap
    )
    assert "the kernel refuses the uid_map" in create(
        _container(userns_images["box"], pod, [mount], pb.CONTAINER)
    )
    assert runtime.ListContainers(pb.ListContainersRequest()).containers == []
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert mounts_under([daemon.root, daemon.state]) == []


def test_root_file_systems_that_cannot_be_id_mapped_are_refused(
    daemon: Pinnaced, pinnaced: Any, registry: Registry, tmp_path: Path
) -> None:
    # an image without layers has a plain directory for a root file system (no overlay):
    # nothing to id-map, so its container is refused, saying why
    empty = images.ImageBuilder(config=images.ImageConfig(cmd=("/none",))).build()
    push_image(registry.url, "test/nolayers", "v1", empty)
    ref = f"{registry.host}/test/nolayers:v1"
    runtime, image = daemon.clients()
    image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)
    pod = _pod_config(tmp_path, pid=pb.CONTAINER)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id
    with pytest.raises(grpc.RpcError) as info:
        runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=_container(ref, pod, [], pb.CONTAINER),
                sandbox_config=pod,
            ),
            timeout=60,
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "at least one layer" in info.value.details()
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert mounts_under([daemon.root, daemon.state]) == []

    # the native (copying) snapshotter's root file systems are plain directories too: such a
    # node reports no user namespaces and refuses the pods, naming the snapshotter
    native: Pinnaced = pinnaced(config_text='[images]\nsnapshotter = "native"\n', start=False)
    native.short_dir.chmod(0o711)
    native.start()
    handlers = native.runtime.Status(pb.StatusRequest()).runtime_handlers
    assert [h.features.user_namespaces for h in handlers] == [False] * len(handlers)
    with pytest.raises(grpc.RpcError) as info:
        native.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=_pod_config(tmp_path)))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "native (copying) snapshotter" in info.value.details()


def test_an_id_mapped_volume_receives_mounts_from_the_node(
    daemon: Pinnaced, userns_images: dict[str, str], tmp_path: Path
) -> None:
    # a shared host directory (as the kubelet's pod directories are under a shared /),
    # mounted HostToContainer with the pod's mappings: a mount made below it on the node
    # after the container started appears inside
    shared = daemon.short_dir / "shared"
    (shared / "sub").mkdir(parents=True, mode=0o755)
    (shared / "early").mkdir(mode=0o755)
    linux.bind(shared, shared)
    try:
        linux.set_propagation(shared, "rshared")
        # a mount already below the volume (the node's): only the volume's own mount is
        # id-mapped, as runc's idmap does, so this one's root-owned files stay the node's
        linux.mount_one(linux.Mount("tmpfs", "early", ("mode=0755",)), shared / "early")
        (shared / "early" / "f").write_text("node\n")
        pod = _pod_config(tmp_path, pid=pb.CONTAINER)
        runtime = daemon.runtime
        pod_id = runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=pod), timeout=120
        ).pod_sandbox_id
        mount = _idmapped("/shared", str(shared), propagation=pb.PROPAGATION_HOST_TO_CONTAINER)
        cid = runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=pod_id,
                config=_container(userns_images["box"], pod, [mount], pb.CONTAINER),
                sandbox_config=pod,
            ),
            timeout=60,
        ).container_id
        runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        linux.mount_one(linux.Mount("tmpfs", "late", ("mode=0755",)), shared / "sub")
        (shared / "sub" / "f").write_text("late\n")
        seen = runtime.ExecSync(
            pb.ExecSyncRequest(
                container_id=cid,
                cmd=["sh", "-c", "cat /shared/sub/f; stat -c %u /shared /shared/sub/f"],
            ),
            timeout=60,
        )
        # the propagated mount is the node's tmpfs as it is (a copy of a mount is not
        # id-mapped): its root-owned file appears as nobody, the id-mapped volume as root
        assert seen.stdout.decode().split() == ["late", "0", "65534"], seen
        early = runtime.ExecSync(
            pb.ExecSyncRequest(
                container_id=cid,
                cmd=["sh", "-c", "stat -c %u /shared/early/f; echo x >> /shared/early/f; echo $?"],
            ),
            timeout=60,
        )
        assert early.stdout.decode().split() == ["65534", "1"], early
        assert (shared / "early" / "f").read_text() == "node\n"
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        assert mounts_under([daemon.root, daemon.state]) == []
    finally:
        linux.unmount_below(shared)


def test_play_a_pod_with_host_users_false(
    daemon: Pinnaced,
    userns_images: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: userns-play, namespace: e2e}\n"
        "spec:\n  hostUsers: false\n  terminationGracePeriodSeconds: 1\n"
        "  volumes: [{name: scratch, emptyDir: {}}]\n"
        f"  containers:\n  - name: main\n    image: {userns_images['box']}\n"
        '    command: ["sleep", "3600"]\n'
        "    volumeMounts: [{name: scratch, mountPath: /scratch}]\n"
    )
    play_root = tmp_path / "play"
    pinnace = Cli(
        daemon,
        capsys,
        ["--log-root", str(tmp_path / "logs"), "--play-root", str(play_root), "--resolv-conf", ""],
    )
    played = pinnace.json("play", str(manifest), *pinnace.play_args, "--quiet")
    cid = played["containers"]["main"]
    seen = daemon.runtime.ExecSync(
        pb.ExecSyncRequest(
            container_id=cid,
            cmd=["sh", "-c", "cat /proc/self/uid_map; stat -c %u /scratch; touch /scratch/made"],
        ),
        timeout=60,
    )
    # the first range above the node's ids, the kubelet's default; the emptyDir play made
    # (host root's) is the pod root's through its id-mapped mount
    assert seen.stdout.decode().split() == ["0", "65536", "65536", "0"], seen
    (made,) = play_root.rglob("made")
    assert os.stat(made).st_uid == 0
    pinnace.ok("play", "--down", str(manifest), *pinnace.play_args)
    assert mounts_under([daemon.root, daemon.state]) == []
