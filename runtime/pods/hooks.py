"""Lifecycle hooks: what the pod controllers tell extensions (NRI plugins) and let them change.

The controllers call these at fixed points; ``cri/nri`` implements them for NRI plugins and
:class:`NoHooks` is the default. The points, and what a failure means:

=======================  ====================================================  ============
hook                     called                                                on error
=======================  ====================================================  ============
``run_pod_sandbox``      pod built, **before** its record is stored            the run fails
                         (List does not show it; it can get no containers)     and undoes
``update_pod_sandbox``   before a pod's new resources are applied             update fails
``post_update_pod_…``    after they are recorded                               logged
``stop_pod_sandbox``     the pod's containers stopped (still listed EXITED),   logged
                         before its network and namespaces are released
``remove_pod_sandbox``   after the pod's record is gone                        logged
``create_container``     OCI spec built (CDI applied), **before** it is        the create
                         written and the container is visible; may adjust it   fails
``post_create_…``        after the record is stored                            logged
``start_container``      before the task is created                            start fails
``post_start_…``         after the container is RUNNING                        logged
``update_container``     before new resources are applied; returns what to     update fails
                         apply
``post_update_…``        after they are applied                                logged
``stop_container``       once per container, after its exit is recorded        logged
                         (a stop, or an exit on its own seen by the monitor)
``remove_container``     after the container's record is gone                  logged
=======================  ====================================================  ============

``creating()`` is entered around each container creation, from before the create hook until
the record is stored: an extension that must see every container (a plugin synchronizing
as it registers) waits for creations in flight and holds new ones meanwhile.

Hooks are awaited without any lock that List or Status take; the implementation bounds how
long each may block.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from runtime.model.pods import Container, Resources, Sandbox


class PodHooks(Protocol):
    """Extension points of the sandbox and container lifecycles (see the module docs)."""

    def creating(self) -> AbstractAsyncContextManager[None]: ...

    async def run_pod_sandbox(self, sandbox: Sandbox) -> None: ...

    async def update_pod_sandbox(
        self, sandbox: Sandbox, *, overhead: Resources | None, resources: Resources | None
    ) -> None: ...

    async def post_update_pod_sandbox(self, sandbox: Sandbox) -> None: ...

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None: ...

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None: ...

    async def create_container(
        self, sandbox: Sandbox, container: Container, spec: dict[str, Any]
    ) -> None:
        """May change ``spec`` (the OCI runtime spec about to be written) in place."""
        ...

    async def post_create_container(self, sandbox: Sandbox, container: Container) -> None: ...

    async def start_container(self, sandbox: Sandbox, container: Container) -> None: ...

    async def post_start_container(self, sandbox: Sandbox, container: Container) -> None: ...

    async def update_container(
        self, sandbox: Sandbox, container: Container, resources: Resources
    ) -> Resources: ...

    async def post_update_container(self, sandbox: Sandbox, container: Container) -> None: ...

    async def stop_container(self, sandbox: Sandbox, container: Container) -> None: ...

    async def remove_container(self, sandbox: Sandbox, container: Container) -> None: ...


class NoHooks:
    """No extensions: every hook does nothing."""

    @contextlib.asynccontextmanager
    async def _nothing(self) -> AsyncIterator[None]:
        yield

    def creating(self) -> AbstractAsyncContextManager[None]:
        return self._nothing()

    async def run_pod_sandbox(self, sandbox: Sandbox) -> None:
        return None

    async def update_pod_sandbox(
        self, sandbox: Sandbox, *, overhead: Resources | None, resources: Resources | None
    ) -> None:
        return None

    async def post_update_pod_sandbox(self, sandbox: Sandbox) -> None:
        return None

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        return None

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        return None

    async def create_container(
        self, sandbox: Sandbox, container: Container, spec: dict[str, Any]
    ) -> None:
        return None

    async def post_create_container(self, sandbox: Sandbox, container: Container) -> None:
        return None

    async def start_container(self, sandbox: Sandbox, container: Container) -> None:
        return None

    async def post_start_container(self, sandbox: Sandbox, container: Container) -> None:
        return None

    async def update_container(
        self, sandbox: Sandbox, container: Container, resources: Resources
    ) -> Resources:
        return resources

    async def post_update_container(self, sandbox: Sandbox, container: Container) -> None:
        return None

    async def stop_container(self, sandbox: Sandbox, container: Container) -> None:
        return None

    async def remove_container(self, sandbox: Sandbox, container: Container) -> None:
        return None
