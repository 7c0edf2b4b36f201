"""Fixtures shared by every test package."""
from collections.abc import Iterator

import pytest

from executor.nats_server import LocalNatsServer


@pytest.fixture(scope="session")
def nats_server() -> Iterator[LocalNatsServer]:
    """A real NATS server on a free port of 127.0.0.1, started once for the test session."""
    with LocalNatsServer() as server:
        yield server
