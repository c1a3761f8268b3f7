"""Ids as callers give them: full, or a unique prefix (crictl shows 13-character ids)."""

from __future__ import annotations

from collections.abc import Iterable

from cri.rpc.deps import Deps
from cri.translate.filters import resolve_id as match_id
from runtime.errors import InvalidArgument, NotFound
from runtime.model.pods import Container, Sandbox


def resolve_id(text: str, known: Iterable[str], *, what: str) -> str | None:
    """The full id ``text`` names among ``known``: itself, or the one id it is a prefix of.
    None when nothing matches; InvalidArgument when the prefix is ambiguous or empty."""
    if not text:
        raise InvalidArgument(f"{what} id is empty")
    ids = list(known)
    found = match_id(text, ids)
    if found is None:
        matches = sum(1 for candidate in ids if candidate.startswith(text))
        if matches > 1:
            raise InvalidArgument(f"{what} id prefix {text!r} is ambiguous: it matches {matches}")
    return found


def sandbox_id(deps: Deps, text: str) -> str | None:
    return resolve_id(text, (s.id for s in deps.pods.list_sandboxes()), what="pod sandbox")


def container_id(deps: Deps, text: str) -> str | None:
    return resolve_id(text, (c.id for c in deps.pods.list_containers()), what="container")


def require_sandbox(deps: Deps, text: str) -> Sandbox:
    """The sandbox ``text`` names; NotFound when there is none."""
    exact = deps.pods.get_sandbox(text)  # a full id (what the kubelet sends) needs no scan
    if exact is not None:
        return exact
    found = sandbox_id(deps, text)
    sandbox = deps.pods.get_sandbox(found) if found else None
    if sandbox is None:
        raise NotFound(f"pod sandbox {text} not found")
    return sandbox


def require_container(deps: Deps, text: str) -> Container:
    """The container ``text`` names; NotFound when there is none."""
    exact = deps.pods.get_container(text)  # a full id needs no scan
    if exact is not None:
        return exact
    found = container_id(deps, text)
    container = deps.pods.get_container(found) if found else None
    if container is None:
        raise NotFound(f"container {text} not found")
    return container
