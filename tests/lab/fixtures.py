"""pytest fixtures for the live lab.

Load them from a conftest.py with ``from tests.lab.fixtures import lab, shared_lab  # noqa: F401``
(or ``pytest_plugins = ["tests.lab.fixtures"]`` in the root conftest). Both skip, with the reason,
when the lab cannot run here (not root, no ``ip netns``, a tool missing). Teardown runs through a
finalizer, so it happens even when the test body raises.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .netlab import Lab, lab_unavailable_reason


def _start(request: pytest.FixtureRequest) -> Lab:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    request.addfinalizer(lab.close)
    lab.start()
    return lab


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A fresh lab for one test."""
    yield _start(request)


@pytest.fixture(scope="module")
def shared_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """One lab for a whole test module (faster; tests must not depend on a fresh cache)."""
    yield _start(request)
