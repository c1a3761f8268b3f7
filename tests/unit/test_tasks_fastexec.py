"""The exec helper's plan from runc's state and the bundle's spec, and its command line."""

from __future__ import annotations

import copy
import resource
from pathlib import Path
from typing import Any

import pytest

from runtime.tasks.exec_helper import helper_name, kernel_supported
from runtime.tasks.fastexec import ExecPlan, helper_argv, plan_exec, raises_nofile, runc_refusal

CG = "/sys/fs/cgroup"
STATE: dict[str, Any] = {
    "init_process_pid": 4242,
    "init_process_start": 99887,
    "config": {
        "namespaces": [
            {"type": "NEWNS", "path": ""},
            {"type": "NEWPID", "path": ""},
            {"type": "NEWIPC", "path": "/run/pods/p1/ns/ipc"},
            {"type": "NEWNET", "path": "/run/pods/p1/ns/net"},
            {"type": "NEWUTS", "path": "/run/pods/p1/ns/uts"},
        ],
        "seccomp": None,
        "no_new_keyring": False,
        "capabilities": {"Bounding": ["CAP_KILL"], "Effective": ["CAP_KILL"]},
    },
    "namespace_paths": {
        t: f"/proc/4242/ns/{n}"
        for t, n in (
            ("NEWNS", "mnt"),
            ("NEWPID", "pid"),
            ("NEWIPC", "ipc"),
            ("NEWNET", "net"),
            ("NEWUTS", "uts"),
            ("NEWUSER", "user"),
            ("NEWCGROUP", "cgroup"),
        )
    },
    "cgroup_paths": {
        "freezer": f"{CG}/freezer/pod/c1",
        "memory": f"{CG}/memory/pod/c1",
        "": f"{CG}/unified/pod/c1",
    },
}
SPEC: dict[str, Any] = {
    "process": {
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [5, 6]},
        "args": ["sleep", "1"],
        "env": ["PATH=/bin", "A=1"],
        "cwd": "/work",
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NOT_KNOWN"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        },
        "noNewPrivileges": True,
        "rlimits": [{"type": "RLIMIT_NPROC", "hard": 100, "soft": 50}],
    }
}


def plan(state: dict[str, Any] | None = None, spec: dict[str, Any] | None = None) -> ExecPlan:
    got = plan_exec("c1", state or STATE, spec or SPEC)
    assert isinstance(got, ExecPlan), got
    return got


def test_plan_from_state_and_spec() -> None:
    p = plan()
    assert (p.init_pid, p.init_start) == (4242, "99887")
    # runc's join order: ipc, uts, net, pid, mnt (user and cgroup are not in this config)
    assert p.namespaces == (
        ("ipc", "/proc/4242/ns/ipc"),
        ("uts", "/proc/4242/ns/uts"),
        ("net", "/proc/4242/ns/net"),
        ("pid", "/proc/4242/ns/pid"),
        ("mnt", "/proc/4242/ns/mnt"),
    )
    assert sorted(p.cgroups) == sorted(STATE["cgroup_paths"].values())
    assert p.frozen == (f"{CG}/freezer/pod/c1/freezer.state", "FROZEN")
    assert p.keyring == "_ses.c1"
    assert (p.uid, p.gid, p.additional_gids) == (1000, 1001, (5, 6))
    kill, chown, nbs = 1 << 5, 1 << 0, 1 << 10
    assert p.caps == (kill | chown, kill, kill, 0, nbs)  # an unknown name is ignored
    assert p.no_new_privileges
    assert p.rlimits == ((resource.RLIMIT_NPROC, 50, 100),)
    assert (p.env, p.cwd) == (("PATH=/bin", "A=1"), "/work")
    assert p.oom_score_adj is None


def test_plan_details() -> None:
    state = copy.deepcopy(STATE)
    state["cgroup_paths"] = {"": f"{CG}/pod/c1"}
    state["config"]["no_new_keyring"] = True
    state["config"]["oom_score_adj"] = 500
    spec = copy.deepcopy(SPEC)
    del spec["process"]["capabilities"]  # runc then takes the container's
    spec["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 2**64 - 1, "soft": 1024},
    ]
    p = plan_exec("c1", state, spec, nofile_soft_to_hard=True)
    assert isinstance(p, ExecPlan)
    assert p.frozen == (f"{CG}/pod/c1/cgroup.freeze", "1")  # cgroup v2
    assert p.keyring is None
    assert p.oom_score_adj == 500
    assert p.caps == (1 << 5, 1 << 5, 0, 0, 0)
    assert p.rlimits == ((resource.RLIMIT_NOFILE, 1024, -1),)
    assert not p.nofile_soft_to_hard  # the spec's own NOFILE limit stands
    spec["process"]["rlimits"] = []
    state["config"]["rlimits"] = [{"type": resource.RLIMIT_CORE, "hard": 0, "soft": 0}]
    p = plan_exec("c1", state, spec, nofile_soft_to_hard=True)
    assert isinstance(p, ExecPlan)
    assert p.rlimits == ((resource.RLIMIT_CORE, 0, 0),) and p.nofile_soft_to_hard


def _with(path: str, value: Any, *, spec: bool = False) -> str | ExecPlan:
    state, sp = copy.deepcopy(STATE), copy.deepcopy(SPEC)
    target: dict[str, Any] = sp if spec else state
    *parents, leaf = path.split(".")
    for key in parents:
        target = target[key]
    target[leaf] = value
    return plan_exec("c1", state, sp)


@pytest.mark.parametrize(
    ("path", "value", "in_spec", "reason"),
    [
        ("config.seccomp", {"default_action": 2}, False, "seccomp"),
        ("config.apparmor_profile", "p", False, "AppArmor"),
        ("process.apparmorProfile", "p", True, "AppArmor"),
        ("process.selinuxLabel", "l", True, "SELinux"),
        ("config.intel_rdt", {"l3": "x"}, False, "Intel RDT"),
        ("intel_rdt_path", "/sys/fs/resctrl/c1", False, "Intel RDT"),
        ("config.namespaces", [{"type": "NEWUSER", "path": ""}], False, "user namespace"),
        ("config.uid_mappings", [{"container_id": 0}], False, "user namespace"),
        ("config.namespaces", [{"type": "NEWTIME", "path": ""}], False, "namespace types"),
        ("namespace_paths", {}, False, "no path"),
        ("cgroup_paths", {}, False, "no cgroup"),
        ("process.rlimits", [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}], True, "rlimit"),
        ("process.rlimits", [{"type": "RUSAGE_SELF", "hard": 1, "soft": 1}], True, "rlimit"),
        ("process.cwd", "relative", True, "cwd"),
        ("init_process_pid", None, False, "init"),
        ("config", None, False, "config"),
        # runc >= 1.2 keys the helper would not apply, and anything else it does not know
        ("config.rootless_cgroups", True, False, "rootless"),
        ("config.rootless_euid", True, False, "rootless"),
        ("config.umask", 0o77, False, "umask"),
        ("config.scheduler", {"policy": "SCHED_BATCH"}, False, "state config keys"),
        ("config.io_priority", {"class": 2}, False, "io_priority"),
        ("config.personality", {"domain": "LINUX32"}, False, "personality"),
        ("status_of_the_future", 1, False, "state keys"),
        ("process.ioPriority", {"class": "IOPRIO_CLASS_IDLE"}, True, "spec process keys"),
        ("process.scheduler", {"policy": "SCHED_IDLE"}, True, "scheduler"),
        ("process.execCPUAffinity", {"initial": "0"}, True, "execCPUAffinity"),
        ("process.user.umask", 18, True, "spec process user keys"),
    ],
)
def test_what_the_helper_refuses(path: str, value: Any, in_spec: bool, reason: str) -> None:
    got = _with(path, value, spec=in_spec)
    assert isinstance(got, str) and reason in got


def test_helper_argv() -> None:
    p = plan()
    cmd = helper_argv(
        Path("/x/pinnace-exec"), p, ["sh", "-c", "--"], pid_file=Path("/t/e.pid"),
        env=["B=2"], cwd="/tmp",
    )  # fmt: skip
    assert cmd[0] == "/x/pinnace-exec"
    assert cmd[cmd.index("--init") + 1] == "4242:99887"
    assert cmd[cmd.index("--ns") + 1] == "ipc:/proc/4242/ns/ipc"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--env"] == ["PATH=/bin", "A=1", "B=2"]
    assert cmd[cmd.index("--cwd") + 1] == "/tmp"
    assert cmd[cmd.index("--groups") + 1] == "5,6"
    assert cmd[cmd.index("--caps") + 1] == "21:20:20:0:400"
    assert cmd[cmd.index("--nnp") + 1] == "1"
    assert cmd[cmd.index("--rlimit") + 1] == f"{resource.RLIMIT_NPROC}:50:100"
    assert "--nofile-soft-to-hard" not in cmd
    # the command follows the first "--", even one that itself contains "--"
    assert cmd[cmd.index("--") + 1 :] == ["sh", "-c", "--"]
    assert helper_argv(Path("/h"), p, ["true"], pid_file=Path("/p"))[-1] == "true"


@pytest.mark.parametrize(
    ("text", "raises"),
    [
        ("runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev\ngo: go1.19.8\n", True),
        ("runc version 1.1.5\ngo: go1.18.10\n", False),
        ("runc version 1.1.13\ngo: go1.22.4\n", False),
        ("runc version 1.2.0\ngo: go1.22.4\n", False),
        ("", False),
    ],
)
def test_raises_nofile(text: str, raises: bool) -> None:
    assert raises_nofile(text) is raises


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev\ngo: go1.19.8\n", None),
        ("runc version 1.1.15\ngo: go1.22.4\n", None),
        ("runc version 1.2.0\ngo: go1.22.4\n", "runc 1.2.0"),
        ("runc version 1.0.3\n", "runc 1.0.3"),
        ("runc version 2.1.0\n", "runc 2.1.0"),
        ("crun version 1.1.5\n", "unknown"),
        ("", "unknown"),
    ],
)
def test_only_runc_1_1_gets_the_helper(text: str, refused: str | None) -> None:
    got = runc_refusal(text)
    assert got == refused if refused is None else (got is not None and refused in got)


def test_helper_name_follows_the_source() -> None:
    assert helper_name(b"a") == helper_name(b"a") != helper_name(b"b")
    assert helper_name(b"a").startswith("pinnace-exec-")


@pytest.mark.parametrize(
    ("release", "ok"),
    [
        ("6.1.0-18-amd64", True),
        ("5.11.0", True),
        ("5.10.0-28-amd64", False),
        ("4.19.0", False),
        ("garbage", False),
    ],
)
def test_the_helper_needs_close_range_cloexec(release: str, ok: bool) -> None:
    assert kernel_supported(release) is ok
