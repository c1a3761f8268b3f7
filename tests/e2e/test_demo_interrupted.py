"""The demo (scripts/demo.py) interrupted as a person at a terminal would, with Ctrl-C (SIGINT
to its foreground process group), while it pulls and while its pod runs: it exits 130 saying
so, and leaves nothing: no process, mount, pod cgroup, bridge, address reservation or temporary
directory of its own. (A CLI child the Ctrl-C catches while its interpreter still imports the
console-script wrapper prints Python's own traceback, before any pinnace code runs: the demo's
output is not checked for one.)"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cri.config import default_cgroup_root
from tests.support.daemon import (
    EXEC_HELPER_CACHE,
    cgroup_dirs_of,
    mounts_under,
    processes_mentioning,
)

REPO = Path(__file__).resolve().parents[2]
BRIDGE = "pndemo0"  # scripts/demo.py's network
DEMO_IPAM = Path("/var/lib/cni/networks/demo")  # host-local's default dataDir for it


def _lines(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)


def _until(lines: queue.Queue[str | None], marker: str, seen: list[str], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            raise AssertionError("the demo ended before " + marker + ":\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return


def _daemon_dirs(tmp: Path) -> tuple[Path, Path]:
    """The --root and --state of the demo's pinnaced (found by its command line)."""
    for cmd in processes_mentioning([str(tmp)]).values():
        found = re.search(r"cri\.daemon --root (\S+) --state (\S+)", cmd)
        if found:
            return Path(found[1]), Path(found[2])
    raise AssertionError("the demo's pinnaced is not running")


@pytest.mark.parametrize(
    "marker", ["$ pinnace image pull", "$ pinnace logs greeter"], ids=["pulling", "pod-running"]
)
def test_ctrl_c_leaves_nothing_behind(tmp_path: Path, marker: str) -> None:
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
        pytest.skip(f"another demo is running here ({BRIDGE} exists)")
    ipam_existed = DEMO_IPAM.exists()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the terminal's, for the Ctrl-C
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        _until(lines, marker, seen, timeout=240)
        root, state = _daemon_dirs(tmp)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    while (line := lines.get_nowait() if not lines.empty() else None) is not None:
        seen.append(line)
    out = "".join(seen)
    assert code == 130, out
    assert "demo interrupted" in out, out
    # nothing of it is left
    assert processes_mentioning([str(tmp), str(state)]) == {}
    assert mounts_under([tmp, state]) == []
    # the harness's build cache of pinnace-exec is shared by every daemon on purpose
    left = [p for p in tmp.iterdir() if p.name != EXEC_HELPER_CACHE.name]
    assert left == [], "the demo's temporary directory is left"
    assert not state.parent.exists(), "the daemon's socket and state directory are left"
    cgroups = [p for top in cgroup_dirs_of(default_cgroup_root(root)) for p in top.iterdir()]
    assert [p for p in cgroups if p.is_dir()] == []
    assert subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0
    reserved = [p.name for p in DEMO_IPAM.iterdir()] if DEMO_IPAM.is_dir() else []
    assert [name for name in reserved if name.startswith("10.213.251.")] == []
    assert ipam_existed or not DEMO_IPAM.exists(), f"{DEMO_IPAM} made by the demo is left"
