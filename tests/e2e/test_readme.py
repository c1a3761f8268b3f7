"""Every command the README shows runs, in order, against a pinnaced this test starts: the
```sh blocks, each line (with its ``\\`` continuations) through ``sh -c`` with the venv's
``pinnace`` first on PATH. A block the test cannot run says so right above it with
``<!-- readme-test: not run (why) -->``. docker.io is routed to the test's local registry
(hosts.toml), so nothing leaves the machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import images
from tests.support.cli import REPO_ROOT, cli_env
from tests.support.daemon import Pinnaced, hosts_toml
from tests.support.push import push_image
from tests.support.registry import Registry

README = REPO_ROOT / "README.md"
_SKIP = re.compile(r"^<!-- readme-test: not run \((.+)\) -->$")


@dataclass(frozen=True)
class Block:
    line: int
    commands: tuple[str, ...]
    skipped: str | None


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            marker = _SKIP.match(lines[j].strip()) if j >= 0 else None
            body = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            commands, pending = [], ""
            for line in body:
                pending += line.rstrip()
                if pending.endswith("\\"):
                    pending = pending[:-1] + " "
                    continue
                if pending.strip() and not pending.lstrip().startswith("#"):
                    commands.append(pending.strip())
                pending = ""
            blocks.append(Block(start + 1, tuple(commands), marker.group(1) if marker else None))
        i += 1
    return blocks


def test_the_readme_hides_no_commands_outside_blocks() -> None:
    text = README.read_text()
    indented = [
        line
        for line in text.splitlines()
        if re.match(r"^ {4}(pinnace|pinnaced|crictl|bash|sh|sudo|apt-get|systemctl)\b", line)
    ]
    assert indented == [], "commands must be in ```sh blocks, where the README test sees them"
    blocks = readme_blocks(text)
    assert sum(len(b.commands) for b in blocks if b.skipped is None) >= 10
    assert all(b.commands for b in blocks)


@pytest.fixture
def daemon(tmp_path: Path, registry: Registry) -> Iterator[Pinnaced]:
    busybox = images.busybox_image()
    push_image(registry.url, "library/busybox", "1.36", busybox)
    hosts = tmp_path / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    hosts_toml(hosts, "docker.io", plain_http=True, server=registry.url)
    d = Pinnaced(tmp_path / "daemon", registry_hosts_dir=hosts)
    (tmp_path / "daemon").mkdir(exist_ok=True)
    d.cni_conf_dir.mkdir(parents=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    # what the offline section imports, as it would arrive on a machine
    work = tmp_path / "work"
    work.mkdir()
    images.write_oci_archive(busybox, work / "busybox.tar", ref_name="1.36")
    (work / "deploy").symlink_to(REPO_ROOT / "deploy")
    yield d
    d.close()


def test_every_readme_command_runs(daemon: Pinnaced, tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = cli_env(daemon.socket, {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PINNACE_LOG_ROOT": str(tmp_path / "pod-logs"),
        "PINNACE_PLAY_ROOT": str(tmp_path / "play"),
    })  # fmt: skip
    ran = []
    for block in readme_blocks(README.read_text()):
        if block.skipped:
            continue
        for command in block.commands:
            result = subprocess.run(
                ["sh", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                timeout=300, check=False,
            )  # fmt: skip
            where = f"README.md:{block.line}: {command}"
            assert result.returncode == 0, f"{where}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, where
            ran.append(command)
    assert "pinnace play deploy/examples/pod.yaml" in ran
    assert any(c.startswith("pinnace image import") for c in ran)
