"""TaskManager against real runc, crun and conmon (root only).

Every test works in a fresh short state directory under /run and a private cgroup parent,
and its fixture tears down whatever the test left: runtime containers, conmon processes (by
pid), cgroups and directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import minispec
import pytest
import rootfs

from runtime import cgroups
from runtime.errors import FailedPrecondition
from runtime.tasks import ExitFact, RuntimeHandler, TaskManager, TaskSpec, TaskState, crilog
from runtime.tasks.inotify import IN_CLOSE_WRITE, IN_MODIFY, IN_MOVED_TO, DirectoryWatch
from runtime.tasks.procfs import parse_start_time

pytestmark = pytest.mark.integration

RUNC = shutil.which("runc")
CRUN = shutil.which("crun")
CONMON = shutil.which("conmon")
REPO = Path(__file__).resolve().parents[2]

if os.geteuid() != 0 or not (RUNC and CONMON and rootfs.busybox_available()):
    pytest.skip("needs root, runc, conmon and busybox", allow_module_level=True)


def crun_handler(base: Path) -> RuntimeHandler | None:
    """crun, wrapped when needed: crun 1.8 refuses hybrid cgroups whenever the unified
    hierarchy has any controller (these machines give it hugetlb). The wrapper hides that
    file from crun alone, in a private mount namespace, and changes nothing on the host."""
    if CRUN is None:
        return None
    binary = Path(CRUN)
    unified_ctrls = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if unified_ctrls.exists() and unified_ctrls.read_text().strip():
        binary = base / "crunw"
        binary.write_text(
            "#!/bin/sh\nexec unshare -m --propagation private sh -c "
            f'\'mount --bind /dev/null {unified_ctrls} && exec {CRUN} "$@"\' crun "$@"\n'
        )
        binary.chmod(0o755)
    return RuntimeHandler("crun", binary, base / "crun")


@dataclass
class Env:
    """One test's world: a state dir, handlers, a busybox rootfs and a cgroup parent."""

    base: Path
    rootfs: Path
    handlers: dict[str, RuntimeHandler]
    cgroup_parent: str
    mounts: cgroups.CgroupMounts
    made: list[tuple[str, str]] = field(default_factory=list)  # (handler, id)

    def manager(self) -> TaskManager:
        assert CONMON is not None
        return TaskManager(self.base / "st", self.handlers, Path(CONMON))

    def spec(self, id: str, args: list[str], *, runtime: str = "runc") -> TaskSpec:
        bundle = minispec.write_bundle(
            self.base / "b" / id,
            self.rootfs,
            minispec.spec(args, cgroups_path=f"{self.cgroup_parent}/{id}"),
        )
        self.made.append((runtime, id))
        return TaskSpec(id=id, bundle=bundle, runtime=runtime, log_path=self.base / "l" / id)


@pytest.fixture(scope="module")
def busybox_root() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ptr-", dir="/run"))
    try:
        yield rootfs.build_busybox_rootfs(d / "rootfs")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env(busybox_root: Path) -> Iterator[Env]:
    base = Path(tempfile.mkdtemp(prefix="pt-", dir="/run"))
    assert RUNC is not None
    handlers = {"runc": RuntimeHandler("runc", Path(RUNC), base / "runc")}
    crun = crun_handler(base)
    if crun is not None:
        handlers["crun"] = crun
    e = Env(base, busybox_root, handlers, f"/pinnace-test-{base.name}", cgroups.detect())
    try:
        yield e
    finally:
        _teardown(e)


def _teardown(e: Env) -> None:
    for runtime, id in e.made:
        h = e.handlers[runtime]
        subprocess.run(
            [str(h.binary), "--root", str(h.root), "delete", "-f", id], capture_output=True
        )
    # Any conmon still running for this test's state dir is ours: end it by pid.
    for pidfile in (e.base / "st" / "tasks").glob("*/conmon.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, FileNotFoundError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    with contextlib.suppress(Exception):
        cgroups.remove(e.mounts, e.cgroup_parent)
    shutil.rmtree(e.base, ignore_errors=True)


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


async def await_file(path: Path, ready: Callable[[bytes], bool], limit: float = 10.0) -> bytes:
    """Await the fact that ``path``'s content satisfies ``ready`` (inotify, no polling)."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    with DirectoryWatch(
        path.parent, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO, lambda ev: changed.set()
    ):
        deadline = loop.time() + limit
        while True:
            changed.clear()
            data = await asyncio.to_thread(_read_or_empty, path)
            if ready(data):
                return data
            await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))


def conmon_gone(pid: int) -> bool:
    """True when the process has exited (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


async def test_lifecycle_logs_exec_stop(env: Env) -> None:
    spec = env.spec("lc1", ["sh", "-c", "echo hello; echo err >&2; sleep 1000"])
    async with env.manager() as m:
        info = await m.create(spec)
        assert info.pid > 0 and info.conmon_pid > 0
        stat = await asyncio.to_thread(Path(f"/proc/{info.conmon_pid}/stat").read_text)
        assert parse_start_time(stat) == info.conmon_start_time
        assert await m.state("lc1") is TaskState.CREATED
        await m.start("lc1")
        assert await m.state("lc1") is TaskState.RUNNING

        data = await await_file(spec.log_path, lambda d: b"err\n" in d and b"hello\n" in d)
        records = crilog.parse(data)
        assert crilog.stream_text(records, "stdout") == b"hello\n"
        assert crilog.stream_text(records, "stderr") == b"err\n"
        assert all(not r.partial for r in records)

        res = await m.exec_sync(
            "lc1", ["sh", "-c", "echo out; echo errout >&2; exit 3"], timeout=10
        )
        assert (res.exit_code, res.stdout, res.stderr, res.timed_out) == (
            3,
            b"out\n",
            b"errout\n",
            False,
        )
        res = await m.exec_sync(
            "lc1", ["sh", "-c", "echo $FOO; pwd"], timeout=10, env=["FOO=bar"], cwd="/tmp"
        )
        assert res.stdout == b"bar\n/tmp\n"

        slow = await m.exec_sync("lc1", ["sleep", "100"], timeout=0.5)
        assert slow.timed_out and slow.exit_code == 137

        with pytest.raises(FailedPrecondition, match="nosuch"):
            await m.exec_sync("lc1", ["nosuch"], timeout=10)

        stats = await asyncio.to_thread(m.stats, "lc1")
        assert stats.pids >= 1 and stats.memory_usage > 0 and stats.cpu_usage_ns > 0

        # pid 1 ignores SIGTERM, so stop must escalate to SIGKILL.
        exit = await m.stop("lc1", timeout=0.5)
        assert exit.exit_code == 137 and not exit.oom_killed
        assert await m.state("lc1") is TaskState.STOPPED
        assert (await m.wait("lc1", 0)).exit_code == 137

        cg = env.mounts.controller_dir("memory", f"{env.cgroup_parent}/lc1")
        await m.delete("lc1")
        await m.delete("lc1")  # idempotent
        assert conmon_gone(info.conmon_pid)
        assert cg is not None and not cg.exists()
        assert not (env.base / "st" / "tasks" / "lc1").exists()
        assert not (env.base / "st" / "exits" / "lc1").exists()


async def test_create_failure_carries_runtime_message(env: Env) -> None:
    async with env.manager() as m:
        with pytest.raises(FailedPrecondition, match='exec: "nosuchbinary": executable file'):
            await m.create(env.spec("bad1", ["nosuchbinary"]))
        assert not (env.base / "st" / "tasks" / "bad1").exists()
        # The id is free again.
        info = await m.create(env.spec("bad1", ["sleep", "100"]))
        await m.delete("bad1", force=True)
        assert conmon_gone(info.conmon_pid)


async def test_exit_facts_are_published(env: Env) -> None:
    async with env.manager() as m:
        seen: list[ExitFact] = []
        unsubscribe = m.on_exit(seen.append)
        iterator = m.exits()
        first = asyncio.ensure_future(anext(iterator))
        await m.create(env.spec("ex1", ["sh", "-c", "exit 7"]))
        await m.start("ex1")
        exit = await m.wait("ex1", 10)
        assert exit.exit_code == 7
        assert (await asyncio.wait_for(first, 10)).exit_code == 7
        assert [e.exit_code for e in seen] == [7]
        unsubscribe()
        await iterator.aclose()
        with pytest.raises(FailedPrecondition):
            await m.kill("ex1", signal.SIGTERM)
        await m.delete("ex1")


async def test_crun_handler(env: Env) -> None:
    if "crun" not in env.handlers:
        pytest.skip("crun is not installed")
    async with env.manager() as m:
        with pytest.raises(FailedPrecondition, match="nosuchbinary"):
            await m.create(env.spec("cr0", ["nosuchbinary"], runtime="crun"))
            await m.start("cr0")
        await m.delete("cr0", force=True)
        spec = env.spec("cr1", ["sh", "-c", "echo from-crun; sleep 1000"], runtime="crun")
        info = await m.create(spec)
        await m.start("cr1")
        await await_file(spec.log_path, lambda d: b"from-crun" in d)
        res = await m.exec_sync("cr1", ["sh", "-c", "echo a; echo b >&2; exit 4"], timeout=10)
        assert (res.exit_code, res.stdout, res.stderr) == (4, b"a\n", b"b\n")
        exit = await m.stop("cr1", timeout=0.2)
        assert exit.exit_code == 137
        await m.delete("cr1")
        assert conmon_gone(info.conmon_pid)


async def test_reopen_log_after_rotation(env: Env) -> None:
    spec = env.spec("rl1", ["sh", "-c", "echo before; sleep 1000"])
    async with env.manager() as m:
        await m.create(spec)
        await m.start("rl1")
        await await_file(spec.log_path, lambda d: b"before" in d)
        rotated = spec.log_path.with_name("rl1.1")
        spec.log_path.rename(rotated)
        await m.reopen_log("rl1")
        assert spec.log_path.exists()
        # Write through the container's stdout: it must land in the new file only.
        await m.exec_sync("rl1", ["sh", "-c", "echo after > /proc/1/fd/1"], timeout=10)
        await await_file(spec.log_path, lambda d: b"after" in d)
        assert b"after" not in rotated.read_bytes()
        await m.delete("rl1", force=True)


async def test_update_memory_limit(env: Env) -> None:
    async with env.manager() as m:
        await m.create(env.spec("up1", ["sleep", "1000"]))
        await m.start("up1")
        limit = 48 * 1024 * 1024
        await m.update("up1", {"memory": {"limit": limit}})
        d = env.mounts.controller_dir("memory", f"{env.cgroup_parent}/up1")
        assert d is not None
        name = (
            "memory.max"
            if env.mounts.mode is cgroups.CgroupMode.UNIFIED
            else "memory.limit_in_bytes"
        )
        assert int((d / name).read_text()) == limit
        await m.delete("up1", force=True)


CHILD = """
import asyncio, json, sys
from pathlib import Path
from runtime.tasks import RuntimeHandler, TaskManager, TaskSpec
cfg = json.loads(sys.argv[1])
async def main():
    h = {"runc": RuntimeHandler("runc", Path(cfg["runc"]), Path(cfg["root"]))}
    async with TaskManager(Path(cfg["state"]), h, Path(cfg["conmon"])) as m:
        spec = TaskSpec(cfg["id"], Path(cfg["bundle"]), "runc", Path(cfg["log"]))
        info = await m.create(spec)
        await m.start(cfg["id"])
        print(json.dumps({"pid": info.pid, "conmon": info.conmon_pid}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


async def test_task_survives_manager_death_and_is_recovered(env: Env) -> None:
    spec = env.spec("sv1", ["sh", "-c", "trap 'exit 5' USR1; while true; do sleep 1; done"])
    cfg = {
        "runc": RUNC,
        "root": str(env.handlers["runc"].root),
        "state": str(env.base / "st"),
        "conmon": CONMON,
        "id": spec.id,
        "bundle": str(spec.bundle),
        "log": str(spec.log_path),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        json.dumps(cfg),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        started = json.loads(line)
    finally:
        child.kill()  # SIGKILL: the manager gets no chance to clean up
        await child.wait()
    assert not conmon_gone(started["conmon"])
    assert not conmon_gone(started["pid"])

    async with env.manager() as m:
        recovered = await m.recover()
        assert [(r.info.id, r.conmon_alive, r.exit) for r in recovered] == [("sv1", True, None)]
        assert recovered[0].info.pid == started["pid"]
        await m.kill("sv1", signal.SIGUSR1)
        exit = await m.wait("sv1", 10)
        assert exit.exit_code == 5
        await m.delete("sv1")
        assert conmon_gone(started["conmon"])


async def test_recover_finds_exits_and_removes_half_made(env: Env) -> None:
    async with env.manager() as m:
        await m.create(env.spec("rc1", ["sh", "-c", "exit 9"]))
        await m.start("rc1")
        await m.wait("rc1", 10)
    # A create interrupted before conmon reported leaves a record with pid 0.
    half = env.base / "st" / "tasks" / f"h{uuid.uuid4().hex[:6]}"
    half.mkdir()
    (half / "state.json").write_text(
        json.dumps(
            {
                "id": half.name,
                "runtime": "runc",
                "bundle": "/nonexistent",
                "log_path": "/nonexistent/log",
                "cgroups_path": None,
                "pid": 0,
                "conmon_pid": 0,
                "conmon_start_time": 0,
                "created_at": 0,
            }
        )
    )
    async with env.manager() as m:
        recovered = await m.recover()
        assert [(r.info.id, r.exit and r.exit.exit_code) for r in recovered] == [("rc1", 9)]
        assert not half.exists()
        assert (await m.wait("rc1", 0)).exit_code == 9
        await m.delete("rc1")
        assert await m.recover() == []


# -- runc's start and delete done by the manager itself (runtime/tasks/runc_state.py) -------
def _runc_has(env: Env, id: str) -> bool:
    h = env.handlers["runc"]
    res = subprocess.run(
        [str(h.binary), "--root", str(h.root), "state", id], capture_output=True, text=True
    )
    return res.returncode == 0


async def test_start_and_delete_without_runc_leave_what_runc_leaves(env: Env) -> None:
    spec = env.spec("rs1", ["true"])
    async with env.manager() as m:
        await m.create(spec)
        state_dir = env.handlers["runc"].root / "rs1"
        assert (state_dir / "exec.fifo").exists()
        await m.start("rs1")  # the init runs `true` and may be gone at once: still started
        assert not (state_dir / "exec.fifo").exists()
        assert (await m.wait("rs1", 10)).exit_code == 0
        dirs = [d for d in env.mounts.hierarchy_dirs(f"{env.cgroup_parent}/rs1") if d.exists()]
        assert dirs, "runc made the container's cgroups"
        await m.delete("rs1")
        assert [d for d in dirs if d.exists()] == []
        assert not state_dir.exists()
        assert not _runc_has(env, "rs1")


async def test_start_of_a_dead_init_fails(env: Env) -> None:
    spec = env.spec("rs2", ["sleep", "1000"])
    async with env.manager() as m:
        info = await m.create(spec)
        os.kill(info.pid, signal.SIGKILL)
        await m.wait("rs2", 10)
        with pytest.raises(FailedPrecondition):
            await m.start("rs2")
        await m.delete("rs2")
        assert not _runc_has(env, "rs2")


async def test_delete_with_a_poststop_hook_runs_it(env: Env) -> None:
    marker = env.base / "poststop-ran"
    config = minispec.spec(["sleep", "1000"], cgroups_path=f"{env.cgroup_parent}/rs3")
    config["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]}
    bundle = minispec.write_bundle(env.base / "b" / "rs3", env.rootfs, config)
    env.made.append(("runc", "rs3"))
    spec = TaskSpec(id="rs3", bundle=bundle, runtime="runc", log_path=env.base / "l" / "rs3")
    async with env.manager() as m:
        await m.create(spec)
        await m.start("rs3")
        await m.stop("rs3", timeout=0)
        await m.delete("rs3")  # runc's own delete: the hook is its to run
        assert marker.exists()
        assert not _runc_has(env, "rs3")


async def test_delete_without_an_own_pid_namespace_kills_what_is_left(env: Env) -> None:
    # The init's background child outlives it in the host PID namespace; only runc's delete
    # (which kills every process of the cgroup) ends it, so the manager must not skip it.
    config = minispec.spec(
        ["sh", "-c", "sleep 1000 & exec sleep 1001"], cgroups_path=f"{env.cgroup_parent}/rs4"
    )
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"
    ]
    bundle = minispec.write_bundle(env.base / "b" / "rs4", env.rootfs, config)
    env.made.append(("runc", "rs4"))
    spec = TaskSpec(id="rs4", bundle=bundle, runtime="runc", log_path=env.base / "l" / "rs4")
    cg = env.mounts.controller_dir("pids", f"{env.cgroup_parent}/rs4")
    assert cg is not None
    try:
        async with env.manager() as m:
            await m.create(spec)
            await m.start("rs4")
            for _ in range(100):
                if len((cg / "cgroup.procs").read_text().split()) >= 2:
                    break
                await asyncio.sleep(0.05)
            await m.stop("rs4", timeout=0)
            await m.delete("rs4")
            assert not cg.exists()
    finally:  # a delete that failed to kill the child leaves it for us to end, by pid
        with contextlib.suppress(FileNotFoundError):
            for pid in (cg / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
