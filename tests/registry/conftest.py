"""Fixtures for the registry tests: tokens, API clients, tenants and extensions."""
import copy
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from registry import services
from registry.models import Extension, Tenant

NORMALIZE_TEXT_ENTRY = {
    "id": "normalize_text",
    "type": "pre",
    "subject": "beamline.ext.pre.normalize_text.v1",
    "timeout_ms": 100,
    "retry": 0,
    "enabled": True,
    "metadata": {
        "side_effect_free": True,
        "description": "Text normalization - no external side effects",
    },
}

DEPENDS_ON_POLICY = {
    "policy_id": "acme-default",
    "tenant_id": "acme",
    "pre": [
        {"id": "normalize_text", "mode": "required", "depends_on": [], "config": {}},
        {"id": "detect_language", "mode": "required", "depends_on": [], "config": {}},
        {"id": "enrich_context", "mode": "required", "depends_on": ["normalize_text"], "config": {}},
    ],
}

SUBJECT_PREFIX = {
    "pre": "beamline.ext.pre.",
    "validator": "beamline.ext.validate.",
    "post": "beamline.ext.post.",
    "provider": "beamline.provider.",
}


def entry(extension_id: str, extension_type: str = "pre", **changes: Any) -> dict[str, Any]:
    """Return a valid registry entry for ``extension_id``, with ``changes`` applied."""
    document = {
        "id": extension_id,
        "type": extension_type,
        "subject": f"{SUBJECT_PREFIX[extension_type]}{extension_id}.v1",
        "timeout_ms": 100,
        "retry": 0,
        "enabled": True,
        "metadata": {"side_effect_free": True, "description": f"{extension_id} for tests"},
    }
    document.update(changes)
    return document


@pytest.fixture
def normalize_text_entry() -> dict[str, Any]:
    return copy.deepcopy(NORMALIZE_TEXT_ENTRY)


@pytest.fixture
def depends_on_policy() -> dict[str, Any]:
    return copy.deepcopy(DEPENDS_ON_POLICY)


@pytest.fixture
def tenant(db) -> Tenant:
    return services.create_tenant({"tenant_id": "acme", "name": "Acme", "description": "Test tenant"})


@pytest.fixture
def make_extension(db) -> Callable[..., Extension]:
    def make(extension_id: str, extension_type: str = "pre", **changes: Any) -> Extension:
        return services.create_extension(entry(extension_id, extension_type, **changes))

    return make


@pytest.fixture
def pipeline_extensions(make_extension) -> dict[str, Extension]:
    """The extensions the policy examples use, one of each stage's type."""
    return {
        "normalize_text": make_extension("normalize_text"),
        "detect_language": make_extension("detect_language"),
        "enrich_context": make_extension("enrich_context"),
        "schema_check": make_extension("schema_check", "validator"),
        "audit_log": make_extension("audit_log", "post", metadata={"side_effect_free": False}),
    }


def _client_with_token(scope: str, **token_options: Any) -> APIClient:
    token, secret = services.create_api_token(f"{scope}-client", scope, **token_options)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.token = token
    return client


@pytest.fixture
def write_client(db) -> APIClient:
    return _client_with_token("write")


@pytest.fixture
def read_client(db) -> APIClient:
    return _client_with_token("read")


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()
