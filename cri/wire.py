"""Facts of pinnace's wire contract that both the daemon and its clients need. Pure: no
imports, so the CLI may use it without depending on anything of the server side."""

from __future__ import annotations

#: Trailing metadata key on every error pinnaced answers: the runtime error's kind (the name of
#: the most specific class of ``runtime.errors`` it is: ``RegistryUnavailable``, ``NotFound``,
#: ...; ``Internal`` for pinnace's own bugs). A client tells "pinnaced answered UNAVAILABLE
#: because a registry is down" from "pinnaced cannot be reached" by its presence, not by words.
ERROR_KIND_KEY = "pinnace-error-kind"

#: Where pinnaced listens unless told otherwise (kubelet's ``--container-runtime-endpoint``).
DEFAULT_ADDRESS = "unix:///run/pinnace/pinnace.sock"


def unix_address(text: str) -> str:
    """A gRPC target for pinnaced's socket from what people type: a bare path
    (``/run/pinnace/pinnace.sock``, as containerd's ``--address`` takes) or ``unix://PATH``.
    Relative paths are made absolute. Anything else is returned unchanged."""
    if text.startswith("unix://"):
        return text
    if text.startswith("unix:"):
        return "unix://" + text.removeprefix("unix:")
    if "://" not in text:
        import os

        return "unix://" + os.path.abspath(text)
    return text
