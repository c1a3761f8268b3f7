"""sd_notify datagrams and the event journal's lines."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

from cri.notify import Notifier
from runtime.events import types as t
from runtime.events.journal import journal_line


def test_notifier_takes_the_variable_and_sends_one_datagram(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    env = {"NOTIFY_SOCKET": str(path), "OTHER": "x"}
    notifier = Notifier.take(env)
    assert env == {"OTHER": "x"}  # runc and conmon must not inherit it
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        assert notifier.notify("READY=1", "STATUS=serving")
        assert systemd.recv(100) == b"READY=1\nSTATUS=serving"


def test_without_systemd_notifying_does_nothing() -> None:
    assert Notifier.take({}).notify("READY=1") is False


def test_a_journal_line_is_the_topic_and_the_facts() -> None:
    event = t.SandboxStart(sandbox_id="sb1")
    envelope = t.Envelope(event.topic, "k8s.io", datetime.now(UTC), event)
    assert journal_line(envelope) == "/sandboxes/start namespace=k8s.io sandbox_id=sb1"
