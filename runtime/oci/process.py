"""A container's command line, environment and working directory (Kubernetes' rules).

Terms:

command / args
    Kubernetes' ``command`` replaces the image's ENTRYPOINT (and the image's CMD is then
    ignored); ``args`` replace the image's CMD. Neither set: ENTRYPOINT followed by CMD. An
    ENTRYPOINT of exactly ``[""]`` means none (Docker's way of resetting it).
environment merge
    ``KEY=value`` entries in order; a later entry with a key seen before replaces the value
    in the earlier entry's position, and an entry without ``=`` removes the key (containerd's
    rule). The merge starts from ``PATH`` (a default) and ``HOSTNAME`` (the sandbox's), then
    the image's environment, then the container's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from runtime.errors import InvalidArgument
from runtime.oci.defaults import DEFAULT_PATH
from runtime.ocispec import ImageConfig


def process_args(
    image: ImageConfig, *, command: Sequence[str] = (), args: Sequence[str] = ()
) -> list[str]:
    """The process's argv; InvalidArgument when it comes out empty."""
    if command:
        argv = [*command, *args]
    else:
        entrypoint = [] if list(image.entrypoint) == [""] else list(image.entrypoint)
        argv = entrypoint + list(args or image.cmd)
    if not argv:
        raise InvalidArgument(
            "no command specified: the image has no entrypoint or cmd and the container gives none"
        )
    return argv


def merge_env(*layers: Iterable[str]) -> list[str]:
    """Merge ``KEY=value`` lists (see *environment merge*)."""
    values: dict[str, str | None] = {}
    for layer in layers:
        for entry in layer:
            key, sep, _ = entry.partition("=")
            if sep:
                values[key] = entry
            elif key in values:
                values[key] = None
    return [e for e in values.values() if e is not None]


def container_env(
    image: ImageConfig, envs: Sequence[tuple[str, str]], *, hostname: str
) -> list[str]:
    """The container's environment: default PATH, HOSTNAME, the image's, then the config's."""
    base = [f"PATH={DEFAULT_PATH}"]
    if hostname:
        base.append(f"HOSTNAME={hostname}")
    return merge_env(base, image.env, (f"{k}={v}" for k, v in envs))


def working_dir(config_dir: str, image: ImageConfig) -> str:
    """The config's working directory, else the image's, else ``/``."""
    cwd = config_dir or image.working_dir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"working directory {cwd!r} must be absolute")
    return cwd
