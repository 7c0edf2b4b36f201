"""Who may use the API: tokens by scope, staff by model permission."""
import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from rest_framework.test import APIClient

from registry import services
from registry.models import ApiToken, Extension

from .conftest import entry

pytestmark = pytest.mark.django_db


def test_unauthenticated_write_is_401(anonymous_client, normalize_text_entry):
    response = anonymous_client.post("/api/v1/extensions/", normalize_text_entry, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Extension.objects.exists()


def test_unauthenticated_read_is_401(anonymous_client):
    assert anonymous_client.get("/api/v1/policies/").status_code == 401


def test_read_token_can_read(read_client, make_extension):
    make_extension("normalize_text")

    response = read_client.get("/api/v1/extensions/normalize_text/")

    assert response.status_code == 200


def test_read_token_cannot_write(read_client, normalize_text_entry):
    response = read_client.post("/api/v1/extensions/", normalize_text_entry, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "write scope" in response.json()["error"]["message"]
    assert not Extension.objects.exists()


def test_revoked_token_is_401(write_client):
    services.revoke_api_token(write_client.token)

    response = write_client.get("/api/v1/extensions/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_token"


def test_unknown_token_is_401(anonymous_client):
    anonymous_client.credentials(HTTP_AUTHORIZATION="Bearer blc_not-a-real-token")

    response = anonymous_client.get("/api/v1/extensions/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_token_keyword_is_accepted(db):
    token, secret = services.create_api_token("router", "read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")

    response = client.get("/api/v1/extensions/")

    token.refresh_from_db()
    assert response.status_code == 200
    assert token.last_used_at is not None


def test_only_hash_of_secret_is_stored(db):
    token, secret = services.create_api_token("router", "write")

    assert secret not in token.secret_hash
    assert token.secret_hash == ApiToken.hash_secret(secret)


def test_write_token_records_its_user_as_creator(db):
    author = User.objects.create_user("author")
    _, secret = services.create_api_token("author-token", "write", user=author)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    client.post("/api/v1/extensions/", entry("normalize_text"), format="json")

    assert Extension.objects.get().versions.get().created_by == author


def test_staff_session_needs_model_permission(db):
    staff = User.objects.create_user("ops", is_staff=True)
    client = APIClient()
    client.force_login(staff)

    refused = client.get("/api/v1/extensions/")
    staff.user_permissions.add(Permission.objects.get(codename="view_extension"))
    allowed = client.get("/api/v1/extensions/")
    write_refused = client.post("/api/v1/extensions/", entry("normalize_text"), format="json")

    assert refused.status_code == 403
    assert allowed.status_code == 200
    assert write_refused.status_code == 403


def test_non_staff_session_is_refused(db):
    user = User.objects.create_user("someone")
    client = APIClient()
    client.force_login(user)

    assert client.get("/api/v1/extensions/").status_code == 403


def test_superuser_session_may_write(db):
    admin = User.objects.create_superuser("root", password="x")
    client = APIClient()
    client.force_login(admin)

    response = client.post("/api/v1/extensions/", entry("normalize_text"), format="json")

    assert response.status_code == 201


def test_create_api_token_command_prints_token_once(db, capsys):
    User.objects.create_user("router-bot")

    call_command("create_api_token", "router-prod", "--scope", "write", "--user", "router-bot")

    secret = capsys.readouterr().out.strip().splitlines()[-1]
    token = ApiToken.objects.get(name="router-prod")
    assert token.secret_hash == ApiToken.hash_secret(secret)
    assert token.scope == "write"
    assert token.user.username == "router-bot"


def test_method_not_allowed_has_code(write_client):
    response = write_client.delete("/api/v1/extensions/")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_malformed_json_has_code(write_client):
    response = write_client.post("/api/v1/extensions/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
