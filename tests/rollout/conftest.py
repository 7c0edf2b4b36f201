"""Fixtures for the rollout tests: a clean flag environment, actors, API clients and policies."""
import pytest
from rest_framework.test import APIClient

from registry import services as registry_services
from rollout.flags import FLAGS
from rollout.models import FlagChange
from rollout.services import Actor

TEST_ACTOR = Actor("tester", FlagChange.Through.COMMAND)


@pytest.fixture(autouse=True)
def clean_flag_environment(monkeypatch):
    """Unset every flag variable, so a test reads only the environment it sets itself."""
    for flag in FLAGS:
        monkeypatch.delenv(flag.environment_variable, raising=False)


@pytest.fixture
def actor():
    return TEST_ACTOR


def token_client(scope):
    _, secret = registry_services.create_api_token(f"{scope}-client", scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def write_client(db):
    return token_client("write")


@pytest.fixture
def read_client(db):
    return token_client("read")


@pytest.fixture
def policies(db):
    """Two routing policies of tenant acme, with no steps."""
    registry_services.create_tenant({"tenant_id": "acme", "name": "Acme"})
    return [
        registry_services.create_policy({"policy_id": policy_id, "tenant_id": "acme", "pre": []})
        for policy_id in ("acme-default", "acme-bulk")
    ]
