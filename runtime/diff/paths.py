"""Resolving layer paths strictly inside a target directory.

A layer is untrusted input. Its entry names are normalised lexically (absolute names and ``..``
that would climb above the root are rejected), and the parent directories of an entry are then
resolved **component by component** with ``lstat``. A symlink met on the way is followed as if the
target directory were ``/`` (chroot semantics: an absolute link target starts at the root, ``..``
stops at the root), so a symlink planted by this or an earlier layer can redirect a path only to
another place *inside* the target, never outside it. The final component of an entry is never
followed: what is there is removed and replaced.

Why this is enough without openat2(RESOLVE_IN_ROOT): while a layer is applied, the target tree is
private to the applier (nothing runs on an unpacking snapshot), so nothing can swap a checked
directory for a symlink between our ``lstat`` and our use of the path.
"""

from __future__ import annotations

import os
import shutil
import stat

from runtime.errors import InvalidArgument

_MAX_SYMLINKS = 40


class Missing(Exception):
    """A path component does not exist and was not to be created."""


def normalize(name: str) -> tuple[str, ...]:
    """The components of tar entry ``name`` relative to the root (``()`` for the root itself)."""
    if name.startswith("/"):
        raise InvalidArgument(f"layer entry {name!r} has an absolute path")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArgument(f"layer entry {name!r} escapes the layer root")
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def _clamped(base: tuple[str, ...], link: str) -> tuple[str, ...]:
    parts = [] if link.startswith("/") else list(base)
    for part in link.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


class Tree:
    """The target directory of one layer application, with a cache of resolved directories."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._dirs: dict[tuple[str, ...], str] = {(): self.root}

    def relative(self, path: str) -> str:
        """``path`` (a resolved path inside the root) relative to the root."""
        return os.path.relpath(path, self.root)

    def invalidate(self) -> None:
        """Forget resolved directories: call after removing a directory or symlink."""
        self._dirs = {(): self.root}

    def directory(self, parts: tuple[str, ...], *, create: bool, hops: int = 0) -> str:
        """The real path of directory ``parts``; missing directories are made (0755) when
        ``create``, else Missing is raised. A non-directory in the way is replaced when
        ``create`` (the layer says a directory is there), else Missing."""
        cached = self._dirs.get(parts)
        if cached is not None:
            return cached
        parent = self.directory(parts[:-1], create=create, hops=hops)
        path = os.path.join(parent, parts[-1])
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                raise Missing(path) from None
            os.mkdir(path, 0o755)
            resolved = path
        else:
            if stat.S_ISDIR(st.st_mode):
                resolved = path
            elif stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InvalidArgument(f"too many levels of symbolic links at {path}")
                base = normalize(self.relative(parent)) if parent != self.root else ()
                target = _clamped(base, os.readlink(path))
                resolved = self.directory(target, create=create, hops=hops)
            elif not create:
                raise Missing(path)
            else:
                os.unlink(path)
                os.mkdir(path, 0o755)
                resolved = path
        self._dirs[parts] = resolved
        return resolved

    def remove(self, path: str, st: os.stat_result | None = None) -> bool:
        """Remove whatever is at ``path`` (recursively, never following symlinks). Returns
        whether something was there."""
        if st is None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            self.invalidate()
        else:
            os.unlink(path)
            if stat.S_ISLNK(st.st_mode):
                self.invalidate()
        return True
