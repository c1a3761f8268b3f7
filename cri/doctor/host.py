"""Probes of the host, each returning findings. Every path they read is under the ``Host``'s
roots (``/proc``, ``/sys``, the node's files as ``NodeSettings`` names them), so a test can
point them at a temporary directory laid out as a broken node; commands (``runc --version``)
run through ``Host.run``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cri.doctor.model import Finding, Level, NodeSettings

Runner = Callable[[Sequence[str]], str]


def run_command(argv: Sequence[str]) -> str:
    """Run a short command; its stdout (raises OSError or CalledProcessError on failure)."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=True)
    return result.stdout


@dataclass(frozen=True, slots=True)
class Host:
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    run: Runner = run_command


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


# -- OCI runtimes and conmon ----------------------------------------------------------------
def runtimes(settings: NodeSettings, host: Host) -> list[Finding]:
    out = []
    for name, binary in settings.runtimes.items():
        required = name == settings.default_runtime
        check = f"runtime {name}"
        if not os.access(binary, os.X_OK):
            out.append(Finding(
                check, Level.FAIL if required else Level.WARN,
                f"{binary} is missing or not executable",
                f"apt-get install {binary.name}, or point [runtime.handlers.{name}] binary at it"
                + ("" if required else f" (pods with runtime class {name} fail)"),
            ))  # fmt: skip
            continue
        try:
            version = host.run([str(binary), "--version"]).splitlines()[0].strip()
        except (OSError, subprocess.SubprocessError, IndexError) as exc:
            out.append(
                Finding(
                    check,
                    Level.FAIL if required else Level.WARN,
                    f"{binary} --version failed: {exc}",
                    f"reinstall {binary.name}",
                )
            )
            continue
        features = _features(host, binary)
        out.append(Finding(check, Level.OK, f"{binary}: {version}; {features}"))
    return out


def _features(host: Host, binary: Path) -> str:
    try:
        data = json.loads(host.run([str(binary), "features"]))
    except (OSError, subprocess.SubprocessError, ValueError):
        return "no `features` (an old runtime: rro and idmap mounts unknown)"
    options = set(data.get("mountOptions") or [])
    idmap = bool(
        (data.get("linux") or {}).get("mountExtensions", {}).get("idmap", {}).get("enabled")
    )
    rro = "yes" if "rro" in options else "no"
    return f"rro mounts: {rro}, idmap mounts: {'yes' if idmap else 'no'}"


def conmon(settings: NodeSettings, host: Host) -> list[Finding]:
    if not os.access(settings.conmon, os.X_OK):
        return [
            Finding(
                "conmon",
                Level.FAIL,
                f"{settings.conmon} is missing or not executable",
                "apt-get install conmon, or set [runtime] conmon",
            )
        ]
    try:
        version = host.run([str(settings.conmon), "--version"]).splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return [
            Finding(
                "conmon",
                Level.FAIL,
                f"{settings.conmon} --version failed: {exc}",
                "reinstall conmon",
            )
        ]
    return [Finding("conmon", Level.OK, f"{settings.conmon}: {version}")]


# -- CNI ------------------------------------------------------------------------------------
def cni(settings: NodeSettings, host: Host) -> list[Finding]:
    directory = settings.cni_conf_dir
    try:
        names = sorted(
            p for p in os.listdir(directory) if p.endswith((".conflist", ".conf", ".json"))
        )
    except OSError:
        names = []
    if not names:
        return [Finding("cni config", Level.FAIL, f"no network config in {directory}",
                        f"install one: cp deploy/cni/10-pinnace.conflist {directory}/ (pods on"
                        " the host network still run)")]  # fmt: skip
    first = directory / names[0]
    try:
        data = json.loads(first.read_text())
    except (OSError, ValueError) as exc:
        return [
            Finding(
                "cni config",
                Level.FAIL,
                f"{first} is not valid JSON: {exc}",
                f"fix or remove {first}",
            )
        ]
    plugins = data.get("plugins") or ([data] if "type" in data else [])
    found = [Finding("cni config", Level.OK, f"{first} (network {data.get('name', '?')!r})")]
    missing = [
        str(p.get("type")) for p in plugins
        if not any(os.access(d / str(p.get("type")), os.X_OK) for d in settings.cni_bin_dirs)
    ]  # fmt: skip
    dirs = ":".join(str(d) for d in settings.cni_bin_dirs)
    if missing:
        found.append(
            Finding(
                "cni plugins",
                Level.FAIL,
                f"{', '.join(missing)} not found in {dirs}",
                "apt-get install containernetworking-plugins, or set [network] cni_bin_dirs",
            )
        )
    else:
        found.append(
            Finding(
                "cni plugins",
                Level.OK,
                f"{', '.join(str(p.get('type')) for p in plugins)} in {dirs}",
            )
        )
    return found


# -- cgroups ----------------------------------------------------------------------------------
_NEEDED = ("cpu", "memory", "pids")


def cgroups(settings: NodeSettings, host: Host) -> list[Finding]:
    unified = _read(host.sys / "fs/cgroup/cgroup.controllers")
    if unified is not None:
        version, available = "v2 (unified)", set(unified.split())
    else:
        table = _read(host.proc / "cgroups") or ""
        available = set()
        for line in table.splitlines()[1:]:
            parts = line.split()
            if len(parts) == 4 and parts[3] == "1" and parts[1] != "0":
                available.add(parts[0])  # attached to a v1 hierarchy runc can use
        version = "v1 (hybrid)" if (host.sys / "fs/cgroup/unified").is_dir() else "v1"
    out = [Finding("cgroups", Level.OK if available else Level.FAIL,
                   f"{version}; controllers: {', '.join(sorted(available)) or 'none'}",
                   "" if available else "mount the cgroup filesystem")]  # fmt: skip
    missing = [c for c in _NEEDED if c not in available]
    if missing:
        out.append(
            Finding(
                "cgroup controllers",
                Level.FAIL,
                f"{', '.join(missing)} absent",
                "enable them (kernel command line cgroup_enable=...)",
            )
        )
    if "hugetlb" not in available:
        out.append(
            Finding(
                "hugetlb",
                Level.WARN,
                "hugetlb controller absent (or not usable by runc here)",
                "hugepage limits kubelet sends are dropped"
                " (runtime.tolerate_missing_hugetlb_controller)",
            )
        )
    else:
        out.append(Finding("hugetlb", Level.OK, "hugetlb controller available"))
    return out


# -- security modules -------------------------------------------------------------------------
def security(settings: NodeSettings, host: Host) -> list[Finding]:
    out = []
    apparmor = (_read(host.sys / "module/apparmor/parameters/enabled") or "").strip()
    if apparmor == "Y":
        out.append(Finding("apparmor", Level.OK, "AppArmor enabled"))
    else:
        out.append(
            Finding(
                "apparmor",
                Level.WARN,
                "AppArmor absent",
                "AppArmor profiles pods ask for are not applied (pinnace ignores them)",
            )
        )
    if (host.sys / "fs/selinux/enforce").exists():
        mode = (_read(host.sys / "fs/selinux/enforce") or "").strip()
        out.append(
            Finding(
                "selinux", Level.OK, "SELinux " + ("enforcing" if mode == "1" else "permissive")
            )
        )
    else:
        out.append(Finding("selinux", Level.SKIP, "SELinux absent (labels in pods are ignored)"))
    status = _read(host.proc / "self/status") or ""
    if "Seccomp:" in status:
        out.append(Finding("seccomp", Level.OK, "seccomp filters supported"))
    else:
        out.append(
            Finding(
                "seccomp",
                Level.FAIL,
                "the kernel has no seccomp",
                "use a kernel built with CONFIG_SECCOMP (RuntimeDefault needs it)",
            )
        )
    return out


# -- kernel features --------------------------------------------------------------------------
def kernel(settings: NodeSettings, host: Host) -> list[Finding]:
    out = []
    filesystems = _read(host.proc / "filesystems") or ""
    if "overlay" in filesystems.split():
        out.append(Finding("overlayfs", Level.OK, "overlay filesystem available"))
    else:
        out.append(
            Finding(
                "overlayfs",
                Level.WARN,
                "no overlay filesystem",
                "modprobe overlay; until then snapshots are full copies (native)",
            )
        )
    release = (_read(host.proc / "sys/kernel/osrelease") or "0.0").strip()
    try:
        major, minor = (int(x) for x in release.split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    idmap = (major, minor) >= (5, 12)
    out.append(
        Finding(
            "idmapped mounts",
            Level.OK if idmap else Level.WARN,
            f"kernel {release}: mount_setattr(MOUNT_ATTR_IDMAP) "
            + ("available" if idmap else "missing"),
            "" if idmap else "user-namespaced pods need kernel 5.12 or later",
        )
    )
    try:
        fd = os.pidfd_open(os.getpid())
        os.close(fd)
        out.append(Finding("pidfd", Level.OK, "pidfd_open available"))
    except (OSError, AttributeError):
        out.append(
            Finding(
                "pidfd",
                Level.WARN,
                "pidfd_open unavailable",
                "process exits are watched less reliably (kernel 5.3 or later)",
            )
        )
    return out


# -- disks and directories --------------------------------------------------------------------
_LOW = 1 << 30  # 1 GiB
_FULL = 100 << 20  # 100 MiB


def disks(settings: NodeSettings, host: Host) -> list[Finding]:
    out = []
    for name, path in (("root", settings.root), ("state", settings.state)):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        free = f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB at {probe}"
        level = Level.FAIL if usage.free < _FULL else Level.WARN if usage.free < _LOW else Level.OK
        fix = "" if level is Level.OK else f"free space under {probe} (image GC: pinnace image rm)"
        out.append(Finding(f"disk {name}", level, free, fix))
    hosts = settings.registry_hosts_dir
    if hosts.is_dir():
        registries = sorted(p.name for p in hosts.iterdir() if (p / "hosts.toml").is_file())
        out.append(
            Finding(
                "registry hosts",
                Level.OK,
                f"{hosts}: {', '.join(registries) or 'no hosts.toml yet'}",
            )
        )
    else:
        out.append(
            Finding(
                "registry hosts",
                Level.WARN,
                f"{hosts} does not exist",
                f"registries are reached over HTTPS with defaults; mirrors, CAs and"
                f" plain HTTP go in {hosts}/<host>/hosts.toml (deploy/certs.d)",
            )
        )
    return out


CHECKS = (runtimes, conmon, cni, cgroups, security, kernel, disks)


def check_host(settings: NodeSettings, host: Host) -> list[Finding]:
    out: list[Finding] = []
    for probe in CHECKS:
        out.extend(probe(settings, host))
    return out
