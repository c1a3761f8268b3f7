"""The long runs, only with ``scripts/check.sh --soak`` (PINNACE_SOAK=1): they use the e2e
fixtures (registries, daemons) and are skipped otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import pinnaced, registry  # noqa: F401 - fixtures for this directory

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PINNACE_SOAK"):
        return
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.skip(reason="soak: run with scripts/check.sh --soak"))
