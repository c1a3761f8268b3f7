"""Task lifecycle latency: create, start, stop (SIGKILL) and delete of a busybox ``sleep``
container through TaskManager (runc + conmon), and exec_sync latency; plus, for comparison,
an exec through ``conmon --exec`` (CRI-O's way) instead of ``runc exec`` with pipes.

Run as root: ``.venv/bin/python benchmarks/bench_tasks.py [iterations]``. Prints a table of
p50/p90 in milliseconds. Leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "integration")]

import minispec  # noqa: E402
import rootfs  # noqa: E402

from runtime import cgroups  # noqa: E402
from runtime.tasks import RuntimeHandler, TaskManager, TaskSpec  # noqa: E402
from runtime.tasks.conmon import parse_sync_message  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def conmon_exec(conmon: str, runc: RuntimeHandler, task_id: str, work: Path, n: int) -> float:
    """One exec via ``conmon --exec``; returns elapsed ms (exit code read from the sync
    pipe; output would be in the CRI log file conmon writes)."""
    spec = {"args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    spec_path = work / f"exec{n}.json"
    spec_path.write_text(json.dumps(spec))
    r, w = os.pipe2(os.O_CLOEXEC)
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        conmon, "--api-version", "1", "-c", task_id, "-u", f"e{n}", "-r", str(runc.binary),
        "--runtime-arg", "--root", "--runtime-arg", str(runc.root), "-e",
        "--exec-process-spec", str(spec_path), "-l", f"k8s-file:{work}/exec{n}.log",
        "-p", str(work / f"exec{n}.pid"), "--sync", "--socket-dir-path", str(work),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, pass_fds=(w,),
        env={**os.environ, "_OCI_SYNCPIPE": str(w)},
    )  # fmt: skip
    os.close(w)
    await proc.wait()
    data = await asyncio.to_thread(os.read, r, 4096)
    elapsed = (time.perf_counter() - t0) * 1000
    os.close(r)
    lines = [line for line in data.split(b"\n") if line]
    assert parse_sync_message(lines[-1]).data == 0, data
    return elapsed


async def main(iterations: int) -> None:
    runc, conmon = shutil.which("runc"), shutil.which("conmon")
    if os.geteuid() != 0 or not runc or not conmon:
        sys.exit("needs root, runc and conmon")
    base = Path(tempfile.mkdtemp(prefix="pb-", dir="/run"))
    mounts = cgroups.detect()
    parent = f"/pinnace-bench-{base.name}"
    try:
        root = rootfs.build_busybox_rootfs(base / "rootfs")
        handler = RuntimeHandler("runc", Path(runc), base / "runc")
        phases: dict[str, list[float]] = {k: [] for k in ("create", "start", "stop", "delete")}
        whole: list[float] = []
        async with TaskManager(base / "st", {"runc": handler}, Path(conmon)) as m:

            def spec(id: str) -> TaskSpec:
                cfg = minispec.spec(["sleep", "1000"], cgroups_path=f"{parent}/{id}")
                bundle = minispec.write_bundle(base / "b" / id, root, cfg)
                return TaskSpec(id, bundle, "runc", base / "l" / id)

            for i in range(iterations):
                s = spec(f"c{i}")
                t0 = time.perf_counter()
                await m.create(s)
                t1 = time.perf_counter()
                await m.start(s.id)
                t2 = time.perf_counter()
                await m.stop(s.id, timeout=0)
                t3 = time.perf_counter()
                await m.delete(s.id)
                t4 = time.perf_counter()
                for k, (a, b) in zip(phases, [(t0, t1), (t1, t2), (t2, t3), (t3, t4)], strict=True):
                    phases[k].append((b - a) * 1000)
                whole.append((t4 - t0) * 1000)

            s = spec("ex")
            await m.create(s)
            await m.start(s.id)
            execs, conmon_execs = [], []
            for i in range(iterations):
                t0 = time.perf_counter()
                res = await m.exec_sync(s.id, ["true"], timeout=10)
                execs.append((time.perf_counter() - t0) * 1000)
                assert res.exit_code == 0
                conmon_execs.append(await conmon_exec(conmon, handler, s.id, base, i))
            await m.delete(s.id, force=True)

        print(f"task lifecycle, busybox sleep, runc + conmon, {iterations} iterations (ms)")
        print(f"{'phase':<28}{'p50':>8}{'p90':>8}")
        rows = [*phases.items(), ("create+start+stop+delete", whole)]
        rows += [("exec_sync (runc exec)", execs), ("exec via conmon --exec", conmon_execs)]
        for name, values in rows:
            print(f"{name:<28}{pct(values, 50):>8.1f}{pct(values, 90):>8.1f}")
        print(f"{'mean lifecycle':<28}{statistics.mean(whole):>8.1f}")
    finally:
        cgroups.remove(mounts, parent)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
