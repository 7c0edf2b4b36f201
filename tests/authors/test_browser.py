"""The author and ops pages in real headless Chromium, driven by Playwright.

Playwright's own browser download is not used: the tests launch the system's Chromium
(Debian's ``chromium`` package, which the CI script installs). They save a screenshot of
each page they check under ``var/screenshots/`` (or ``BROWSER_SCREENSHOTS_DIR``) and print
where.
"""
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from registry import services
from registry.models import ExtensionVersion

from .conftest import AUTHORS_GROUP, OPS_STAFF_GROUP, make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-test-password"

if not Path(CHROMIUM).exists():
    if os.environ.get("REQUIRE_BROWSER_TESTS"):
        raise RuntimeError(f"Chromium was not found at {CHROMIUM}; install the chromium package or set CHROMIUM_PATH.")
    pytest.skip(f"Chromium was not found at {CHROMIUM}; install the chromium package to run these.", allow_module_level=True)


@pytest.fixture(scope="module")
def screenshots() -> Path:
    directory = Path(os.environ.get("BROWSER_SCREENSHOTS_DIR") or django_settings.BASE_DIR / "var" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def browser(settings):
    # Playwright's sync API runs an event loop in this thread, so Django's ORM would take the
    # test for async code. The test touches the database only between page actions.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def shoot(page, screenshots: Path, name: str) -> None:
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def sign_in_as_author(browser, live_server, username: str):
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/authors/sign-in/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/authors/")
    return page


def sign_in_to_admin(browser, live_server, username: str):
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page


def test_author_submits_ops_approves_author_sees_approval(browser, live_server, screenshots):
    make_user("ada", AUTHORS_GROUP)
    make_user("olga", OPS_STAFF_GROUP, is_staff=True)

    author_page = sign_in_as_author(browser, live_server, "ada")
    author_page.click("text=Submit a new extension")
    author_page.fill("#id_extension_id", "shout_text")
    author_page.select_option("#id_type", "pre")
    author_page.fill("#id_version", "1.0.0")
    author_page.fill("#id_subject", "beamline.ext.pre.shout_text.v1")
    author_page.fill("#id_timeout_ms", "100")
    author_page.fill("#id_retry", "0")
    author_page.fill("#id_description", "Upper-cases the message text.")
    for item in ("no_external_calls", "no_database_writes", "no_external_telemetry", "no_outside_state"):
        author_page.check(f"#id_{item}")
    author_page.click("text=Submit for review")
    error = author_page.locator("#field-side_effects .errorlist")
    assert "Describe the side effects" in error.inner_text()
    shoot(author_page, screenshots, "01-author-checklist-error")

    author_page.check("#id_idempotent")
    author_page.click("text=Submit for review")
    author_page.wait_for_url(f"{live_server.url}/authors/")
    row = author_page.locator("#version-shout_text-1\\.0\\.0")
    assert "pending review" in row.inner_text()
    shoot(author_page, screenshots, "02-author-pending")

    ops_page = sign_in_to_admin(browser, live_server, "olga")
    ops_page.goto(f"{live_server.url}/admin/registry/extensionversion/?review_status=pending")
    ops_page.check("input[name=_selected_action]")
    ops_page.select_option("select[name=action]", "approve_versions")
    ops_page.click("button[name=index]")
    ops_page.fill("#id_reason", "Checked the subject and the checklist.")
    shoot(ops_page, screenshots, "03-ops-approve-confirmation")
    ops_page.click("input[type=submit][value=Approve]")
    assert "Approved 1 version(s)." in ops_page.locator(".messagelist").inner_text()
    shoot(ops_page, screenshots, "04-ops-approved")

    author_page.reload()
    row = author_page.locator("#version-shout_text-1\\.0\\.0")
    assert "approved" in row.inner_text()
    assert "Checked the subject and the checklist." in row.inner_text()
    assert "active" in row.inner_text()
    shoot(author_page, screenshots, "05-author-sees-approved")

    version = ExtensionVersion.objects.get()
    assert version.review_status == "approved"
    assert version.reviewed_by == User.objects.get(username="olga")


def test_ops_mark_side_effect_free_in_bulk(browser, live_server, screenshots):
    make_user("olga", OPS_STAFF_GROUP, is_staff=True)
    for extension_id in ("detect_language", "extract_metadata", "audit_log"):
        services.create_extension(
            {
                "id": extension_id,
                "type": "pre",
                "subject": f"beamline.ext.pre.{extension_id}.v1",
                "timeout_ms": 100,
                "retry": 0,
                "metadata": {"side_effect_free": False, "description": f"{extension_id} for the browser test"},
            }
        )

    page = sign_in_to_admin(browser, live_server, "olga")
    page.goto(f"{live_server.url}/admin/registry/extension/")
    for extension_id in ("detect_language", "extract_metadata"):
        page.locator("tr", has_text=extension_id).locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "mark_side_effect_free")
    page.click("button[name=index]")
    assert "Mark side-effect free?" in page.content()
    shoot(page, screenshots, "06-ops-bulk-side-effect-free-confirmation")
    page.click("input[type=submit][value=\"Yes, I'm sure\"]")
    assert "Marked 2 extension(s) as side-effect free." in page.locator(".messagelist").inner_text()
    shoot(page, screenshots, "07-ops-bulk-side-effect-free-done")

    flags = dict(ExtensionVersion.objects.values_list("extension__extension_id", "side_effect_free"))
    assert flags == {"detect_language": True, "extract_metadata": True, "audit_log": False}
