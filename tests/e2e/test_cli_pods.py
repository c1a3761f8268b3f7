"""The pods CLI end to end: ``pinnace play`` a Pod manifest on a real pinnaced (runc, conmon, the
local registry's busybox), then ``pods``, ``ps``, ``logs``, ``exec``, ``inspect``, ``stop``,
``rm`` and ``play --down``, run in-process through ``cri.cli.main.main``. Nothing may remain:
no pods, no containers, no directories play made."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import main as cli
from tests.support import images
from tests.support.daemon import Pinnaced
from tests.support.push import push_image
from tests.support.registry import Registry
from tests.support.watch import wait_for_content

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: cli-demo
  namespace: e2e
  labels: {{app: cli-demo}}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
    - name: data
      emptyDir: {{}}
  initContainers:
    - name: prepare
      image: {image}
      command: ["sh", "-c", "echo prepared-by-init > /data/state"]
      volumeMounts: [{{name: data, mountPath: /data}}]
  containers:
    - name: main
      image: {image}
      command: ["sh", "-c"]
      args:
        - |
          trap 'exit 0' TERM
          cat /data/state
          echo "hello from $(WHO)"
          while true; do sleep 3600 & wait $!; done
      env: [{{name: WHO, value: play}}]
      volumeMounts: [{{name: data, mountPath: /data}}]
      resources: {{limits: {{cpu: 500m, memory: 64Mi}}}}
    - name: once
      image: {image}
      command: ["sh", "-c", "echo one; echo two >&2; printf 'th'; echo ree"]
"""


@dataclass
class Cli:
    """Runs ``pinnace --address <daemon> ...`` in-process, capturing what it prints."""

    daemon: Pinnaced
    capsys: pytest.CaptureFixture[str]
    play_args: list[str]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(["--address", f"unix://{self.daemon.socket}", *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, f"pinnace {' '.join(argv)} exited {code}: {err}"
        return out

    def json(self, *argv: str) -> Any:
        return json.loads(self.ok(*argv, "-o", "json"))


@pytest.fixture
def daemon(pinnaced: Any, registry: Registry) -> Iterator[Pinnaced]:
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/cli-pause", "v1", pause)
    config = f'[images]\nsandbox_image = "{registry.host}/test/cli-pause:v1"\n'
    d = pinnaced(config_text=config, start=False)
    d.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    d.image.PullImage(
        pb.PullImageRequest(image=pb.ImageSpec(image=f"{registry.host}/test/cli-pause:v1")),
        timeout=120,
    )
    yield d
    for sandbox in d.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        d.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))


@pytest.fixture
def pinnace(daemon: Pinnaced, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    roots = ["--log-root", str(tmp_path / "logs"), "--play-root", str(tmp_path / "play")]
    return Cli(daemon, capsys, [*roots, "--resolv-conf", ""])


def _await_log(pinnace: Cli, container_id: str, needle: str) -> None:
    """Wait until the container's log file holds ``needle`` (conmon writes on its own time)."""
    status = pinnace.daemon.runtime.ContainerStatus(
        pb.ContainerStatusRequest(container_id=container_id)
    ).status
    wait_for_content(Path(status.log_path), lambda data: needle.encode() in data, timeout=30)


def _follow_through_rotation(pinnace: Cli, container_id: str) -> str:
    runtime = pinnace.daemon.runtime
    argv = ["--address", f"unix://{pinnace.daemon.socket}", "logs", "-f", container_id]
    pinnace.capsys.readouterr()
    result: dict[str, int] = {}
    follower = threading.Thread(target=lambda: result.update(code=cli.main(argv)), daemon=True)
    follower.start()
    seen = ""

    def wait_for(needle: str) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while needle not in seen and time.monotonic() < deadline:
            seen += pinnace.capsys.readouterr().out
            time.sleep(0.05)
        assert needle in seen, seen

    def say(text: str) -> None:
        runtime.ExecSync(
            pb.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", f"echo {text} > /proc/1/fd/1"]
            ),
            timeout=30,
        )

    wait_for("hello from play")  # the follower has the file open
    say("before-rotation")
    wait_for("before-rotation")
    log = Path(
        runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id)
        ).status.log_path
    )
    log.rename(log.with_name("0.log.1"))
    runtime.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=container_id))
    say("after-rotation")
    wait_for("after-rotation")
    runtime.StopContainer(pb.StopContainerRequest(container_id=container_id, timeout=5), timeout=30)
    follower.join(timeout=30)
    assert not follower.is_alive() and result == {"code": 0}
    return seen + pinnace.capsys.readouterr().out


def test_play_a_pod_and_drive_it_with_the_cli(
    pinnace: Cli, pushed_busybox: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(MANIFEST.format(image=pushed_busybox))

    played = pinnace.json("play", str(manifest), *pinnace.play_args, "--quiet")
    pod_id = played["pod"]
    assert (played["name"], played["namespace"]) == ("cli-demo", "e2e")
    assert set(played["containers"]) == {"prepare", "main", "once"}
    main_id, once_id = played["containers"]["main"], played["containers"]["once"]

    # a second play of the same pod is refused
    code, _, err = pinnace("play", str(manifest), *pinnace.play_args, "--quiet")
    assert code == 1 and "exists already" in err

    # pods: table and JSON, filters
    table = pinnace.ok("pods")
    assert table.splitlines()[0].split() == [
        "POD", "ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME",
    ]  # fmt: skip
    row = next(line for line in table.splitlines() if "cli-demo" in line)
    assert row.startswith(pod_id[:13]) and "Ready" in row and "e2e" in row and "ago" in row
    items = pinnace.json("pods", "--label", "app=cli-demo")["items"]
    assert [p["id"] for p in items] == [pod_id]
    assert items[0]["metadata"]["name"] == "cli-demo"
    assert pinnace.json("pods", "--label", "app=other")["items"] == []
    assert pinnace.json("pods", "--name", "^cli-")["items"][0]["id"] == pod_id

    # logs: the init container wrote the shared volume, $(WHO) was expanded
    _await_log(pinnace, main_id, "hello from play")
    code, out, err = pinnace("logs", main_id[:12])
    text = out + err
    assert "prepared-by-init\nhello from play\n" in text
    assert pinnace("logs", "prepare") == (0, "", "")  # by name; it wrote only to the volume
    # follow a container until it exits; stdout and stderr go to their own streams, and the
    # partial 'th' record is joined to 'ree'
    code, out, err = pinnace("logs", "-f", once_id[:10])
    assert code == 0
    assert out == "one\nthree\n"
    assert err == "two\n"
    code, out, err = pinnace("logs", "--timestamps", once_id)
    stamped = [line.split(" ", 1) for line in (out + err).splitlines()]
    assert sorted(text for _, text in stamped) == ["one", "three", "two"]
    assert all(stamp.startswith("20") and "T" in stamp for stamp, _ in stamped)
    # conmon interleaves the streams in its own order; --tail counts lines of both
    code, out, err = pinnace("logs", "--tail", "1", once_id)
    assert code == 0 and len((out + err).splitlines()) == 1
    assert pinnace("logs", "--tail", "0", once_id) == (0, "", "")

    # ps: running containers by default, every one with -a
    running = pinnace.ok("ps")
    assert main_id[:13] in running and once_id[:13] not in running
    assert pushed_busybox in running
    everything = pinnace.json("ps", "-a", "--pod", pod_id[:8])["containers"]
    assert {c["metadata"]["name"] for c in everything} == {"prepare", "main", "once"}
    assert pinnace.ok("ps", "-q").split() == [main_id]

    # exec: output and exit status pass through
    code, out, err = pinnace("exec", main_id[:12], "--", "echo", "hi")
    assert (code, out, err) == (0, "hi\n", "")
    code, out, err = pinnace("exec", "main", "--", "sh", "-c", "echo bad >&2; exit 4")
    assert (code, out, err) == (4, "", "bad\n")
    code, _, err = pinnace("exec", "--timeout", "1", "main", "--", "sleep", "10")
    assert code == 1 and "DEADLINE_EXCEEDED" in err and "timed out" in err
    state = pinnace("exec", "main", "--", "cat", "/data/state")
    assert state == (0, "prepared-by-init\n", ""), state

    # inspect: verbose status of a pod and of a container
    pod = pinnace.json("inspect", pod_id[:10])
    assert pod["status"]["metadata"]["name"] == "cli-demo"
    assert pod["status"]["state"] == "SANDBOX_READY"
    ctr = json.loads(pinnace.ok("inspect", main_id))
    assert ctr["status"]["state"] == "CONTAINER_RUNNING"
    assert ctr["status"]["resources"]["linux"]["cpuQuota"] == "50000"

    # stop and rm a container by id prefix; an unknown id is an error
    assert pinnace.ok("stop", once_id[:12]).strip() == once_id
    assert pinnace.ok("rm", once_id[:12]).strip() == once_id
    assert once_id not in [c["id"] for c in pinnace.json("ps", "-a")["containers"]]
    code, _, err = pinnace("rm", "no-such-thing")
    assert code == 1 and "no-such-thing" in err
    code, _, err = pinnace("rm", "main")
    assert code == 1 and "running" in err

    # logs -f follows appends and a rotation (rename, ReopenContainerLog) until the exit
    seen = _follow_through_rotation(pinnace, main_id)
    assert seen.index("hello from play") < seen.index("before-rotation")
    assert seen.index("before-rotation") < seen.index("after-rotation")

    # play --down removes the pod and the directories play made
    log_dir = tmp_path / "logs"
    assert any(log_dir.iterdir()) and any((tmp_path / "play").iterdir())
    removed = pinnace.json("play", "--down", str(manifest), *pinnace.play_args)["removed"]
    assert removed == [pod_id]
    assert pinnace.json("pods")["items"] == []
    assert pinnace.json("ps", "-a")["containers"] == []
    assert list(log_dir.iterdir()) == [] and list((tmp_path / "play").iterdir()) == []
    code, _, err = pinnace("play", "--down", str(manifest), *pinnace.play_args)
    assert code == 1 and "no pod e2e/cli-demo" in err


def test_play_refuses_an_invalid_manifest_before_touching_the_node(
    pinnace: Cli, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n"
        "  volumes: [{name: c, configMap: {name: x}}]\n"
        "  containers: [{name: a, image: busybox}]\n"
    )
    code, _, err = pinnace("play", str(manifest), *pinnace.play_args)
    assert code == 1
    assert "metadata.name" in err and "spec.volumes[0].configMap" in err
    assert pinnace.json("pods")["items"] == []
    assert not (tmp_path / "play").exists()
