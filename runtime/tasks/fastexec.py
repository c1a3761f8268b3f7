"""ExecSync without ``runc exec``: the plan for ``pinnace-exec`` (``exec_helper.c``).

``runc exec`` costs ~25 ms of CPU per call on the test machines, almost all of it two Go
runtimes starting (runc and ``runc init``), reading /proc/self/mountinfo and re-executing
itself; the ~1 ms that is left does the actual work: join the container's namespaces and
cgroups, set its user, capabilities and environment, exec. ``pinnace-exec`` does only that
work, in runc 1.1's order, from a plan computed here once per task:

- from runc's ``state.json`` (its record of the running container, under the handler's
  root): the init pid and start time, the namespaces to join and their paths, the cgroup
  directories, the freezer, ``oom_score_adj``, whether a session keyring is made;
- from the bundle's ``config.json`` ``process`` (what ``runc exec`` without ``--process``
  uses, with the command's argv): user, additional gids, capabilities, rlimits,
  ``noNewPrivileges``, env, cwd.

Only runc 1.1.x containers whose exec needs nothing more take this path (runc >= 1.2
applies more to an exec'd process: umask, scheduler, personality, I/O priority, CPU
affinity). A plan is refused (the reason is returned, and ``runc exec`` runs as before) for:
a runc that is not 1.1.x (``runc_refusal``), seccomp (runc compiles the profile with
libseccomp in ``runc init``), AppArmor or SELinux labels, a user namespace, rootless
(``rootless_euid`` / ``rootless_cgroups``), Intel RDT, a umask, a terminal, a ``--user``
override, an rlimit name this module does not know, and any key of the state file, of its
``config`` or of the spec's ``process`` outside what runc 1.1 writes and this module
understands (``_STATE_KEYS``, ``_CONFIG_KEYS``, ``_PROCESS_KEYS``). Capability names runc
does not know are ignored, as runc 1.1 does (with a warning).
"""

from __future__ import annotations

import json
import re
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.oci.caps import CAPABILITY_NAMES

# runc's namespace join order (libcontainer/configs NamespaceTypes) and setns names.
_NS_ORDER = (
    ("NEWUSER", "user"),
    ("NEWIPC", "ipc"),
    ("NEWUTS", "uts"),
    ("NEWNET", "net"),
    ("NEWPID", "pid"),
    ("NEWNS", "mnt"),
    ("NEWCGROUP", "cgroup"),
)
_KNOWN_NS = {t for t, _ in _NS_ORDER}
# pinnace-exec's exit code for a failure of its own before the command ran (exec_helper.c
# RETRY): the exec is run again with runc exec.
HELPER_RETRY_CODE = 254

# What runc 1.1 writes in state.json (libcontainer State / BaseState) and its config
# (libcontainer/configs Config); a key outside these is something newer the helper would not
# apply.
_STATE_KEYS = frozenset(
    {
        "id", "init_process_pid", "init_process_start", "created", "config", "rootless",
        "cgroup_paths", "namespace_paths", "external_descriptors", "intel_rdt_path",
    }
)  # fmt: skip
_CONFIG_KEYS = frozenset(
    {
        "no_pivot_root", "parent_death_signal", "rootfs", "umask", "readonlyfs",
        "rootPropagation", "mounts", "devices", "mount_label", "hostname", "namespaces",
        "capabilities", "networks", "routes", "cgroups", "apparmor_profile", "process_label",
        "rlimits", "oom_score_adj", "uid_mappings", "gid_mappings", "mask_paths",
        "readonly_paths", "sysctl", "seccomp", "no_new_privileges", "Hooks", "version",
        "labels", "no_new_keyring", "intel_rdt", "rootless_euid", "rootless_cgroups",
    }
)  # fmt: skip
# The spec's process keys whose meaning for an exec the plan reproduces or refuses.
_PROCESS_KEYS = frozenset(
    {
        "terminal", "consoleSize", "user", "args", "env", "cwd", "capabilities", "rlimits",
        "noNewPrivileges", "apparmorProfile", "oomScoreAdj", "selinuxLabel",
    }
)  # fmt: skip
_USER_KEYS = frozenset({"uid", "gid", "additionalGids", "username"})
_CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
_CAP_BIT = {name: bit for bit, name in enumerate(CAPABILITY_NAMES)}


@dataclass(frozen=True, slots=True)
class ExecPlan:
    """What ``pinnace-exec`` needs to run a command in one task as ``runc exec`` would."""

    task_id: str
    init_pid: int
    init_start: str
    namespaces: tuple[tuple[str, str], ...]  # (setns name, path) in join order
    cgroups: tuple[str, ...]  # cgroup directories, every hierarchy
    frozen: tuple[str, str] | None  # (file, content meaning "paused")
    oom_score_adj: int | None
    keyring: str | None  # session keyring name to join, None with no_new_keyring
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    caps: tuple[int, int, int, int, int]  # bit masks, in _CAP_SETS order
    no_new_privileges: bool
    rlimits: tuple[tuple[int, int, int], ...]  # (resource, soft, hard); -1 is unlimited
    env: tuple[str, ...]
    cwd: str
    # runc before 1.1.13 built with Go >= 1.19: Go's start-up in ``runc init`` raises the
    # RLIMIT_NOFILE soft limit to the hard one and the command inherits that; the helper then
    # does the same. With an RLIMIT_NOFILE in the spec that runc races with its own prlimit
    # (either outcome is seen); the helper keeps the spec's limit, as runc 1.1.13 does.
    nofile_soft_to_hard: bool = False


def raises_nofile(version_output: str) -> bool:
    """Whether the runc that printed this ``--version`` raises the command's RLIMIT_NOFILE
    soft limit to its hard limit (pure; see ``ExecPlan.nofile_soft_to_hard``)."""
    runc = re.search(r"runc version (\d+)\.(\d+)\.(\d+)", version_output)
    go = re.search(r"go: go(\d+)\.(\d+)", version_output)
    if not runc or not go:
        return False
    return tuple(map(int, go.groups())) >= (1, 19) and tuple(map(int, runc.groups())) < (1, 1, 13)


def runc_refusal(version_output: str) -> str | None:
    """Why the helper cannot stand in for the runc that printed this ``--version``, or None
    for runc 1.1.x, the version whose exec it reproduces (pure)."""
    runc = re.search(r"^runc version (\d+)\.(\d+)\.(\d+)", version_output, re.MULTILINE)
    if not runc:
        return "runc version unknown (the helper reproduces runc 1.1.x)"
    if runc.group(1, 2) != ("1", "1"):
        return f"runc {'.'.join(runc.groups())} (the helper reproduces runc 1.1.x)"
    return None


def _caps_mask(names: Sequence[str] | None) -> int:
    # runc ignores names it does not know (with a warning); so does this
    mask = 0
    for name in names or ():
        bit = _CAP_BIT.get(name)
        if bit is not None:
            mask |= 1 << bit
    return mask


# runc 1.1's rlimit table (libcontainer/specconv): these names only, with Linux's numbers
# (x86_64 and arm64; Python's resource module lacks some, e.g. RLIMIT_LOCKS)
_RLIMITS = {
    f"RLIMIT_{name}": number
    for number, name in enumerate(
        ("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS",
         "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME")
    )
}  # fmt: skip


def _rlimit(entry: Mapping[str, Any]) -> tuple[int, int, int] | None:
    # the spec names the resource; runc's own config numbers it
    kind = entry.get("type")
    number = kind if isinstance(kind, int) else _RLIMITS.get(str(kind))
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    hard, soft = int(entry.get("hard", 0)), int(entry.get("soft", 0))
    unlimited = (1 << 64) - 1
    return number, -1 if soft >= unlimited else soft, -1 if hard >= unlimited else hard


def plan_exec(
    task_id: str,
    state: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    nofile_soft_to_hard: bool = False,
) -> ExecPlan | str:
    """The plan for execs in task ``task_id`` from runc's state and the bundle's spec, or the
    reason ``runc exec`` must run them (pure)."""
    config = state.get("config")
    process = spec.get("process")
    if not isinstance(config, dict) or not isinstance(process, dict):
        return "state or spec without a config/process"
    for what, got, known in (
        ("state", state, _STATE_KEYS),
        ("state config", config, _CONFIG_KEYS),
        ("spec process", process, _PROCESS_KEYS),
        ("spec process user", process.get("user") or {}, _USER_KEYS),
    ):
        unknown = sorted(set(got) - known)
        if unknown:
            return f"{what} keys not known to the helper: {', '.join(unknown)}"
    if config.get("umask") is not None:
        return "umask"
    if config.get("seccomp") is not None:
        return "seccomp"
    if config.get("apparmor_profile") or process.get("apparmorProfile"):
        return "AppArmor profile"
    if config.get("process_label") or process.get("selinuxLabel"):
        return "SELinux label"
    if config.get("intel_rdt") or state.get("intel_rdt_path"):
        return "Intel RDT"
    # runc's keys (state "rootless" is only both of them): rootless cgroups make runc ignore
    # cgroup-join errors, which the helper does not
    if config.get("rootless_euid") or config.get("rootless_cgroups") or state.get("rootless"):
        return "rootless"
    types = [ns.get("type") for ns in config.get("namespaces") or ()]
    if "NEWUSER" in types or config.get("uid_mappings") or config.get("gid_mappings"):
        return "user namespace"
    if any(t not in _KNOWN_NS for t in types):
        return f"namespace types {types}"
    paths = state.get("namespace_paths") or {}
    namespaces = []
    for kind, name in _NS_ORDER:
        if kind in types:
            path = paths.get(kind)
            if not path:
                return f"no path for namespace {kind}"
            namespaces.append((name, str(path)))
    cgroup_paths = state.get("cgroup_paths") or {}
    if not cgroup_paths:
        return "no cgroup paths"
    if "freezer" in cgroup_paths:
        frozen: tuple[str, str] | None = (f"{cgroup_paths['freezer']}/freezer.state", "FROZEN")
    elif set(cgroup_paths) == {""}:
        frozen = (f"{cgroup_paths['']}/cgroup.freeze", "1")
    else:
        frozen = None
    user = process.get("user") or {}
    caps_spec = process.get("capabilities")
    if caps_spec is None:  # runc then uses the container's (same source, other spelling)
        container_caps = config.get("capabilities") or {}
        caps_spec = {k: container_caps.get(k.capitalize()) for k in _CAP_SETS}
    rlimits = []
    for entry in process.get("rlimits") or config.get("rlimits") or ():
        limit = _rlimit(entry)
        if limit is None:
            return f"rlimit {entry.get('type')!r}"
        rlimits.append(limit)
    cwd = str(process.get("cwd") or "")
    if not cwd.startswith("/"):
        return "cwd not absolute"
    oom = config.get("oom_score_adj")
    try:
        init_pid = int(state["init_process_pid"])
        init_start = str(int(state["init_process_start"]))
    except (KeyError, TypeError, ValueError):
        return "no init process in the state"
    return ExecPlan(
        task_id=task_id,
        init_pid=init_pid,
        init_start=init_start,
        namespaces=tuple(namespaces),
        cgroups=tuple(str(p) for p in cgroup_paths.values()),
        frozen=frozen,
        oom_score_adj=int(oom) if oom is not None else None,
        keyring=None if config.get("no_new_keyring") else f"_ses.{task_id}",
        uid=int(user.get("uid", 0)),
        gid=int(user.get("gid", 0)),
        additional_gids=tuple(int(g) for g in user.get("additionalGids") or ()),
        caps=(
            _caps_mask(caps_spec.get("bounding")),
            _caps_mask(caps_spec.get("effective")),
            _caps_mask(caps_spec.get("permitted")),
            _caps_mask(caps_spec.get("inheritable")),
            _caps_mask(caps_spec.get("ambient")),
        ),
        no_new_privileges=bool(process.get("noNewPrivileges")),
        rlimits=tuple(rlimits),
        env=tuple(str(e) for e in process.get("env") or ()),
        cwd=cwd,
        nofile_soft_to_hard=nofile_soft_to_hard
        and all(number != resource.RLIMIT_NOFILE for number, _, _ in rlimits),
    )


def load_plan(
    state_file: Path, bundle: Path, task_id: str, *, nofile_soft_to_hard: bool = False
) -> ExecPlan | str:
    """``plan_exec`` from the files (blocking: run it in a thread)."""
    try:
        state = json.loads(state_file.read_bytes())
        spec = json.loads((bundle / "config.json").read_bytes())
    except (OSError, ValueError) as exc:
        return f"unreadable state or spec: {exc}"
    return plan_exec(task_id, state, spec, nofile_soft_to_hard=nofile_soft_to_hard)


def helper_argv(
    helper: Path,
    plan: ExecPlan,
    argv: Sequence[str],
    *,
    pid_file: Path,
    env: Sequence[str] = (),
    cwd: str | None = None,
) -> list[str]:
    """The ``pinnace-exec`` command line for one exec (pure); ``env`` is appended to the
    spec's and ``cwd`` replaces it, as ``runc exec --env/--cwd`` do."""
    cmd = [str(helper), "--init", f"{plan.init_pid}:{plan.init_start}"]
    if plan.frozen is not None:
        cmd += ["--frozen", f"{plan.frozen[0]}:{plan.frozen[1]}"]
    for name, path in plan.namespaces:
        cmd += ["--ns", f"{name}:{path}"]
    for directory in plan.cgroups:
        cmd += ["--cgroup", directory]
    if plan.oom_score_adj is not None:
        cmd += ["--oom", str(plan.oom_score_adj)]
    if plan.keyring is not None:
        cmd += ["--keyring", plan.keyring]
    for number, soft, hard in plan.rlimits:
        cmd += ["--rlimit", f"{number}:{soft}:{hard}"]
    cmd += ["--uid", str(plan.uid), "--gid", str(plan.gid)]
    if plan.additional_gids:
        cmd += ["--groups", ",".join(str(g) for g in plan.additional_gids)]
    cmd += ["--caps", ":".join(f"{m:x}" for m in plan.caps)]
    cmd += ["--nnp", "1" if plan.no_new_privileges else "0"]
    if plan.nofile_soft_to_hard:
        cmd += ["--nofile-soft-to-hard", "1"]
    cmd += ["--cwd", cwd or plan.cwd]
    for kv in (*plan.env, *env):
        cmd += ["--env", kv]
    cmd += ["--pid-file", str(pid_file), "--", *argv]
    return cmd
