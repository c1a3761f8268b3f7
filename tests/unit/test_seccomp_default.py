"""The RuntimeDefault seccomp allow list, rendered per capability set, machine and kernel."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.oci.seccomp import default_profile
from runtime.oci.seccomp_default import CLONE_NAMESPACE_FLAGS, REFUSED, RULES


def allowed(profile: dict[str, Any]) -> set[str]:
    return {n for s in profile["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" for n in s["names"]}


def rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in profile["syscalls"] if name in s["names"]]


def plain(**kwargs: Any) -> dict[str, Any]:
    return default_profile((), machine="x86_64", kernel_release="6.1.0-18-amd64", **kwargs)


def test_an_allow_list_refusing_with_eperm() -> None:
    profile = plain()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(profile)
    assert 340 <= len(names) <= 400
    assert {"read", "write", "execve", "openat", "futex", "rt_sigaction", "arch_prctl"} <= names


def test_refused_calls_are_refused_whatever_the_capabilities() -> None:
    every_cap = [f"CAP_{c}" for c in ("SYS_ADMIN", "SYS_BOOT", "SYS_MODULE", "SYS_PTRACE")]
    every_cap += [f"CAP_{c}" for c in ("SYS_TIME", "SYS_NICE", "SYSLOG", "BPF", "PERFMON")]
    for caps in ((), every_cap):
        profile = default_profile(caps, machine="x86_64", kernel_release="6.1")
        assert not set(REFUSED) & allowed(profile)
    # and nothing in the data allows them, on any machine
    assert not {n for r in RULES if r.action == "SCMP_ACT_ALLOW" for n in r.names} & set(REFUSED)


@pytest.mark.parametrize(
    ("cap", "calls"),
    [
        ("CAP_SYS_ADMIN", {"mount", "umount2", "unshare", "setns", "sethostname", "clone3"}),
        ("CAP_SYS_BOOT", {"reboot"}),
        ("CAP_SYS_CHROOT", {"chroot"}),
        ("CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module"}),
        ("CAP_SYS_PTRACE", {"kcmp", "pidfd_getfd", "process_madvise"}),
        ("CAP_SYS_TIME", {"settimeofday", "clock_settime"}),
        ("CAP_SYS_NICE", {"mbind", "set_mempolicy"}),
        ("CAP_SYS_RAWIO", {"iopl", "ioperm"}),
        ("CAP_SYSLOG", {"syslog"}),
        ("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}),
        ("CAP_BPF", {"bpf"}),
        ("CAP_PERFMON", {"perf_event_open"}),
        ("CAP_SYS_PACCT", {"acct"}),
        ("CAP_SYS_TTY_CONFIG", {"vhangup"}),
    ],
)
def test_capability_gated_calls(cap: str, calls: set[str]) -> None:
    assert not calls & allowed(plain())
    held = default_profile([cap], machine="x86_64", kernel_release="6.1")
    assert calls <= allowed(held)


def test_clone_without_cap_sys_admin_creates_no_namespaces() -> None:
    (clone,) = rules_for(plain(), "clone")
    assert clone["action"] == "SCMP_ACT_ALLOW"
    assert clone["args"] == [
        {"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    assert CLONE_NAMESPACE_FLAGS == 0x7E020000
    # clone3 hides its flags from seccomp: ENOSYS, so libc falls back to clone
    (clone3,) = rules_for(plain(), "clone3")
    assert (clone3["action"], clone3["errnoRet"]) == ("SCMP_ACT_ERRNO", 38)
    # with CAP_SYS_ADMIN both are allowed outright
    admin = default_profile(["CAP_SYS_ADMIN"], machine="x86_64", kernel_release="6.1")
    assert [r.get("args") for r in rules_for(admin, "clone")] == [None]
    assert [r["action"] for r in rules_for(admin, "clone3")] == ["SCMP_ACT_ALLOW"]


def test_s390_checks_clones_second_argument() -> None:
    profile = default_profile((), machine="s390x", kernel_release="6.1")
    (clone,) = rules_for(profile, "clone")
    assert clone["args"][0]["index"] == 1
    assert profile["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]


def test_personality_and_socket_argument_rules() -> None:
    profile = plain()
    personas = sorted(r["args"][0]["value"] for r in rules_for(profile, "personality"))
    assert personas == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    (socket,) = rules_for(profile, "socket")
    assert socket["args"] == [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]


@pytest.mark.parametrize(
    ("machine", "present", "absent"),
    [
        ("x86_64", {"arch_prctl", "modify_ldt"}, {"set_tls", "s390_runtime_instr"}),
        ("amd64", {"arch_prctl"}, {"cacheflush"}),
        ("i686", {"modify_ldt"}, {"arch_prctl"}),
        ("aarch64", {"set_tls", "cacheflush", "arm_fadvise64_64"}, {"arch_prctl", "modify_ldt"}),
        ("s390x", {"s390_runtime_instr"}, {"arch_prctl"}),
        ("ppc64le", {"swapcontext"}, {"arch_prctl"}),
        ("riscv64", {"riscv_flush_icache"}, {"arch_prctl"}),
    ],
)
def test_architecture_rules(machine: str, present: set[str], absent: set[str]) -> None:
    names = allowed(default_profile((), machine=machine, kernel_release="6.1"))
    assert present <= names
    assert not absent & names


def test_unknown_machine_has_no_architectures_list() -> None:
    profile = default_profile((), machine="vax", kernel_release="6.1")
    assert "architectures" not in profile
    assert "read" in allowed(profile)


def test_ptrace_needs_a_kernel_that_rechecks_seccomp_after_tracing() -> None:
    assert "ptrace" in allowed(default_profile((), machine="x86_64", kernel_release="4.8.0"))
    assert "ptrace" not in allowed(default_profile((), machine="x86_64", kernel_release="4.4.0"))
    assert "ptrace" in allowed(
        default_profile(["CAP_SYS_PTRACE"], machine="x86_64", kernel_release="4.4.0")
    )
