"""The data of pinnace's RuntimeDefault seccomp profile: an allow list.

Every system call not allowed below fails with EPERM. The choice of calls is the one the
container ecosystem settled on (Docker's and containerd's default profiles, which CRI-O and
Podman share): what ordinary programs need is allowed unconditionally; what reaches
kernel-global state (mounts, namespaces, modules, clocks, keyrings, kexec, BPF, tracing) is
allowed only to a container holding the capability that makes it legitimate, or never.

Each :class:`Rule` names calls and says when it applies; :mod:`runtime.oci.seccomp` renders
the rules for one container (its capability bounding set, the host's machine and kernel)
into the OCI ``linux.seccomp`` object. Names a given architecture or libseccomp does not know
(``chown32`` on x86_64, say) are skipped by runc and crun, so one list serves every
architecture.

Deliberately refused to everyone (so nobody adds them back by accident): ``keyctl``,
``add_key``, ``request_key`` (the kernel keyring is not namespaced), ``userfaultfd`` (a
kernel-exploit primitive), ``kexec_load``/``kexec_file_load``, ``swapon``/``swapoff``,
``uselib``, ``ustat``/``sysfs``/``_sysctl`` (obsolete), ``vm86``/``vm86old``,
``nfsservctl``, ``get_kernel_syms``/``query_module``/``create_module``, and
``socket(AF_VSOCK)`` (reaches the hypervisor).
"""

from __future__ import annotations

from dataclasses import dataclass

EPERM = 1
ENOSYS = 38

# clone(2) flags that create namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID,
# NEWNET. A container without CAP_SYS_ADMIN may clone only with none of them set.
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)
AF_VSOCK = 40

# personality(2) personas a program may ask for: PER_LINUX, PER_LINUX32 (UNAME26 off),
# PER_LINUX | UNAME26, PER_LINUX32 | UNAME26, and 0xffffffff (the query, changes nothing).
# Others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...) weaken the address-space protections.
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# Never allowed, whatever the container holds (see the module docstring).
REFUSED = (
    "keyctl", "add_key", "request_key", "userfaultfd", "kexec_load", "kexec_file_load",
    "swapon", "swapoff", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
    "nfsservctl", "get_kernel_syms", "query_module", "create_module",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Arg:
    """A condition on argument ``index``: ``op`` is an OCI ``SCMP_CMP_*`` name; for
    ``SCMP_CMP_MASKED_EQ`` the argument masked with ``value`` must equal ``value_two``."""

    index: int
    value: int
    op: str
    value_two: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """Calls ``names`` get ``action`` (with ``errno`` for ``SCMP_ACT_ERRNO``) when every
    condition holds: the container holds one of ``caps`` (if any) and none of ``not_caps``;
    the host machine is one of ``machines`` (if any) and none of ``not_machines``; the
    kernel is at least ``min_kernel``. ``args`` restrict the call's arguments."""

    names: tuple[str, ...]
    action: str = "SCMP_ACT_ALLOW"
    errno: int | None = None
    args: tuple[Arg, ...] = ()
    caps: tuple[str, ...] = ()
    not_caps: tuple[str, ...] = ()
    machines: tuple[str, ...] = ()
    not_machines: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None
    why: str = ""


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# -- allowed to everyone, by what they are for -----------------------------------------------
FILES = _names("""
    access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat
    chown chown32 fchown fchown32 fchownat lchown lchown32
    creat open openat openat2 close close_range mkdir mkdirat mknod mknodat rmdir
    link linkat symlink symlinkat unlink unlinkat rename renameat renameat2
    readlink readlinkat stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx
    statfs statfs64 fstatfs fstatfs64 getdents getdents64 truncate truncate64
    ftruncate ftruncate64 fallocate umask utime utimes utimensat utimensat_time64 futimesat
    name_to_handle_at flock fanotify_mark
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
""")
XATTRS = _names("""
    getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr
    listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr
""")
IO = _names("""
    read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2
    lseek _llseek dup dup2 dup3 fcntl fcntl64 ioctl pipe pipe2
    sendfile sendfile64 splice tee vmsplice copy_file_range readahead
    fsync fdatasync sync syncfs sync_file_range fadvise64 fadvise64_64
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    io_uring_setup io_uring_enter io_uring_register
""")
POLLING = _names("""
    select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old
    epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64
""")
MEMORY = _names("""
    brk mmap mmap2 munmap mremap mprotect madvise mincore msync remap_file_pages
    mlock mlock2 mlockall munlock munlockall membarrier memfd_create memfd_secret
    pkey_alloc pkey_free pkey_mprotect
""")
PROCESSES = _names("""
    fork vfork execve execveat exit exit_group wait4 waitid waitpid
    getpid getppid gettid getpgid setpgid getpgrp getsid setsid
    set_tid_address set_robust_list get_robust_list get_thread_area set_thread_area
    futex futex_time64 futex_waitv rseq restart_syscall prctl capget capset seccomp
    getrlimit setrlimit ugetrlimit prlimit64 getrusage times sysinfo uname getcpu getrandom
    pidfd_open pidfd_send_signal process_mrelease
    landlock_create_ruleset landlock_add_rule landlock_restrict_self
""")
SIGNALS = _names("""
    kill tkill tgkill pause alarm sigaltstack sigprocmask sigreturn
    rt_sigaction rt_sigprocmask rt_sigpending rt_sigreturn rt_sigsuspend rt_sigqueueinfo
    rt_tgsigqueueinfo rt_sigtimedwait rt_sigtimedwait_time64
""")
TIME = _names("""
    time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
    clock_nanosleep clock_nanosleep_time64 nanosleep getitimer setitimer
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
    timer_settime timer_settime64 adjtimex clock_adjtime clock_adjtime64
""")
IDENTITY = _names("""
    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32
    getresuid getresuid32 getresgid getresgid32 getgroups getgroups32
    setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
    setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
    setgroups setgroups32
""")
SCHEDULING = _names("""
    sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
    sched_getparam sched_setparam sched_getscheduler sched_setscheduler
    sched_get_priority_max sched_get_priority_min
    sched_rr_get_interval sched_rr_get_interval_time64
    getpriority setpriority ioprio_get ioprio_set
""")
SOCKETS = _names("""
    socketpair bind connect listen accept accept4 getsockname getpeername
    getsockopt setsockopt shutdown send sendto sendmsg sendmmsg
    recv recvfrom recvmsg recvmmsg recvmmsg_time64 socketcall
""")
IPC = _names("""
    ipc msgget msgctl msgsnd msgrcv semget semctl semop semtimedop semtimedop_time64
    shmget shmctl shmat shmdt
    mq_open mq_unlink mq_getsetattr mq_notify mq_timedsend mq_timedsend_time64
    mq_timedreceive mq_timedreceive_time64
""")

# x86_64 machines run x86_64, i386 and x32 binaries; arm64 ones arm binaries too.
X86 = ("x86_64", "i686")
ARM = ("aarch64", "armv7l")

RULES: tuple[Rule, ...] = (
    Rule(
        FILES
        + XATTRS
        + IO
        + POLLING
        + MEMORY
        + PROCESSES
        + SIGNALS
        + TIME
        + IDENTITY
        + SCHEDULING
        + SOCKETS
        + IPC,
        why="what ordinary programs use",
    ),
    Rule(
        ("socket",),
        args=(Arg(0, AF_VSOCK, "SCMP_CMP_NE"),),
        why="any address family but vsock (the hypervisor's)",
    ),
    *(
        Rule(("personality",), args=(Arg(0, persona, "SCMP_CMP_EQ"),), why="safe personas")
        for persona in PERSONAS
    ),
    # Since Linux 4.8 seccomp runs again after a ptrace stop, so tracing cannot skip it.
    Rule(
        ("ptrace", "process_vm_readv", "process_vm_writev"),
        min_kernel=(4, 8),
        why="debuggers and strace inside the container",
    ),
    # -- per architecture --
    Rule(("arch_prctl",), machines=("x86_64",)),
    Rule(("modify_ldt",), machines=X86),
    Rule(
        ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint"),
        machines=ARM,
    ),
    Rule(("cacheflush", "set_tls"), machines=ARM),
    Rule(("sync_file_range2", "swapcontext"), machines=("ppc64le",)),
    Rule(("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"), machines=("s390x",)),
    Rule(("riscv_flush_icache",), machines=("riscv64",)),
    # -- namespaces and mounts: CAP_SYS_ADMIN, else clone without namespace flags --
    Rule(
        _names("""
            bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
            mount mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd
            setdomainname sethostname setns syslog umount umount2 unshare
        """),
        caps=("CAP_SYS_ADMIN",),
    ),
    Rule(
        ("clone",),
        args=(Arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0),),
        not_caps=("CAP_SYS_ADMIN",),
        not_machines=("s390x",),
        why="threads and processes, but no new namespaces",
    ),
    Rule(
        ("clone",),
        args=(Arg(1, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0),),
        not_caps=("CAP_SYS_ADMIN",),
        machines=("s390x",),
        why="s390 passes clone's flags second",
    ),
    # clone3 passes its flags in memory, out of seccomp's sight: ENOSYS makes glibc (2.34+)
    # fall back to clone, whose flags the rule above can check.
    Rule(("clone3",), action="SCMP_ACT_ERRNO", errno=ENOSYS, not_caps=("CAP_SYS_ADMIN",)),
    # -- one capability each --
    Rule(("reboot",), caps=("CAP_SYS_BOOT",)),
    Rule(("chroot",), caps=("CAP_SYS_CHROOT",)),
    Rule(("init_module", "finit_module", "delete_module"), caps=("CAP_SYS_MODULE",)),
    Rule(("acct",), caps=("CAP_SYS_PACCT",)),
    Rule(
        _names("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
        caps=("CAP_SYS_PTRACE",),
    ),
    Rule(("iopl", "ioperm"), caps=("CAP_SYS_RAWIO",)),
    Rule(("settimeofday", "stime", "clock_settime", "clock_settime64"), caps=("CAP_SYS_TIME",)),
    Rule(("vhangup",), caps=("CAP_SYS_TTY_CONFIG",)),
    Rule(
        ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
        caps=("CAP_SYS_NICE",),
    ),
    Rule(("syslog",), caps=("CAP_SYSLOG",)),
    Rule(("open_by_handle_at",), caps=("CAP_DAC_READ_SEARCH",)),
    Rule(("bpf",), caps=("CAP_BPF",)),
    Rule(("perf_event_open",), caps=("CAP_PERFMON",)),
)

# What a machine (``uname -m``) runs: its libseccomp architectures, native first.
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "i686": ("SCMP_ARCH_X86",),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "armv7l": ("SCMP_ARCH_ARM",),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}
