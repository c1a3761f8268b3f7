"""systemd's readiness protocol (sd_notify) without libsystemd: one datagram to the unix socket
systemd names in ``$NOTIFY_SOCKET``.

A service with ``Type=notify`` is "started" when it sends ``READY=1``; ``STOPPING=1`` tells
systemd the stop has begun, ``STATUS=...`` is shown by ``systemctl status``. A socket name
starting with ``@`` is in the abstract namespace (a leading NUL byte).

The variable is taken out of the daemon's environment when read (sd_notify's
``unset_environment``): runc and conmon inherit that environment, and runc would otherwise
relay its containers' notifications to systemd, failing on a socket it cannot bind.
Without ``$NOTIFY_SOCKET`` (not started by systemd) notifying does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``KEY=VALUE`` lines to systemd's notify socket (if there is one)."""

    def __init__(self, address: str) -> None:
        self.address = address

    @classmethod
    def take(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier for ``$NOTIFY_SOCKET``, removing it from ``environ``."""
        env = os.environ if environ is None else environ
        return cls(env.pop("NOTIFY_SOCKET", ""))

    def notify(self, *assignments: str) -> bool:
        """True if a datagram was sent."""
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, target)
        except OSError as exc:  # systemd gone or a wrong path: readiness is advisory here
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True
