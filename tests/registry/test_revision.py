"""The registry revision: every change bumps it, and the change notice follows the commit."""
import threading

import pytest
from django.db import connection, transaction

from registry import notices, services, transfer
from registry.revision import bump_revision, current_revision

from .conftest import entry

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    revisions = []
    monkeypatch.setattr(notices, "publish_change_notice", revisions.append)
    return revisions


def test_bump_publishes_after_commit(published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        revision = bump_revision()
        assert published == []

    assert len(callbacks) == 1
    assert published == [revision]
    assert current_revision() == revision


def test_rolled_back_change_publishes_nothing(published, django_capture_on_commit_callbacks):
    before = current_revision()

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            bump_revision()
            raise RuntimeError("roll back")

    assert published == []
    assert current_revision() == before


CHANGES = {
    "create_tenant": lambda ctx: services.create_tenant({"tenant_id": "globex", "name": "Globex"}),
    "update_tenant": lambda ctx: services.update_tenant(ctx["tenant"], {"name": "Acme Corp"}),
    "delete_tenant": lambda ctx: services.delete_tenant(services.create_tenant({"tenant_id": "gone", "name": "Gone"})),
    "create_extension": lambda ctx: services.create_extension(entry("extract_metadata")),
    "update_extension": lambda ctx: services.update_extension(ctx["normalize_text"], entry("normalize_text", retry=1)),
    "patch_extension": lambda ctx: services.patch_extension(ctx["normalize_text"], {"enabled": False}),
    "set_side_effect_free": lambda ctx: services.set_side_effect_free(ctx["normalize_text"], False),
    "delete_extension": lambda ctx: services.delete_extension(ctx["detect_language"]),
    "create_version": lambda ctx: services.create_version(ctx["normalize_text"], {"version": "9"}),
    "activate_version": lambda ctx: services.activate_version(
        services.create_version(ctx["normalize_text"], {"version": "9"})
    ),
    "create_policy": lambda ctx: services.create_policy(
        {"policy_id": "p2", "tenant_id": "acme", "pre": [{"id": "normalize_text", "mode": "required"}]}
    ),
    "replace_policy": lambda ctx: services.replace_policy(ctx["policy"], {"tenant_id": "acme", "post": []}),
    "patch_policy": lambda ctx: services.patch_policy(ctx["policy"], {"sticky": True}),
    "delete_policy": lambda ctx: services.delete_policy(ctx["policy"]),
    "import_registry": lambda ctx: transfer.import_registry({"tenants": [{"tenant_id": "new", "name": "New"}]}),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_bumps_and_publishes(change, pipeline_extensions, tenant, published, django_capture_on_commit_callbacks):
    policy = services.create_policy({"policy_id": "p1", "tenant_id": "acme", "pre": [{"id": "normalize_text", "mode": "required"}]})
    context = {"tenant": tenant, "policy": policy, **pipeline_extensions}
    before = current_revision()

    with django_capture_on_commit_callbacks(execute=True):
        CHANGES[change](context)

    assert current_revision() > before
    assert published[-1] == current_revision()


def test_rejected_change_does_not_bump(tenant):
    before = current_revision()

    with pytest.raises(Exception):
        services.create_policy({"policy_id": "p", "tenant_id": "acme", "pre": [{"id": "ghost", "mode": "required"}]})

    assert current_revision() == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_bumps_lose_nothing():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's in-memory test database does not share one write lock across threads")
    bumps_per_thread, thread_count = 5, 8
    seen: list[int] = []
    errors: list[BaseException] = []

    def bump_many():
        try:
            for _ in range(bumps_per_thread):
                with transaction.atomic():
                    seen.append(bump_revision())
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=bump_many) for _ in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(seen) == list(range(1, bumps_per_thread * thread_count + 1))
    assert current_revision() == bumps_per_thread * thread_count
