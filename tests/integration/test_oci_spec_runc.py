"""runtime.oci specs run by the real runc (root only): proof that runc 1.1 accepts what
build_container_spec and build_infra_spec write, and that the options take effect.

Each test builds a busybox rootfs and a bundle in a fresh directory under /run, runs the
container in the foreground with ``runc run`` (no namespace paths, so every namespace is
new) under a test-specific cgroup parent, and removes the container, the cgroups and the
directory afterwards, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rootfs

from runtime import cgroups
from runtime.images.manifest import ImageConfig
from runtime.model.pods import (
    Capabilities,
    ContainerConfig,
    Device,
    Mount,
    PodMetadata,
    ProfileType,
    Resources,
    Sandbox,
    SandboxConfig,
    SandboxState,
    SecurityContext,
    SecurityProfile,
)
from runtime.oci import SandboxFiles, build_container_spec, build_infra_spec
from runtime.oci.caps import current_capabilities, to_mask
from runtime.oci.defaults import DEFAULT_CAPABILITIES

pytestmark = pytest.mark.integration

RUNC = shutil.which("runc")

if os.geteuid() != 0 or not (RUNC and rootfs.busybox_available()):
    pytest.skip("needs root, runc and busybox", allow_module_level=True)


@dataclass
class World:
    base: Path
    root: Path
    cgroup_parent: str
    mounts: cgroups.CgroupMounts
    ran: list[str]

    @property
    def cgroup_v2(self) -> bool:
        return self.mounts.mode is cgroups.CgroupMode.UNIFIED

    def run(self, name: str, spec: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """``runc run`` the spec in the foreground and return its output."""
        assert RUNC is not None
        bundle = self.base / "bundles" / name
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps(spec))
        cid = f"ocitest-{self.base.name}-{name}"
        self.ran.append(cid)
        return subprocess.run(
            [RUNC, "--root", str(self.base / "state"), "run", "--bundle", str(bundle), cid],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def world() -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="poci-", dir="/run"))
    w = World(
        base=base,
        root=rootfs.build_busybox_rootfs(base / "rootfs"),
        cgroup_parent=f"/pinnace-ocitest-{uuid.uuid4().hex[:8]}",
        mounts=cgroups.detect(),
        ran=[],
    )
    try:
        yield w
    finally:
        assert RUNC is not None
        for cid in w.ran:
            subprocess.run(
                [RUNC, "--root", str(base / "state"), "delete", "-f", cid], capture_output=True
            )
        with contextlib.suppress(Exception):
            cgroups.remove(w.mounts, w.cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    assert not any(d.exists() for d in w.mounts.hierarchy_dirs(w.cgroup_parent))


def sandbox() -> Sandbox:
    return Sandbox(
        id="sbx",
        config=SandboxConfig(
            metadata=PodMetadata(name="pod", uid="u", namespace="ns"), hostname="oci-pod"
        ),
        state=SandboxState.READY,
        created_at=1,
        runtime_handler="runc",
        hostname="oci-pod",
    )


def host_oom_score_adj() -> int:
    return int(Path("/proc/self/oom_score_adj").read_text())


SCRIPT = """
id
cat /proc/self/status | grep CapBnd
echo $HOSTNAME
hostname
grep Seccomp: /proc/self/status
pwd
echo FOO=$FOO
cat /data/msg
touch /data/new 2>/dev/null && echo data-writable || echo data-readonly
touch /etc/new 2>/dev/null && echo root-writable || echo root-readonly
cat /etc/hosts
echo shm > /dev/shm/probe && cat /dev/shm/probe
test -c /dev/mynull && echo mynull-ok
cat /proc/self/oom_score_adj
cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
cat /proc/kcore 2>&1 | head -c 0; test -s /proc/kcore && echo kcore-visible || echo kcore-masked
"""


def test_container_spec_runs_under_runc(world: World) -> None:
    (world.root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"
    )
    (world.root / "etc" / "group").write_text("root:x:0:\nwheel:x:10:app\napp:x:1000:\n")
    data = world.base / "data"
    data.mkdir()
    (data / "msg").write_text("hello from the host\n")
    files = world.base / "sandbox"
    files.mkdir()
    (files / "hosts").write_text("127.0.0.1 localhost oci-pod\n")
    (files / "hostname").write_text("oci-pod\n")
    (files / "shm").mkdir(mode=0o1777)
    (files / "shm").chmod(0o1777)
    adj = host_oom_score_adj()
    container = ContainerConfig(
        name="probe",
        image="busybox:test",
        command=("/bin/sh", "-c", SCRIPT),
        working_dir="/tmp",
        envs=(("FOO", "bar"),),
        mounts=(Mount(container_path="/data", host_path=str(data), readonly=True),),
        devices=(Device(container_path="/dev/mynull", host_path="/dev/null", permissions="rw"),),
        resources=Resources(
            cpu_shares=512,
            memory_limit_in_bytes=64 << 20,
            oom_score_adj=adj,
            unified={"memory.high": str(48 << 20)},
        ),
        security=SecurityContext(
            run_as_username="app",
            supplemental_groups=(2000,),
            readonly_rootfs=True,
            no_new_privs=True,
            capabilities=Capabilities(add=("SYS_TIME",), drop=("NET_RAW",)),
            seccomp=SecurityProfile(ProfileType.RUNTIME_DEFAULT),
        ),
    )
    spec = build_container_spec(
        container=container,
        sandbox=sandbox(),
        image=ImageConfig(architecture="amd64", os="linux", env=("PATH=/bin",)),
        rootfs=world.root,
        cgroups_path=f"{world.cgroup_parent}/probe",
        sandbox_files=SandboxFiles(
            hostname=files / "hostname", hosts=files / "hosts", shm=files / "shm"
        ),
        namespace_paths={},
        host_oom_score_adj=adj,
        cgroup_v2=world.cgroup_v2,
        all_capabilities=current_capabilities(),
    )
    result = world.run("probe", spec)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    ident = dict(part.split("=", 1) for part in lines[0].split())
    assert ident["uid"] == "1000(app)"
    assert ident["gid"] == "1000(app)"
    assert {g.split("(")[0] for g in ident["groups"].split(",")} == {"10", "1000", "2000"}
    expected = (set(DEFAULT_CAPABILITIES) - {"CAP_NET_RAW"}) | {"CAP_SYS_TIME"}
    assert lines[1].split() == ["CapBnd:", f"{to_mask(expected):016x}"]
    assert lines[2:4] == ["oci-pod", "oci-pod"]
    assert lines[4].split() == ["Seccomp:", "2"]
    assert lines[5:8] == ["/tmp", "FOO=bar", "hello from the host"]
    assert lines[8:10] == ["data-readonly", "root-readonly"]
    assert lines[10] == "127.0.0.1 localhost oci-pod"
    assert lines[11:13] == ["shm", "mynull-ok"]
    assert lines[13] == str(adj)
    assert lines[14] == str(64 << 20)
    assert lines[15] == "kcore-masked"
    assert (files / "shm" / "probe").read_text() == "shm\n"
    assert not (data / "new").exists()


def test_infra_spec_runs_under_runc(world: World) -> None:
    image = ImageConfig(
        architecture="amd64",
        os="linux",
        entrypoint=("/bin/sh", "-c"),
        cmd=("echo infra pid $$; grep CapEff /proc/self/status; touch /x || echo ro",),
    )
    spec = build_infra_spec(
        sandbox=sandbox(),
        image=image,
        rootfs=world.root,
        cgroups_path=f"{world.cgroup_parent}/infra",
        namespace_paths={},
        host_oom_score_adj=host_oom_score_adj(),
        cgroup_v2=world.cgroup_v2,
        image_name="busybox:test",
    )
    result = world.run("infra", spec)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "infra pid 1"  # a new PID namespace
    assert lines[1].split() == ["CapEff:", "0" * 16]
    assert lines[2] == "ro"


def test_privileged_container_gets_the_daemons_capabilities(world: World) -> None:
    held = current_capabilities()
    spec = build_container_spec(
        container=ContainerConfig(
            name="priv",
            command=(
                "/bin/sh",
                "-c",
                "grep CapEff /proc/self/status; test -c /dev/full && echo ok",
            ),
            security=SecurityContext(privileged=True),
        ),
        sandbox=sandbox(),
        image=ImageConfig(architecture="amd64", os="linux"),
        rootfs=world.root,
        cgroups_path=f"{world.cgroup_parent}/priv",
        sandbox_files=SandboxFiles(),
        namespace_paths={},
        host_oom_score_adj=host_oom_score_adj(),
        cgroup_v2=world.cgroup_v2,
    )
    result = world.run("priv", spec)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"CapEff:\t{to_mask(held):016x}", "ok"]
