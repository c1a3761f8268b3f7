"""``pinnace doctor``'s host probes on fake hosts laid out in a temporary directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cri.doctor.host import Host, check_host
from cri.doctor.model import Level, NodeSettings, blocking

_CGROUPS_V1 = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpu\t1\t13\t1
memory\t4\t600\t1
pids\t8\t13\t1
hugetlb\t0\t13\t1
"""


def _host(tmp: Path, *, cgroups: str = _CGROUPS_V1, apparmor: str | None = None) -> Host:
    proc, sys = tmp / "proc", tmp / "sys"
    (proc / "self").mkdir(parents=True)
    (proc / "sys/kernel").mkdir(parents=True)
    (proc / "cgroups").write_text(cgroups)
    (proc / "self/status").write_text("Name:\tx\nSeccomp:\t0\n")
    (proc / "filesystems").write_text("nodev\ttmpfs\nnodev\toverlay\n\text4\n")
    (proc / "sys/kernel/osrelease").write_text("6.1.0-test\n")
    (sys / "fs/cgroup/unified").mkdir(parents=True)
    if apparmor is not None:
        (sys / "module/apparmor/parameters").mkdir(parents=True)
        (sys / "module/apparmor/parameters/enabled").write_text(apparmor)

    def run(argv: Sequence[str]) -> str:
        if argv[-1] == "features":
            return '{"mountOptions": ["rro"]}'
        return f"{Path(argv[0]).name} version 9.9\n"

    return Host(proc=proc, sys=sys, run=run)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    os.chmod(path, 0o755)
    return path


def _levels(findings: list, check: str) -> list[Level]:
    return [f.level for f in findings if f.check == check]


def test_a_healthy_node_blocks_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "cni-bin"
    _executable(bin_dir / "loopback")
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "10-lo.conflist").write_text('{"name": "lo", "plugins": [{"type": "loopback"}]}')
    settings = NodeSettings(
        root=tmp_path / "root", state=tmp_path / "state", registry_hosts_dir=tmp_path,
        cni_conf_dir=conf, cni_bin_dirs=(bin_dir,),
        conmon=_executable(tmp_path / "bin/conmon"),
        runtimes={"runc": _executable(tmp_path / "bin/runc")},
    )  # fmt: skip
    findings = check_host(settings, _host(tmp_path, apparmor="Y\n"))
    assert not blocking(findings), [f for f in findings if f.level is Level.FAIL]
    runc = next(f for f in findings if f.check == "runtime runc")
    assert "runc version 9.9" in runc.detail and "rro mounts: yes" in runc.detail
    # hugetlb on no v1 hierarchy (as on the test machines) is reported, not blocking
    assert _levels(findings, "hugetlb") == [Level.WARN]
    assert _levels(findings, "apparmor") == [Level.OK]


def test_a_broken_node_says_what_blocks_pods(tmp_path: Path) -> None:
    settings = NodeSettings(
        root=tmp_path, state=tmp_path, registry_hosts_dir=tmp_path / "nowhere",
        cni_conf_dir=tmp_path / "empty-net.d",
        conmon=_executable(tmp_path / "bin/conmon"),
        runtimes={"runc": tmp_path / "bin/runc"},  # missing
    )  # fmt: skip
    cgroups = _CGROUPS_V1.replace("pids\t8", "pids\t0")
    findings = check_host(settings, _host(tmp_path, cgroups=cgroups))
    assert blocking(findings)
    by_check = {f.check: f for f in findings}
    assert by_check["runtime runc"].level is Level.FAIL
    assert "missing" in by_check["runtime runc"].detail and by_check["runtime runc"].fix
    assert by_check["cni config"].level is Level.FAIL
    assert "10-pinnace.conflist" in by_check["cni config"].fix
    assert by_check["cgroup controllers"].level is Level.FAIL
    assert "pids" in by_check["cgroup controllers"].detail
    assert by_check["apparmor"].level is Level.WARN
    assert by_check["registry hosts"].level is Level.WARN


def test_missing_cni_plugins_are_named(tmp_path: Path) -> None:
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "10-br.conflist").write_text(
        '{"name": "br", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}'
    )
    settings = NodeSettings(cni_conf_dir=conf, cni_bin_dirs=(tmp_path / "bin",))
    findings = check_host(settings, _host(tmp_path))
    plugins = next(f for f in findings if f.check == "cni plugins")
    assert plugins.level is Level.FAIL and "bridge, portmap" in plugins.detail
