"""``pinnace-exec`` never shows the container a process that still holds the host.

The review's proof of concept, as a test: a stand-in container (``unshare --pid --mount`` with
a tmpfs over a directory, so the host and the container see different files there) and a FIFO
in place of ``cgroup.procs``, which holds the helper at its cgroup-join step (the window in
which stage 0 has the child's pid but has not let it go) for as long as the test likes. From
inside the container's pid and mount namespaces, as root (so with CAP_SYS_PTRACE), every
visible process's ``root`` must lead to the container's files, and its fds to nothing of the
host's.

Needs root, unshare/nsenter (util-linux) and a C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.tasks.exec_helper import build_helper, sealed_copy

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or not shutil.which("unshare")
    or not shutil.which("nsenter")
    or not (shutil.which("cc") or shutil.which("gcc")),
    reason="needs root, unshare, nsenter and a C compiler",
)

# Run inside the container: for each visible pid, what its root shows at the marker path and
# where its fds lead.
LOOK = r"""
for p in /proc/[0-9]*; do
  echo "pid ${p#/proc/} comm=$(cat $p/comm) root=$(cat $p/root$MARK 2>/dev/null || echo none)"
  for f in $p/fd/*; do echo "fd ${p#/proc/} $(readlink $f)"; done
done
"""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _wait_for(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def base() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pfx-pidns-", dir="/run"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_helper_child_never_visible_with_the_host_root(base: Path) -> None:
    helper = build_helper(base / "bin")
    assert helper is not None
    mark = base / "m"
    mark.mkdir()
    (mark / "which").write_text("host\n")
    (base / "cg").mkdir()
    fifo = base / "cg" / "cgroup.procs"
    os.mkfifo(fifo)
    # a host directory fd the daemon might hold: it must not reach the container
    leak = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    procs: list[subprocess.Popen[bytes]] = []
    container = subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"mount -t tmpfs none {mark} && echo container > {mark}/which && exec sleep 600",
        ]
    )
    procs.append(container)
    memfd = sealed_copy(helper)
    reader = -1
    init = 0
    try:
        _wait_for(lambda: _children(container.pid), "the stand-in container")
        init = _children(container.pid)[0]
        _wait_for(
            lambda: (
                Path(f"/proc/{init}/comm").read_text().strip() == "sleep"
                and (Path(f"/proc/{init}/root") / str(mark).lstrip("/") / "which").exists()
                and (Path(f"/proc/{init}/root") / str(mark).lstrip("/") / "which").read_text()
                == "container\n"
            ),
            "the container's tmpfs",
        )
        start = Path(f"/proc/{init}/stat").read_text().rsplit(")", 1)[1].split()[19]
        os.set_inheritable(leak, True)
        # the plan goes in a memfd (--args-fd), as the daemon passes it
        args_fd = os.memfd_create("args", os.MFD_CLOEXEC)
        os.write(
            args_fd,
            b"".join(a.encode() + b"\0" for a in [
                "--init",
                f"{init}:{start}",
                "--ns",
                f"pid:/proc/{init}/ns/pid",
                "--ns",
                f"mnt:/proc/{init}/ns/mnt",
                "--cgroup",
                str(base / "cg"),
                "--uid",
                "0",
                "--gid",
                "0",
                "--caps",
                "0:0:0:0:0",
                "--nnp",
                "0",
                "--cwd",
                "/",
                "--env",
                "PATH=/bin:/usr/bin",
                "--pid-file",
                str(base / "pidfile"),
                "--",
                "true",
            ]),
        )  # fmt: skip
        os.set_inheritable(args_fd, True)
        helper_proc = subprocess.Popen(
            [f"/proc/self/fd/{memfd}", "--args-fd", str(args_fd)],
            pass_fds=(memfd, leak, args_fd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(helper_proc)

        def held() -> bool:
            # stage 1 has gone and stage 0 has its child (stage 2): it is blocked opening the
            # FIFO, the child waits for "go"
            kids = _children(helper_proc.pid)
            return (
                len(kids) == 1
                and "NSpid:" in (s := Path(f"/proc/{kids[0]}/status").read_text())
                and len(next(ln for ln in s.splitlines() if ln.startswith("NSpid:")).split()) == 3
            )

        _wait_for(held, "the helper's child in the container's PID namespace")
        child = _children(helper_proc.pid)[0]
        os.close(args_fd)
        # nothing of the plan (host pids, paths) in what anyone in the container can read
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        assert b"--init" not in cmdline and str(base).encode() not in cmdline, cmdline
        child_in_ns = int(
            next(
                ln
                for ln in Path(f"/proc/{child}/status").read_text().splitlines()
                if ln.startswith("NSpid:")
            ).split()[2]
        )
        look = subprocess.run(
            ["nsenter", "-t", str(init), "-p", "-m", "sh", "-c", LOOK],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MARK": f"{mark}/which"},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        lines = look.stdout.splitlines()
        mine = [ln for ln in lines if ln.startswith(f"pid {child_in_ns} ")]
        assert mine == [f"pid {child_in_ns} comm=pinnace-exec root=container"], look.stdout
        assert not [ln for ln in lines if ln.startswith("pid ") and "root=host" in ln], look.stdout
        fds = [ln.split(" ", 2)[2] for ln in lines if ln.startswith(f"fd {child_in_ns} ")]
        assert fds, look.stdout
        host_fds = [
            f
            for f in fds
            if not (f.startswith(("pipe:", "mnt:", "pid:", "cgroup:")) or f == "/dev/null")
        ]
        assert host_fds == [], look.stdout

        # let it go: the cgroup "join" drains into the FIFO and the command runs
        reader = os.open(fifo, os.O_RDONLY)
        _out, err = helper_proc.communicate(timeout=30)
        assert helper_proc.returncode == 0, err
    finally:
        os.close(leak)
        os.close(memfd)
        if reader >= 0:
            os.close(reader)
        if init:
            # the stand-in container's init (started by us): its PID namespace goes with it
            try:
                os.kill(init, 9)
            except ProcessLookupError:
                pass
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
            p.wait()


def test_exit_code_254_only_for_failures_of_the_helper_s_own(base: Path) -> None:
    # 254: the daemon runs the exec again with runc exec, so the command must not have run;
    # 255: a failure runc reports alike (here: the container's init is gone)
    helper = build_helper(base / "bin")
    assert helper is not None
    memfd = sealed_copy(helper)
    init = subprocess.Popen(["sleep", "600"])
    try:
        start = Path(f"/proc/{init.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        marker = base / "ran"

        def run(init_arg: str, cgroup: Path) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [
                    f"/proc/self/fd/{memfd}", "--init", init_arg, "--cgroup", str(cgroup),
                    "--uid", "0", "--gid", "0", "--caps", "0:0:0:0:0", "--nnp", "0",
                    "--cwd", "/", "--env", "PATH=/bin:/usr/bin",
                    "--pid-file", str(base / "pidfile"), "--", "touch", str(marker),
                ],
                pass_fds=(memfd,), capture_output=True, timeout=30, check=False,
            )  # fmt: skip

        res = run(f"{init.pid}:{start}", base / "no-such-cgroup")
        assert res.returncode == 254, res
        assert b"error adding pid" in res.stderr and not marker.exists()
        assert not (base / "pidfile").exists()
        res = run(f"{init.pid}:1", base / "no-such-cgroup")
        assert res.returncode == 255 and b"stopped container" in res.stderr, res
    finally:
        os.close(memfd)
        init.kill()
        init.wait()


def _helper_args(memfd: int, init_arg: str, base: Path, *extra: str) -> list[str]:
    return [
        f"/proc/self/fd/{memfd}", "--init", init_arg, "--uid", "0", "--gid", "0",
        "--caps", "0:0:0:0:0", "--nnp", "0", "--cwd", "/", "--env", "PATH=/bin:/usr/bin",
        *extra,
    ]  # fmt: skip


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_a_freezing_container_is_paused_and_a_failed_pid_file_kills_the_command(
    base: Path,
) -> None:
    helper = build_helper(base / "bin")
    assert helper is not None
    memfd = sealed_copy(helper)
    init = subprocess.Popen(["sleep", "600"])
    try:
        state = base / "freezer.state"
        for content, code in (("FROZEN\n", 255), ("FREEZING\n", 255), ("THAWED\n", 0)):
            state.write_text(content)
            res = subprocess.run(
                _helper_args(memfd, f"{init.pid}:{_start_time(init.pid)}", base,
                             "--frozen", f"{state}:FROZEN", "--pid-file", str(base / "p"),
                             "--", "true"),
                pass_fds=(memfd,), capture_output=True, timeout=30, check=False,
            )  # fmt: skip
            assert res.returncode == code, (content, res)
            if code:
                assert b"paused" in res.stderr
        # the pid file cannot be written once the command runs: it is killed, not left behind
        token = f"{600 + os.getpid() % 1000 / 1000:.3f}"
        res = subprocess.run(
            _helper_args(memfd, f"{init.pid}:{_start_time(init.pid)}", base,
                         "--pid-file", str(base / "no-such-dir" / "p"), "--", "sleep", token),
            pass_fds=(memfd,), capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        assert res.returncode == 255 and b"pid file" in res.stderr, res
        left = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if (d / "cmdline").read_bytes() == f"sleep\0{token}\0".encode():
                        left.append(d.name)
                except OSError:
                    pass
        assert left == []
    finally:
        os.close(memfd)
        init.kill()
        init.wait()


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_helper_killed_before_its_pid_file_leaves_no_command(
    base: Path, signal_name: str
) -> None:
    # the child is held after "go" (reading the container's /etc/group, a FIFO here) when
    # the daemon's timeout kills the helper: SIGTERM takes the child along; after SIGKILL the
    # child finds no stage 0 at its last handshake and does not exec
    helper = build_helper(base / "bin")
    assert helper is not None
    group = base / "group"
    os.mkfifo(group)
    marker = base / "ran"
    container = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
         "sh", "-c", f"mount --bind {group} /etc/group && exec sleep 600"],
    )  # fmt: skip
    memfd = sealed_copy(helper)
    procs: list[subprocess.Popen[bytes]] = [container]
    init = 0
    writer = -1
    try:
        _wait_for(lambda: _children(container.pid), "the stand-in container")
        init = _children(container.pid)[0]
        _wait_for(
            lambda: Path(f"/proc/{init}/comm").read_text().strip() == "sleep",
            "the container's /etc/group",
        )
        helper_proc = subprocess.Popen(
            _helper_args(memfd, f"{init}:{_start_time(init)}", base,
                         "--ns", f"pid:/proc/{init}/ns/pid", "--ns", f"mnt:/proc/{init}/ns/mnt",
                         "--groups", "5", "--pid-file", str(base / "pidfile"),
                         "--", "touch", str(marker)),
            pass_fds=(memfd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(helper_proc)

        def reader_waits() -> bool:
            nonlocal writer
            try:
                writer = os.open(group, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return False
            return True

        _wait_for(reader_waits, "the child reading /etc/group")
        child = _children(helper_proc.pid)[0]
        helper_proc.send_signal(getattr(__import__("signal"), signal_name))
        helper_proc.wait(timeout=30)  # (its child may hold the output pipes)
        assert not (base / "pidfile").exists()
        if signal_name == "SIGTERM":
            _wait_for(lambda: _gone(child), "the child killed with its helper")
        os.close(writer)  # /etc/group ends: the child goes on if it is alive
        writer = -1
        _wait_for(lambda: _gone(child), "the child's end")
        assert not marker.exists()
    finally:
        if writer >= 0:
            os.close(writer)
        os.close(memfd)
        if init:
            try:
                os.kill(init, 9)
            except ProcessLookupError:
                pass
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
            p.wait()
