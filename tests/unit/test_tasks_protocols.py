"""Pure pieces of the task manager: conmon's argv and sync messages, the CRI log format,
inotify event parsing, /proc stat parsing, runtime messages and state records."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from runtime.errors import Internal, InvalidArgument
from runtime.tasks import RuntimeHandler, TaskSpec, crilog
from runtime.tasks.conmon import ConmonPaths, build_argv, parse_sync_message
from runtime.tasks.execsync import exec_argv
from runtime.tasks.inotify import IN_MOVED_TO, parse_events
from runtime.tasks.procfs import parse_start_time
from runtime.tasks.runtime_cli import is_not_found, runtime_message
from runtime.tasks.statefile import TaskRecord

RUNC = RuntimeHandler("runc", Path("/usr/sbin/runc"), Path("/run/p/runc"))
PATHS = ConmonPaths(
    task_dir=Path("/run/p/tasks/c1"),
    conmon_pidfile=Path("/run/p/tasks/c1/conmon.pid"),
    container_pidfile=Path("/run/p/tasks/c1/pid"),
    exit_dir=Path("/run/p/exits"),
    socket_dir=Path("/run/p/sockets"),
)


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_conmon_argv() -> None:
    spec = TaskSpec("c1", Path("/b/c1"), "runc", Path("/logs/c1.log"), log_size_max=4096)
    argv = build_argv(Path("/usr/bin/conmon"), RUNC, spec, PATHS)
    assert argv[0] == "/usr/bin/conmon"
    assert _opt(argv, "--api-version") == "1"
    assert _opt(argv, "-r") == "/usr/sbin/runc"
    assert _opt(argv, "-b") == "/b/c1"
    assert _opt(argv, "-l") == "k8s-file:/logs/c1.log"
    assert _opt(argv, "--exit-dir") == "/run/p/exits"
    assert _opt(argv, "--log-size-max") == "4096"
    runtime_args = [argv[i + 1] for i, a in enumerate(argv) if a == "--runtime-arg"]
    assert runtime_args == ["--root", "/run/p/runc"]
    assert "-i" not in argv and "-t" not in argv


def test_conmon_argv_stdin_and_tty() -> None:
    spec = TaskSpec("c1", Path("/b"), "runc", Path("/l"), stdin=True, stdin_once=False, tty=True)
    argv = build_argv(Path("/c"), RUNC, spec, PATHS)
    assert {"-i", "-t", "--leave-stdin-open"} <= set(argv)
    once = TaskSpec("c1", Path("/b"), "runc", Path("/l"), stdin=True, stdin_once=True)
    assert "--leave-stdin-open" not in build_argv(Path("/c"), RUNC, once, PATHS)


def test_task_spec_validation() -> None:
    for bad_id in ("", "a/b", "..", "x" * 65):
        with pytest.raises(InvalidArgument):
            TaskSpec(bad_id, Path("/b"), "runc", Path("/l"))
    with pytest.raises(InvalidArgument):
        TaskSpec("c", Path("rel"), "runc", Path("/l"))
    with pytest.raises(InvalidArgument):
        TaskSpec("c", Path("/b"), "runc", Path("/l:x"))


def test_sync_messages() -> None:
    assert parse_sync_message(b'{"data": 4242}').data == 4242
    failed = parse_sync_message(b'{"data": -1, "message": "exec: \\"x\\": not found"}')
    assert (failed.data, failed.message) == (-1, 'exec: "x": not found')
    assert parse_sync_message(b'{"pid": 7}').data == 7
    with pytest.raises(Internal):
        parse_sync_message(b"garbage")
    with pytest.raises(Internal):
        parse_sync_message(b'{"other": 1}')


def test_runtime_message_unwraps_logrus() -> None:
    stderr = (
        b'time="2026-01-01T00:00:00Z" level=error msg="runc create failed: exec: '
        b'\\"nosuchbinary\\": executable file not found in $PATH"\n'
    )
    assert runtime_message(stderr) == (
        'runc create failed: exec: "nosuchbinary": executable file not found in $PATH'
    )
    assert runtime_message(b"  container not running\n") == "container not running"
    assert is_not_found("container does not exist")
    assert not is_not_found("container not running")


def test_exec_argv() -> None:
    argv = exec_argv(
        RUNC,
        "c1",
        ["sh", "-c", "true"],
        pid_file=Path("/p"),
        env=["A=1"],
        cwd="/tmp",
        user="1000:1000",
        tty=False,
    )
    assert argv[:4] == ["/usr/sbin/runc", "--root", "/run/p/runc", "exec"]
    assert argv[-4:] == ["c1", "sh", "-c", "true"]
    assert _opt(argv, "--env") == "A=1" and _opt(argv, "--user") == "1000:1000"
    assert "--tty" not in argv


def test_cri_log_parsing() -> None:
    data = (
        b"2026-01-01T00:00:00.000000001+00:00 stdout P hel\n"
        b"2026-01-01T00:00:00.000000002+00:00 stdout F lo\n"
        b"2026-01-01T00:00:00.000000003+00:00 stderr F oops with spaces\n"
        b"2026-01-01T00:00:00.000000004+00:00 stdout F \n"
        b"2026-01-01T00:00:00.000000005+00:00 stdout F torn"
    )
    records = crilog.parse(data)
    assert len(records) == 4
    assert records[0].partial and not records[1].partial
    assert crilog.stream_text(records, "stdout") == b"hello\n\n"
    assert crilog.stream_text(records, "stderr") == b"oops with spaces\n"
    with pytest.raises(InvalidArgument):
        crilog.parse_line(b"2026 stdin F x")


def test_inotify_event_parsing() -> None:
    name = b"c1\0\0\0\0\0\0"
    buf = struct.pack("iIII", 1, IN_MOVED_TO, 5, len(name)) + name
    buf += struct.pack("iIII", 1, 0x8, 0, 0)
    events = parse_events(buf)
    assert [(e.wd, e.mask, e.cookie, e.name) for e in events] == [
        (1, IN_MOVED_TO, 5, "c1"),
        (1, 0x8, 0, ""),
    ]


def test_proc_stat_start_time() -> None:
    fields = " ".join(str(n) for n in range(3, 53))  # fields 3..52 hold their own numbers
    line = f"1234 (we) ird (name)) S {fields[2:]}\n"
    assert parse_start_time(line) == 22


def test_task_record_round_trip() -> None:
    rec = TaskRecord("c1", "runc", "/b", "/l", "/pinnace/p/c1", 10, 9, 12345, 1)
    assert TaskRecord.from_json(rec.to_json()) == rec
    with pytest.raises(InvalidArgument):
        TaskRecord.from_json(b'{"id": "x"}')


def test_task_manager_implements_the_service_protocol() -> None:
    from runtime.tasks import TaskManager, TaskService

    # Constructing does no I/O; the annotation makes mypy check the protocol.
    svc: TaskService = TaskManager(Path("/nonexistent"), {"runc": RUNC}, Path("/usr/bin/conmon"))
    assert callable(svc.exec_sync)
