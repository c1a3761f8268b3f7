"""``pinnace doctor`` through the console script: on this host against a real pinnaced (hugetlb
and AppArmor absent are reported, nothing blocks pods), and on a broken node laid out in a
temporary directory (runtime binary missing, no CNI config, daemon down: exit 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli
from tests.support.daemon import Pinnaced, hosts_toml
from tests.support.registry import Registry


@pytest.fixture
def daemon(tmp_path: Path, registry: Registry) -> Iterator[Pinnaced]:
    hosts = tmp_path / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    d = Pinnaced(tmp_path, registry_hosts_dir=hosts)
    d.cni_conf_dir.mkdir(parents=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    yield d
    d.close()


def _findings(stdout: str) -> dict[str, dict[str, str]]:
    return {f["check"]: f for f in json.loads(stdout)["findings"]}


def test_doctor_on_this_host(daemon: Pinnaced) -> None:
    result = run_cli(daemon.socket, "doctor", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    found = _findings(result.stdout)
    assert found["pinnaced"]["level"] == "ok"
    # where things are comes from the daemon's own configuration
    assert str(daemon.cni_conf_dir) in found["cni config"]["detail"]
    assert str(daemon.socket) in found["socket"]["detail"]
    assert (
        found["runtime runc"]["level"] == "ok" and "runc version" in found["runtime runc"]["detail"]
    )
    assert found["conmon"]["level"] == "ok"
    # the facts of the test machines (DESIGN.md): hugetlb on no v1 hierarchy, no AppArmor
    assert found["hugetlb"]["level"] == "warn"
    assert (found["apparmor"]["level"], found["apparmor"]["detail"]) == ("warn", "AppArmor absent")
    table = run_cli(daemon.socket, "doctor")
    assert table.returncode == 0
    assert any(
        line.split()[:2] == ["warn", "hugetlb"] and " -> " in line
        for line in table.stdout.splitlines()
    ), table.stdout


def test_doctor_on_a_broken_node(tmp_path: Path) -> None:
    (tmp_path / "net.d").mkdir()
    broken = (
        "--config", str(tmp_path / "absent.toml"),
        "--runtime", f"runc={tmp_path / 'bin/runc'}",
        "--cni-conf-dir", str(tmp_path / "net.d"),
        "--root", str(tmp_path / "root"), "--state", str(tmp_path / "state"),
    )  # fmt: skip
    result = run_cli(tmp_path / "no-daemon.sock", "doctor", "-o", "json", *broken)
    assert result.returncode == 1, result
    data = json.loads(result.stdout)
    assert data["blocking"] is True
    found = _findings(result.stdout)
    assert found["pinnaced"]["level"] == "fail"
    assert "cannot reach pinnaced" in found["pinnaced"]["detail"]
    assert found["runtime runc"]["level"] == "fail"
    assert f"{tmp_path / 'bin/runc'} is missing" in found["runtime runc"]["detail"]
    assert found["cni config"]["level"] == "fail" and found["cni config"]["fix"]
    as_yaml = run_cli(tmp_path / "no-daemon.sock", "doctor", "-o", "yaml", *broken)
    assert as_yaml.returncode == 1 and yaml.safe_load(as_yaml.stdout)["blocking"] is True
    # the table: one line per check, what to do after the arrow
    table = run_cli(
        tmp_path / "no-daemon.sock", "doctor", "--runtime", f"runc={tmp_path / 'bin/runc'}",
        "--cni-conf-dir", str(tmp_path / "net.d"), "--config", str(tmp_path / "absent.toml"),
    )  # fmt: skip
    assert table.returncode == 1 and table.stderr == ""
    runc = next(line for line in table.stdout.splitlines() if "runtime runc" in line)
    assert runc.startswith("FAIL") and " -> apt-get install runc" in runc
