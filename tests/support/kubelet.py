"""The kubelet as a test client: its recorded CRI calls (``../shared/kubelet-cri/``) and the
environment they need on this node (images under the recorded names, kubelet-owned files and
cgroup parents), so e2e tests send exactly what a real kubelet v1.36 sends.

Terms:

recording
    One JSONL file of ``../shared/kubelet-cri/``: the calls a kubelet made to containerd, in
    order, each with request, answer and status code (protobuf JSON, proto field names).
kubelet root
    Where the recorded node kept pod volumes and files (``/var/lib/kubelet``) and logs
    (``/var/log/pods``); tests move both into a temporary directory.
cgroup top
    The recorded cgroup parents live under ``/kubepods``; tests move them to a top of their
    own (``/kubepods-<hex>``) so that concurrent runs never share a cgroup, and remove it
    afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.replay import Call, Substitutions

RECORDINGS = Path(__file__).resolve().parents[2].parent / "shared" / "kubelet-cri"
RECORDED_REGISTRY = "127.0.0.1:5000"  # the registry the recorded node pulled from
RECORDED_KUBELET_ROOT = "/var/lib/kubelet"
RECORDED_LOG_ROOT = "/var/log/pods"
RECORDED_CGROUP_TOP = "/kubepods"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def load(name: str) -> list[Call]:
    """The calls of ``RECORDINGS/name`` in order."""
    out = []
    for line in (RECORDINGS / name).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(
                Call(
                    method=d["method"],
                    request=d["req"] or {},
                    response=d["resp"],
                    code=d["code"],
                )
            )
    return out


def first(calls: list[Call], method: str) -> Call:
    return next(c for c in calls if c.method == method)


@dataclass
class KubeletNode:
    """A temporary stand-in for the recorded node's kubelet-owned places."""

    base: Path
    cgroup_top: str

    @classmethod
    def make(cls, base: Path) -> KubeletNode:
        base.mkdir(parents=True, exist_ok=True)
        return cls(base=base, cgroup_top=f"/kubepods-{uuid.uuid4().hex[:10]}")

    @property
    def kubelet_root(self) -> Path:
        return self.base / "kubelet"

    @property
    def log_root(self) -> Path:
        return self.base / "pods"

    def substitutions(self) -> Substitutions:
        """Paths and cgroup parents of the recording → this node's."""
        subs = Substitutions()
        subs.add(RECORDED_KUBELET_ROOT, str(self.kubelet_root))
        subs.add(RECORDED_LOG_ROOT, str(self.log_root))
        subs.add(RECORDED_CGROUP_TOP + "/", self.cgroup_top + "/")
        return subs

    def prepare_mounts(self, create_container_request: dict[str, Any]) -> None:
        """Make the files and directories a (rewritten) CreateContainer request mounts, as the
        kubelet does before it calls: ``etc-hosts`` and termination-log files, volume dirs."""
        for m in create_container_request.get("config", {}).get("mounts", []):
            host = Path(m["host_path"])
            if not host.is_relative_to(self.base):
                continue
            if "/volumes/" in str(host):
                host.mkdir(parents=True, exist_ok=True)
                host.chmod(0o777)  # an emptyDir, as the kubelet makes it
            else:
                host.parent.mkdir(parents=True, exist_ok=True)
                if not host.exists():
                    host.write_text("127.0.0.1\tlocalhost\n" if host.name == "etc-hosts" else "")

    def cgroup_dirs(self) -> list[Path]:
        """The directories of this node's cgroup top in every hierarchy, deepest first."""
        rel = self.cgroup_top.lstrip("/")
        found: list[Path] = []
        for hierarchy in CGROUP_ROOT.iterdir():
            top = hierarchy / rel
            if top.is_dir():
                found.extend(Path(p) for p, _, _ in os.walk(top))
        return sorted(found, key=lambda p: len(p.parts), reverse=True)

    def remove_cgroups(self) -> list[str]:
        """rmdir this node's cgroup tree (what the kubelet would do); returns what is left."""
        for directory in self.cgroup_dirs():
            with contextlib.suppress(OSError):
                directory.rmdir()
        return [str(p) for p in self.cgroup_dirs()]


def cgroup_file(controller: str, cgroup_path: str, name: str) -> Path:
    """``/sys/fs/cgroup/<controller>/<cgroup_path>/<name>`` (a v1 hierarchy)."""
    return CGROUP_ROOT / controller / cgroup_path.lstrip("/") / name


def read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def iter_calls(calls: list[Call], *methods: str) -> Iterator[Call]:
    return (c for c in calls if c.method in methods)


# -- the node's images and daemon --------------------------------------------------------------
KUBELET_IMAGES = {"busybox": ("busybox", "1.35"), "pause": ("pause", "1.0")}


@functools.cache
def push_kubelet_images(registry_url: str) -> dict[str, str]:
    """Once per registry (the session's): build the recorded pods' images and push them to
    the test registry under the recorded repositories; returns their names as the recording
    writes them (``127.0.0.1:5000/…``), which a hosts.toml (:func:`route_recorded_registry`)
    resolves to the test registry."""
    from tests.support import images
    from tests.support.push import push_image

    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",)))
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"), user="65534")
    )
    for (repo, tag), image in zip(KUBELET_IMAGES.values(), (box, pause), strict=True):
        push_image(registry_url, repo, tag, image)
    return {k: f"{RECORDED_REGISTRY}/{repo}:{tag}" for k, (repo, tag) in KUBELET_IMAGES.items()}


def route_recorded_registry(hosts_dir: Path, registry_url: str) -> None:
    """A hosts.toml that sends pulls of ``127.0.0.1:5000/…`` to the test registry."""
    from tests.support.daemon import hosts_toml

    hosts_toml(hosts_dir, RECORDED_REGISTRY, plain_http=True, server=registry_url)


def loopback_network(conf_dir: Path) -> None:
    """A CNI network of the loopback plugin only (pods get a netns with lo, no address)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )


@dataclass
class BridgeNetwork:
    """A bridge network of one test (own bridge name and 10.214.x.0/24 subnet, no masquerade,
    no port maps); :meth:`teardown` deletes the bridge."""

    bridge: str
    subnet: str

    @classmethod
    def make(cls, conf_dir: Path, data_dir: Path) -> BridgeNetwork:
        token = uuid.uuid4().int
        net = cls(bridge=f"pkb{token % 10**8:08d}", subnet=f"10.214.{token % 200 + 20}.0/24")
        conflist = {
            "cniVersion": "1.0.0",
            "name": f"kubelet-{token % 10**6}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": net.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": net.subnet}]],
                        "dataDir": str(data_dir),
                    },
                }
            ],
        }
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-kubelet.conflist").write_text(json.dumps(conflist))
        return net

    def teardown(self) -> None:
        import subprocess

        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
