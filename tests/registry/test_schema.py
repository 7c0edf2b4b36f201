"""The OpenAPI schema and its docs page."""
import pytest

pytestmark = pytest.mark.django_db


def test_schema_lists_registry_paths(admin_client):
    response = admin_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    paths = response.json()["paths"]
    assert response.status_code == 200
    assert "/api/v1/extensions/" in paths or "/api/v1/extensions" in paths
    assert any("activate" in path for path in paths)


def test_docs_page_loads_swagger_from_this_server(admin_client):
    response = admin_client.get("/api/schema/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "swagger-ui" in page
    assert "cdn.jsdelivr.net" not in page
