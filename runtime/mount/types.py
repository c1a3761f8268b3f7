"""Mounts as data: the :class:`Mount` dataclass and the parsing of its option strings.

A snapshotter returns ``list[Mount]``; only :mod:`runtime.mount.linux` turns them into
mount(2) calls. Options are the strings ``mount -o`` takes. They split into

flag options
    mapped to ``MS_*`` bits (``ro``, ``nosuid``, ``rbind``, …);
propagation options
    ``private``/``rprivate``/``slave``/``rslave``/``shared``/``rshared``/``unbindable``; the
    kernel wants these in a separate mount(2) call after the mount exists;
data options
    everything else (``lowerdir=…``, ``upperdir=…``, ``size=…``), passed to the filesystem as
    the comma-joined data string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MS_RDONLY: Final = 0x1
MS_NOSUID: Final = 0x2
MS_NODEV: Final = 0x4
MS_NOEXEC: Final = 0x8
MS_SYNCHRONOUS: Final = 0x10
MS_REMOUNT: Final = 0x20
MS_MANDLOCK: Final = 0x40
MS_DIRSYNC: Final = 0x80
MS_NOATIME: Final = 0x400
MS_NODIRATIME: Final = 0x800
MS_BIND: Final = 0x1000
MS_REC: Final = 0x4000
MS_UNBINDABLE: Final = 1 << 17
MS_PRIVATE: Final = 1 << 18
MS_SLAVE: Final = 1 << 19
MS_SHARED: Final = 1 << 20
MS_RELATIME: Final = 1 << 21
MS_STRICTATIME: Final = 1 << 24

# option -> (clear instead of set, flag)
_FLAGS: Final[dict[str, tuple[bool, int]]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}

_PROPAGATION: Final[dict[str, int]] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}


@dataclass(frozen=True, slots=True)
class MountOptions:
    """Parsed options: mount(2) flags, the propagation flags (0 for none) and the data string."""

    flags: int
    propagation: int
    data: str

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_options(options: tuple[str, ...] | list[str]) -> MountOptions:
    """Split mount option strings into flags, propagation and filesystem data."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in _PROPAGATION:
            propagation = _PROPAGATION[option]
        elif option:
            data.append(option)
    return MountOptions(flags=flags, propagation=propagation, data=",".join(data))


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount to perform: a filesystem ``type`` (``overlay``, ``bind``, ``tmpfs``…), a
    ``source`` (a path for binds, a label like ``overlay`` otherwise) and ``mount -o`` style
    ``options``. The target is supplied when mounting, so the same list can be mounted anywhere.
    """

    type: str
    source: str
    options: tuple[str, ...] = ()

    def parsed(self) -> MountOptions:
        return parse_options(self.options)

    @property
    def readonly(self) -> bool:
        return self.parsed().readonly

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or self.parsed().is_bind

    def option(self, key: str) -> str | None:
        """The value of a ``key=value`` data option, or None."""
        prefix = f"{key}="
        for option in self.options:
            if option.startswith(prefix):
                return option[len(prefix) :]
        return None

    def with_options(self, *extra: str) -> Mount:
        """A copy with ``extra`` options appended (later options win for flags)."""
        return Mount(self.type, self.source, self.options + tuple(extra))

    def to_json(self) -> dict[str, object]:
        """The OCI runtime-spec shape (``destination`` is added by the caller)."""
        return {"type": self.type, "source": self.source, "options": list(self.options)}
