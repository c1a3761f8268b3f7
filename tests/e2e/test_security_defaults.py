# ruff: noqa: F811 - the fixtures imported from test_pods are parameters here
"""Security defaults, tested: the socket's mode and group, nothing listening beyond the socket
and loopback, and container paths (mount targets, working directories) resolved inside the
container's root even through an image's symlinks that point out of it."""

from __future__ import annotations

import contextlib
import grp
import io
import os
import stat
import tarfile
import uuid
from pathlib import Path

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_pods import PodEnv, pod_env, pod_images  # noqa: F401 - fixtures
from tests.support import images
from tests.support.daemon import DaemonError
from tests.support.push import push_image
from tests.support.registry import Registry


def test_socket_is_0660_and_owned_by_the_configured_group(pinnaced) -> None:
    group = grp.getgrnam("nogroup")
    daemon = pinnaced(config_text='[daemon]\nsocket_group = "nogroup"\n')
    st = os.stat(daemon.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == group.gr_gid
    assert st.st_uid == 0


def test_an_unknown_socket_group_refuses_to_start_and_says_so(pinnaced) -> None:
    daemon = pinnaced(config_text='[daemon]\nsocket_group = "no-such-group-here"\n', start=False)
    with pytest.raises(DaemonError):
        daemon.start(timeout=30)
    assert "daemon.socket_group" in daemon.log_tail(20)
    assert not daemon.socket.exists()


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _inet_listeners(pid: int, inodes: set[int]) -> list[str]:
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            listening = state == "0A" if proto.startswith("tcp") else True
            if inode in inodes and listening:
                out.append(f"{proto} {local}")
    return out


def _is_loopback(entry: str) -> bool:
    proto, local = entry.split()
    address = local.split(":")[0]
    if proto.endswith("6"):
        return address in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")
    return address.endswith("7F")  # 127.x.x.x, little-endian hex


def test_nothing_listens_beyond_the_socket_and_loopback(pod_env: PodEnv) -> None:
    daemon = pod_env.daemon
    assert daemon.pid is not None
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    ctr = pod_env.create(pod_id, pod, pod_env.container_config("c", ["sleep", "60"]))
    pod_env.start(ctr)
    # a streaming request makes the streaming server listen, if it listens lazily
    with contextlib.suppress(grpc.RpcError):
        pod_env.runtime.Exec(pb.ExecRequest(container_id=ctr, cmd=["true"], stdout=True))
    inodes = _socket_inodes(daemon.pid)
    listeners = _inet_listeners(daemon.pid, inodes)
    assert [entry for entry in listeners if not _is_loopback(entry)] == []
    unix = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[6]) in inodes and int(fields[3], 16) & 0x10000 and len(fields) > 7:
            unix.append(os.path.normpath(fields[7]))  # __SO_ACCEPTCON: a listening socket
    assert unix and all(path.startswith(str(daemon.short_dir)) for path in unix), unix


def _symlink_layer(token: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, target in (
            ("escape", f"/tmp/{token}-abs"),  # absolute: the host's /tmp if followed there
            ("up", f"../../../../../../tmp/{token}-rel"),  # relative, climbing out
        ):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def test_container_paths_never_follow_image_symlinks_out_of_the_root(
    pod_env: PodEnv, registry: Registry, tmp_path: Path
) -> None:
    token = f"sym{uuid.uuid4().hex[:8]}"
    image = images.busybox_image(extra_layers=[_symlink_layer(token)])
    push_image(registry.url, "test/symlinks", "v1", image)
    ref = f"{registry.host}/test/symlinks:v1"
    pod_env.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    source = tmp_path / "volume"
    source.mkdir()
    (source / "marker").write_text("from the host\n")
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    config = pod_env.container_config(
        "paths",
        ["sh", "-c", "cat /escape/mnt/marker; pwd; touch here; sleep 60"],
        image=ref,
        working_dir="/up/work",
        mounts=[pb.Mount(container_path="/escape/mnt", host_path=str(source), readonly=True)],
    )
    ctr = pod_env.create(pod_id, pod, config)
    try:
        pod_env.start(ctr)
        started = True
    except grpc.RpcError as error:  # refusing is as good as resolving inside: never outside
        started = False
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    # whatever the runtime did, nothing was created on the host side of those links
    for leaked in (Path(f"/tmp/{token}-abs"), Path(f"/tmp/{token}-rel")):
        assert not leaked.exists(), f"{leaked} was created on the host"
    assert not (source / "here").exists()
    if started:
        result = pod_env.exec(ctr, ["sh", "-c", "cat /escape/mnt/marker && ls /proc/1/cwd/here"])
        assert result.stdout.startswith(b"from the host\n"), result


def test_no_new_privileges_when_asked_and_only_then(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    seen = {}
    for name, asked in (("nnp", True), ("plain", False)):
        context = pb.LinuxContainerSecurityContext(
            no_new_privs=asked, namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
        )
        config = pod_env.container_config(
            name, ["sleep", "60"], linux=pb.LinuxContainerConfig(security_context=context)
        )
        ctr = pod_env.create(pod_id, pod, config)
        pod_env.start(ctr)
        status = pod_env.exec(ctr, ["grep", "NoNewPrivs:", "/proc/1/status"]).stdout.split()
        seen[name] = status
        # and an exec into it runs under the same flag as its first process
        seen[f"{name} exec"] = pod_env.exec(
            ctr, ["grep", "NoNewPrivs:", "/proc/self/status"]
        ).stdout.split()
    assert seen == {
        "nnp": [b"NoNewPrivs:", b"1"],
        "nnp exec": [b"NoNewPrivs:", b"1"],
        "plain": [b"NoNewPrivs:", b"0"],
        "plain exec": [b"NoNewPrivs:", b"0"],
    }
