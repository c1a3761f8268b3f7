"""Tiny static x86_64 programs that make one system call and exit with its errno.

Container images here hold busybox only (no compiler, no Python), and busybox has no applet
for most of the calls a seccomp test wants (``keyctl``, ``bpf``, ``kexec_load``). So the tests
build a program per call, as bytes: an ELF64 header, one loadable segment, and ten
instructions that load the call's number and arguments, trap into the kernel, and
``exit_group`` with the call's errno (0 when it succeeded). Nothing is linked and nothing is
compiled, so the bytes are the same on every machine.
"""

from __future__ import annotations

import platform
import struct
from collections.abc import Sequence

# x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
NR = {
    "getpid": 39,
    "personality": 135,
    "kexec_load": 246,
    "keyctl": 250,
    "unshare": 272,
    "bpf": 321,
}
EXIT_GROUP = 231
EPERM = 1
ENOSYS = 38

# mov <reg>, imm64 for the first six argument registers: rdi rsi rdx r10 r8 r9.
_MOV_IMM64 = (b"\x48\xbf", b"\x48\xbe", b"\x48\xba", b"\x49\xba", b"\x49\xb8", b"\x49\xb9")
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header


def supported() -> bool:
    """Whether this host runs the programs (x86_64 only)."""
    return platform.machine() == "x86_64"


def program(name: str, args: Sequence[int] = ()) -> bytes:
    """An executable that calls ``name`` with ``args`` and exits with the errno."""
    if len(args) > len(_MOV_IMM64):
        raise ValueError("at most six arguments")
    code = b"\xb8" + struct.pack("<I", NR[name])  # mov eax, nr
    for reg, value in zip(_MOV_IMM64, args, strict=False):
        code += reg + struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)
    code += b"\x0f\x05"  # syscall
    code += b"\x48\x89\xc7"  # mov rdi, rax
    code += b"\x48\xf7\xdf"  # neg rdi            (errno when rax is -errno)
    code += b"\x31\xf6"  # xor esi, esi
    code += b"\x48\x85\xc0"  # test rax, rax
    code += b"\x48\x0f\x49\xfe"  # cmovns rdi, rsi    (0 when the call succeeded)
    code += b"\xb8" + struct.pack("<I", EXIT_GROUP)  # mov eax, exit_group
    code += b"\x0f\x05"  # syscall
    size = _HEADERS + len(code)
    elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 9  # 64-bit, little endian, SysV
    elf += struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        62,  # EM_X86_64
        1,
        _BASE + _HEADERS,  # entry point: the code right after the headers
        64,  # program headers offset
        0,  # no section headers
        0,
        64,
        56,
        1,
        0,
        0,
        0,
    )
    elf += struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # PT_LOAD r-x
    return elf + code
