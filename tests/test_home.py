"""The pages a new user lands on first."""
import pytest


@pytest.mark.django_db
def test_home_page_links_admin_and_api_docs(client):
    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/admin/"' in page
    assert 'href="/api/schema/docs/"' in page


def test_api_index_lists_endpoints_without_credentials(client):
    response = client.get("/api/v1/")

    assert response.status_code == 200
    endpoints = response.json()["endpoints"]
    assert endpoints["executions"] == "/api/v1/executions"
    assert endpoints["policies"] == "/api/v1/policies"


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/no-such-endpoint")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
