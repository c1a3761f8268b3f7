"""The ``pinnace`` console script as a user meets it, against a real pinnaced: failures are one
line naming the right cause (daemon unreachable, registry unreachable, not found) with a
non-zero exit; a closed pipe ends quietly; Ctrl-C exits 130; the output formats; images, untag;
stats; YAML errors; a failed play removes what it made."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.cli import CONSOLE_SCRIPT, cli_env, one_line_failure, run_cli
from tests.support.daemon import Pinnaced, hosts_toml
from tests.support.push import push_image
from tests.support.registry import Registry

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: console}}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{{name: scratch, emptyDir: {{}}}}]
  containers:
    - name: {name}-main
      image: {image}
      command: {command}
      volumeMounts: [{{name: scratch, mountPath: /scratch}}]
"""
SLEEPER = (
    '["sh", "-c", "trap \\"exit 0\\" TERM; echo up; while true; do sleep 3600 & wait $!; done"]'
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Pinnaced]:
    base = tmp_path_factory.mktemp("console")
    hosts = base / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    d = Pinnaced(base, registry_hosts_dir=hosts)
    d.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    try:
        yield d
    finally:
        for sandbox in d.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            d.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox.id))
            d.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
        d.close()


@pytest.fixture
def roots(tmp_path: Path) -> list[str]:
    return [
        "--log-root", str(tmp_path / "logs"), "--play-root", str(tmp_path / "play"),
        "--resolv-conf", "",
    ]  # fmt: skip


def _pod_yaml(tmp_path: Path, name: str, image: str, command: str = SLEEPER) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(POD.format(name=name, image=image, command=command))
    return path


# -- causes named correctly --------
def test_a_stopped_daemon_is_named_as_unreachable(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.sock"
    for argv in (["pods"], ["image", "pull", "busybox:1"], ["events"], ["stats"]):
        line = one_line_failure(run_cli(missing, *argv))
        assert line.startswith(f"pinnace: cannot reach pinnaced at unix://{missing}"), line
    # a bare path works as --address too
    line = one_line_failure(run_cli(None, "--address", str(missing), "ps"))
    assert f"unix://{missing}" in line


def test_an_unreachable_registry_is_not_mistaken_for_the_daemon(daemon: Pinnaced) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        hosts_toml(daemon.hosts_dir, f"127.0.0.1:{port}", plain_http=True)
        result = run_cli(daemon.socket, "image", "pull", "-q", f"127.0.0.1:{port}/x/y:1")
    line = one_line_failure(result)
    assert line.startswith("pinnace: registry unreachable:"), line
    assert "cannot reach pinnaced" not in line and f"127.0.0.1:{port}" in line


def test_not_found_is_one_line_and_prints_nothing_else(daemon: Pinnaced) -> None:
    result = run_cli(daemon.socket, "image", "inspect", "nosuch:1")
    assert one_line_failure(result) == "pinnace: not found: no image nosuch:1"
    assert result.stdout == ""
    line = one_line_failure(run_cli(daemon.socket, "inspect", "nosuch"))
    assert "nosuch" in line
    line = one_line_failure(run_cli(daemon.socket, "image", "rm", "nosuch:1"))
    assert line == "pinnace: not found: no image nosuch:1"


# -- pipes and Ctrl-C --------
def test_a_closed_stdout_ends_quietly(daemon: Pinnaced, pushed_busybox: str) -> None:
    run_cli(daemon.socket, "image", "pull", "-q", pushed_busybox)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before pinnace writes: its first write fails
    try:
        for argv in (["images", "-o", "json"], ["image", "inspect", pushed_busybox], ["info"]):
            result = run_cli(daemon.socket, *argv, stdout=write_end)
            assert (result.returncode, result.stderr) == (141, ""), (argv, result)
    finally:
        os.close(write_end)
    # and as a user types it
    shell = subprocess.run(
        f"'{CONSOLE_SCRIPT}' images -o yaml | head -1; '{CONSOLE_SCRIPT}' info | head -1",
        shell=True,
        env=cli_env(daemon.socket),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shell.stderr == "" and len(shell.stdout.splitlines()) == 2, shell


def test_ctrl_c_exits_130_without_a_traceback(
    daemon: Pinnaced, pushed_busybox: str, tmp_path: Path, roots: list[str]
) -> None:
    manifest = _pod_yaml(tmp_path, "interrupted", pushed_busybox)
    played = run_cli(daemon.socket, "play", "-q", "-o", "json", str(manifest), *roots)
    assert played.returncode == 0, played.stderr
    container = json.loads(played.stdout)["containers"]["interrupted-main"]
    try:
        # top refreshes forever; logs -f waits for the container's exit. The interrupt lands at
        # a few points after the first line: inside a blocking call it once left grpc's
        # Channel.close() waiting forever for the abandoned call.
        for argv, first, delay in (
            (["top", "--interval", "0.2"], "KIND", 0.0),
            *((["logs", "-f", container], "up", delay) for delay in (0.0, 0.002, 0.005, 0.01)),
        ):
            proc = subprocess.Popen(
                [str(CONSOLE_SCRIPT), *argv],
                env=cli_env(daemon.socket),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group, as a terminal's foreground job
            )
            try:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                assert line.startswith(first), (argv, line, proc.poll())  # it is running
                time.sleep(delay)
                os.killpg(proc.pid, signal.SIGINT)
                _, err = proc.communicate(timeout=90)  # generous: the host may be busy
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert proc.returncode == 130, (argv, err)
            assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    finally:
        down = run_cli(daemon.socket, "play", "--down", str(manifest), *roots)
        assert down.returncode == 0, down.stderr


# -- listings and formats --------
def test_formats_images_and_untag(daemon: Pinnaced, registry: Registry) -> None:
    image = images.busybox_image(config=images.ImageConfig(cmd=None, labels={"untag": "yes"}))
    push_image(registry.url, "console/multi", "a", image)
    push_image(registry.url, "console/multi", "b", image)
    first, second = f"{registry.host}/console/multi:a", f"{registry.host}/console/multi:b"
    for name in (first, second):
        assert run_cli(daemon.socket, "image", "pull", "-q", name).returncode == 0
    listed = run_cli(daemon.socket, "images", "-o", "yaml")
    assert listed.returncode == 0
    entry = next(i for i in yaml.safe_load(listed.stdout) if first in i["repoTags"])
    assert second in entry["repoTags"]
    ids = run_cli(daemon.socket, "images", "-q").stdout.split()
    assert entry["id"] in ids
    assert entry["id"] in run_cli(daemon.socket, "image", "ls", "-o", "wide").stdout
    table = run_cli(daemon.socket, "image", "inspect", "-o", "table", first).stdout
    assert table.splitlines()[0].split()[:3] == ["IMAGE", "ID", "TAGS"]

    # rm of one tag of two untags it; the image stays under the other
    removed = run_cli(daemon.socket, "image", "rm", first)
    assert removed.returncode == 0 and removed.stdout.startswith(f"untagged {first}")
    status = daemon.image.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=second)))
    assert list(status.image.repo_tags) == [second]
    # the last tag removes the image
    assert run_cli(daemon.socket, "image", "rm", second).stdout.startswith("removed sha256:")
    assert entry["id"] not in run_cli(daemon.socket, "images", "-q").stdout


def test_pods_ps_inspect_stats_formats(
    daemon: Pinnaced, pushed_busybox: str, tmp_path: Path, roots: list[str]
) -> None:
    manifest = _pod_yaml(tmp_path, "formats", pushed_busybox)
    played = run_cli(daemon.socket, "play", "-q", "-o", "json", str(manifest), *roots)
    assert played.returncode == 0, played.stderr
    pod_id = json.loads(played.stdout)["pod"]
    try:
        pods = yaml.safe_load(run_cli(daemon.socket, "pods", "-a", "-o", "yaml").stdout)
        assert pod_id in [p["id"] for p in pods["items"]]
        assert pod_id in run_cli(daemon.socket, "pods", "-q").stdout.split()
        assert pod_id in run_cli(daemon.socket, "pods", "-o", "wide").stdout
        assert run_cli(daemon.socket, "pods", "--state", "NotReady", "-q").stdout.split() == []
        ps = yaml.safe_load(run_cli(daemon.socket, "ps", "-o", "yaml").stdout)
        assert [c["metadata"]["name"] for c in ps["containers"]] == ["formats-main"]
        inspected = run_cli(daemon.socket, "inspect", "-o", "table", "formats", "formats-main")
        rows = [line.split()[:3] for line in inspected.stdout.splitlines()]
        assert rows[0] == ["KIND", "ID", "NAME"]
        assert [r[0] for r in rows[1:]] == ["pod", "container"]
        assert (
            yaml.safe_load(run_cli(daemon.socket, "inspect", "-o", "yaml", "formats").stdout)[
                "status"
            ]["id"]
            == pod_id
        )
        stats = run_cli(daemon.socket, "stats")
        assert stats.returncode == 0, stats.stderr
        lines = [line.split() for line in stats.stdout.splitlines()]
        assert lines[0][:3] == ["KIND", "ID", "NAME"]
        assert ["pod", pod_id[:13], "formats", "console"] in [line[:4] for line in lines]
        assert any(line[:3] == ["container", line[1], "formats-main"] for line in lines)
        data = json.loads(run_cli(daemon.socket, "stats", "-o", "json").stdout)
        assert pod_id in [p["attributes"]["id"] for p in data["pods"]]
        # a pod named where only a container will do: said so, with its containers' names
        assert one_line_failure(run_cli(daemon.socket, "logs", "formats")) == (
            "pinnace: 'formats' is a pod, not a container; its containers: formats-main"
        )
    finally:
        down = run_cli(daemon.socket, "play", "--down", str(manifest), *roots)
        assert down.returncode == 0, down.stderr


def test_extension_listings_take_yaml_and_name_their_command(daemon: Pinnaced) -> None:
    cdi = run_cli(daemon.socket, "cdi", "ls", "-o", "yaml")
    assert cdi.returncode == 0 and "devices" in yaml.safe_load(cdi.stdout), cdi
    nri = run_cli(daemon.socket, "nri", "ls", "-o", "yaml")
    assert nri.returncode == 0 and yaml.safe_load(nri.stdout)["plugins"] == [], nri
    bare = run_cli(daemon.socket, "nri")
    assert bare.returncode == 2
    assert bare.stderr.splitlines()[-1] == (
        "pinnace nri: error: the following arguments are required: COMMAND"
    )


# -- manifests and play --------
def test_yaml_errors_name_the_file_line_and_field(daemon: Pinnaced, tmp_path: Path) -> None:
    two = tmp_path / "two.yaml"
    two.write_text("a: 1\n---\nb: 2\n")
    assert one_line_failure(run_cli(daemon.socket, "play", str(two))) == (
        f"pinnace: {two}: holds 2 YAML documents; give exactly one Pod per file"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: [\n")
    assert one_line_failure(run_cli(daemon.socket, "play", str(broken))).startswith(
        f"pinnace: {broken}:4:1: not valid YAML:"
    )
    typed = tmp_path / "typed.yaml"
    typed.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec:\n  containers:\n"
        "  - name: c\n    image: busybox\n    ports:\n    - containerPort: eighty\n"
    )
    line = one_line_failure(run_cli(daemon.socket, "play", str(typed)))
    assert line.startswith(f"pinnace: {typed}:9: ")
    assert "spec.containers[0].ports[0].containerPort" in line and "V1" not in line
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"apiVersion: v1\n\xff\xfe\n")
    assert one_line_failure(run_cli(daemon.socket, "play", str(binary))) == (
        f"pinnace: {binary}: not UTF-8 text (byte 0xff at offset 15); a Pod manifest is YAML"
    )
    with binary.open("rb") as stdin:
        piped = run_cli(daemon.socket, "play", "-", stdin=stdin)
    assert one_line_failure(piped).startswith("pinnace: <stdin>: not UTF-8 text (byte 0xff")


def test_a_failed_play_removes_what_it_made_and_says_how_to_inspect(
    daemon: Pinnaced, pushed_busybox: str, tmp_path: Path, roots: list[str]
) -> None:
    manifest = _pod_yaml(tmp_path, "broken-start", pushed_busybox, command='["/no/such/binary"]')
    line = one_line_failure(run_cli(daemon.socket, "play", "-q", str(manifest), *roots))
    assert "starting container broken-start-main" in line and "--keep" in line, line
    assert run_cli(daemon.socket, "pods", "-q").stdout == ""
    assert not any((tmp_path / "play").iterdir()) and not any((tmp_path / "logs").iterdir())

    kept = one_line_failure(run_cli(daemon.socket, "play", "-q", "--keep", str(manifest), *roots))
    assert "is kept" in kept and "pinnace play --down" in kept, kept
    assert len(run_cli(daemon.socket, "pods", "-q").stdout.split()) == 1
    assert run_cli(daemon.socket, "play", "--down", str(manifest), *roots).returncode == 0
    assert run_cli(daemon.socket, "pods", "-q").stdout == ""
    assert not any((tmp_path / "play").iterdir())
