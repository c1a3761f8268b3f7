"""Test helper: a busybox root filesystem built from the host's static ``/bin/busybox``.

``/bin/busybox`` plus a symlink per applet in ``/bin``, ``/etc/passwd`` and ``/etc/group``,
and the empty ``/proc /dev /sys /tmp`` mount points. Debian's busybox-static runs applets in
process, so the symlinks need no libraries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def busybox_available() -> bool:
    """True when the static busybox this helper copies is installed."""
    return BUSYBOX.is_file()


def build_busybox_rootfs(root: Path) -> Path:
    """Populate ``root`` (created if needed) and return it."""
    bindir = root / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bindir / "busybox")
    out = subprocess.run(
        [str(BUSYBOX), "--list"], check=True, capture_output=True, text=True
    ).stdout
    for applet in out.split():
        if applet != "busybox" and "/" not in applet:
            link = bindir / applet
            if not link.exists():
                os.symlink("busybox", link)
    for d in ("proc", "dev", "sys", "tmp", "etc", "root"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root
