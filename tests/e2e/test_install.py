"""deploy/install.sh into a temporary root (``--root-prefix``): what it installs, that a second
run changes nothing, that ``--dry-run`` changes nothing, that it never overwrites an operator's
files; then pinnaced starts from the installed config and signals readiness as systemd's
``Type=notify`` expects."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.cli import REPO_ROOT, run_cli
from tests.support.daemon import Pinnaced

INSTALL = REPO_ROOT / "deploy/install.sh"


def _install(prefix: Path, *extra: str) -> list[list[str]]:
    result = subprocess.run(
        ["sh", str(INSTALL), "--root-prefix", str(prefix), *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result
    return [line.split(None, 1) for line in result.stdout.splitlines()]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _readme_covers(installs: set[str], made: set[str]) -> bool:
    """The README's "Run it on a node" table is what install.sh does: each row's path is one it
    installs or makes, and each file it installs is a row's path or below a path a row names."""
    text = (REPO_ROOT / "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `/")]
    firsts = {row.split("`")[1].rstrip("/") for row in rows}
    named = {m.rstrip("/") for row in rows for m in re.findall(r"`(/[^`]*)`", row)}
    assert firsts <= installs | made, firsts - (installs | made)
    uncovered = {f for f in installs if not any(f == n or f.startswith(n + "/") for n in named)}
    assert not uncovered, f"install.sh installs files the README's table does not name: {uncovered}"
    return True


def test_install_is_idempotent_and_pinnaced_starts_from_it(tmp_path: Path) -> None:
    prefix = tmp_path / "node"
    prefix.mkdir()
    planned = _install(prefix, "--dry-run", "--pinnaced", sys.executable)
    assert _files(prefix) == set()  # a dry run changes nothing
    installs = {words[1].split()[0] for words in planned if words[0] == "install"}
    made = {words[1].split()[0] for words in planned if words[0] == "mkdir"}
    assert {
        "/etc/pinnace/config.toml", "/etc/systemd/system/pinnace.service", "/etc/crictl.yaml",
        "/etc/cni/net.d/10-pinnace.conflist", "/usr/local/lib/pinnace/crun-hybrid-cgroups",
        "/usr/share/doc/pinnace/kubelet-config.yaml",
        "/usr/share/doc/pinnace/certs.d/docker.io/hosts.toml",
    } <= installs  # fmt: skip

    assert _readme_covers(installs, made)

    _install(prefix, "--pinnaced", "/opt/pinnace/bin/pinnaced")
    assert {f"/{f}" for f in _files(prefix)} == installs
    assert (prefix / "etc/pinnace/certs.d").is_dir()  # the live hosts dir starts empty
    unit = (prefix / "etc/systemd/system/pinnace.service").read_text()
    assert "ExecStart=/opt/pinnace/bin/pinnaced --config /etc/pinnace/config.toml" in unit
    # what `systemctl help pinnace` opens is there
    docs = [line.split("file://", 1)[1] for line in unit.splitlines() if "=file://" in line]
    assert docs and set(docs) <= installs, docs
    again = _install(prefix, "--pinnaced", "/opt/pinnace/bin/pinnaced")
    assert {words[0] for words in again} <= {"unchanged", "missing"}, again

    # an operator's edits are kept
    config = prefix / "etc/pinnace/config.toml"
    config.write_text(config.read_text().replace('log_level = "info"', 'log_level = "warning"'))
    kept = _install(prefix, "--pinnaced", "/opt/pinnace/bin/pinnaced")
    assert ["keep", "/etc/pinnace/config.toml"] in [[w[0], w[1].split()[0]] for w in kept]
    assert 'log_level = "warning"' in config.read_text()
    config.write_text(config.read_text().replace('log_level = "warning"', 'log_level = "info"'))

    # pinnaced from the installed files: its config, CNI network and hosts dir; the paths
    # that would touch the real node (root, state, socket) moved into the test's directories.
    # The installed network masquerades (for real nodes): this test never brings it up.
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(notify_path))
        systemd.settimeout(60)
        daemon = Pinnaced(
            tmp_path / "d",
            registry_hosts_dir=prefix / "etc/pinnace/certs.d",
            extra_args=["--config", str(config), "--cni-conf-dir", str(prefix / "etc/cni/net.d"),
                        "--log-level", "info"],
            env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
        )  # fmt: skip
        try:
            daemon.start()
            assert "READY=1" in systemd.recv(4096).decode().splitlines()
            info = run_cli(daemon.socket, "info", "-o", "json")
            assert info.returncode == 0, info.stderr
            conditions = {c["type"]: c["status"] for c in json.loads(info.stdout)["conditions"]}
            assert conditions == {"RuntimeReady": True, "NetworkReady": True}
            doctor = run_cli(daemon.socket, "doctor", "-o", "json")
            found = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
            assert "10-pinnace.conflist" in found["cni config"]["detail"]
        finally:
            daemon.close()
