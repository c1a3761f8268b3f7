"""ExecSync through a real pinnaced runs ``pinnace-exec`` where the container allows, and the
command sees what ``runc exec`` on the same container gives it: the test runs runc itself
(on the daemon's runc root) beside every ExecSync and compares the probes' output, for pods
shaped as the kubelet sends them (host and pod namespaces, a shared PID namespace with its
infra container, a non-root user with groups, dropped and added capabilities,
no_new_privs, a read-only root, an oom_score_adj). RuntimeDefault seccomp stays on runc."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.conftest import PinnacedFactory
from tests.support import images
from tests.support.daemon import Pinnaced
from tests.support.layers import TarBuilder
from tests.support.push import push_image
from tests.support.registry import Registry

pytestmark = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")), reason="pinnace-exec needs a C compiler"
)

PROBE = r"""
grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|SigBlk|SigIgn|Umask):' \
    /proc/self/status
cat /proc/self/cgroup
for n in cgroup ipc mnt net pid uts user; do echo "$n $(readlink /proc/self/ns/$n)"; done
set -- $(cat /proc/$$/stat)
echo "session leader: $([ "$1" = "$6" ] && echo yes || echo no)"
cat /proc/self/limits
echo "oom $(cat /proc/self/oom_score_adj)"
echo "cwd $(pwd) host $(hostname)"
ls /proc/self/fd
env
"""


@pytest.fixture(scope="module")
def helper_image(registry: Registry) -> str:
    extra = TarBuilder().file("/etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
    extra.file(
        "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    box = images.busybox_image(
        config=images.ImageConfig(cmd=("/bin/sh",)), extra_layers=(extra.build(),)
    )
    push_image(registry.url, "test/exechelper", "v1", box)
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/exechelper-pause", "v1", pause)
    return f"{registry.host}/test/exechelper:v1"


@pytest.fixture
def daemon(pinnaced: PinnacedFactory, helper_image: str) -> Iterator[Pinnaced]:
    pause = helper_image.replace("exechelper:", "exechelper-pause:")
    d = pinnaced(
        config_text=f'[images]\nsandbox_image = "{pause}"\n[runtime]\nexec_helper = true\n'
    )
    d.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=helper_image)), timeout=120)
    yield d


def _pod(d: Pinnaced, tmp_path: Path, **ns: Any) -> tuple[str, pb.PodSandboxConfig]:
    name = f"eh-{uuid.uuid4().hex[:6]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
        hostname=name if ns.get("network") != pb.NODE else "",
        log_directory=str(tmp_path / name),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(**ns)
            )
        ),
    )
    pod = d.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return str(pod.pod_sandbox_id), config


def _container(
    d: Pinnaced, pod: str, pod_config: pb.PodSandboxConfig, image: str, **security: Any
) -> str:
    ns = security.pop("namespace_options", pb.NamespaceOption(pid=pb.CONTAINER))
    oom = security.pop("oom", 0)
    working_dir = security.pop("working_dir", "")
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="c"),
        image=pb.ImageSpec(image=image),
        command=["sleep", "3600"],
        log_path="c.log",
        envs=[pb.KeyValue(key="GREETING", value=b"hi"), pb.KeyValue(key="PATH", value=b"/bin")],
        working_dir=working_dir,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(namespace_options=ns, **security),
            resources=pb.LinuxContainerResources(oom_score_adj=oom),
        ),
    )
    ctr = d.runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod, config=config, sandbox_config=pod_config),
        timeout=60,
    ).container_id
    d.runtime.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
    return str(ctr)


def _runc_exec(d: Pinnaced, ctr: str, cmd: list[str]) -> subprocess.CompletedProcess[bytes]:
    root = d.state / "runtimes" / "runc"
    return subprocess.run(
        ["runc", "--root", str(root), "exec", ctr, *cmd],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )


def _same(d: Pinnaced, ctr: str, cmd: list[str]) -> bytes:
    reply = d.runtime.ExecSync(pb.ExecSyncRequest(container_id=ctr, cmd=cmd, timeout=30))
    ref = _runc_exec(d, ctr, cmd)
    assert (reply.exit_code, reply.stdout, reply.stderr) == (
        ref.returncode,
        ref.stdout,
        ref.stderr,
    )
    return bytes(reply.stdout)


def _used_helper(d: Pinnaced, ctr: str) -> bool:
    return f"task {ctr}: ExecSync runs pinnace-exec" in d.log_path.read_text()


CASES: dict[str, dict[str, Any]] = {
    "host-namespaces": {"pod": {"network": pb.NODE, "pid": pb.CONTAINER}},
    "host-pid-and-ipc": {
        "pod": {"network": pb.NODE, "pid": pb.NODE, "ipc": pb.NODE},
        "security": {"namespace_options": pb.NamespaceOption(pid=pb.NODE, ipc=pb.NODE)},
    },
    "pod-namespaces-shared-pid": {
        "pod": {"network": pb.NODE, "pid": pb.POD},
        "security": {"namespace_options": pb.NamespaceOption(pid=pb.POD)},
    },
    "user-groups-caps-nnp-readonly": {
        "pod": {"network": pb.NODE, "pid": pb.CONTAINER, "ipc": pb.POD},
        "security": {
            "run_as_user": pb.Int64Value(value=1000),
            "run_as_group": pb.Int64Value(value=1000),
            "supplemental_groups": [50, 4242],
            "no_new_privs": True,
            "readonly_rootfs": True,
            "capabilities": pb.Capability(
                add_capabilities=["NET_ADMIN"], drop_capabilities=["CHOWN", "KILL"]
            ),
            "working_dir": "/tmp",
            "oom": 500,
        },
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_execsync_matches_runc_exec(
    daemon: Pinnaced, helper_image: str, tmp_path: Path, case: str
) -> None:
    spec = CASES[case]
    pod, pod_config = _pod(daemon, tmp_path, **spec["pod"])
    ctr = _container(daemon, pod, pod_config, helper_image, **dict(spec.get("security", {})))
    out = _same(daemon, ctr, ["sh", "-c", PROBE])
    assert _used_helper(daemon, ctr)
    assert b"GREETING=hi" in out
    for cmd in (["sh", "-c", "echo o; echo e >&2; exit 3"], ["sh", "-c", "kill -9 $$"]):
        _same(daemon, ctr, cmd)
    with pytest.raises(Exception, match="executable file not found"):
        daemon.runtime.ExecSync(pb.ExecSyncRequest(container_id=ctr, cmd=["nosuch"]))
    slow = pb.ExecSyncRequest(container_id=ctr, cmd=["sleep", "30"], timeout=1)
    with pytest.raises(Exception, match="timed out"):
        daemon.runtime.ExecSync(slow, timeout=30)


def test_runtime_default_seccomp_stays_on_runc(
    daemon: Pinnaced, helper_image: str, tmp_path: Path
) -> None:
    pod, pod_config = _pod(daemon, tmp_path, network=pb.NODE, pid=pb.CONTAINER)
    ctr = _container(
        daemon,
        pod,
        pod_config,
        helper_image,
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
    )
    out = _same(daemon, ctr, ["grep", "Seccomp:", "/proc/self/status"])
    assert out.split() == [b"Seccomp:", b"2"]
    assert not _used_helper(daemon, ctr)
    assert f"task {ctr}: ExecSync runs runc exec: seccomp" in daemon.log_path.read_text()
