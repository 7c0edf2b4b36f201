"""The determinism probe against live extensions on a real NATS server."""
import nats
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from executor.core.extension_service import serve_extension
from executor.probe import first_difference, load_messages, probe_and_record, probe_subject
from executor.snapshot_loader import extension_spec
from registry import services
from registry.models import Extension, ExtensionVersion

from .conftest import counting_handler, echo_upper_handler

pytestmark = pytest.mark.nats

COUNTER_SUBJECT = "beamline.ext.pre.count_calls.v1"
UPPER_SUBJECT = "beamline.ext.pre.shout_text.v1"


def entry(extension_id, subject, side_effect_free=True):
    return {
        "id": extension_id,
        "type": "pre",
        "subject": subject,
        "timeout_ms": 100,
        "retry": 0,
        "metadata": {"side_effect_free": side_effect_free, "description": "probe test"},
    }


async def test_probe_catches_counter_in_reply(nats_server):
    nc = await nats.connect(nats_server.url)
    messages = load_messages(count=3)

    async with await serve_extension(nc, COUNTER_SUBJECT, counting_handler(), queue="q"):
        result = await probe_subject(nc, COUNTER_SUBJECT, messages, timeout_s=2)
    await nc.close()

    assert result.status == "failed"
    assert result.detail.startswith(f"Message {messages[0]['message_id']} (sample 1): the second send")
    assert "at metadata.calls: 1 then 2." in result.detail


async def test_probe_catches_timestamp_in_concurrent_sends(nats_server):
    nc = await nats.connect(nats_server.url)
    sends = 0

    async def stamp_after_two(request):
        # Equal replies in a row; only the concurrent pair differs, as a clock read would.
        nonlocal sends
        sends += 1
        return {"metadata": {"stamped_at": 0 if sends <= 2 else sends}}

    async with await serve_extension(nc, "beamline.ext.pre.stamp.v1", stamp_after_two, queue="q"):
        result = await probe_subject(nc, "beamline.ext.pre.stamp.v1", load_messages(count=1), timeout_s=2)
    await nc.close()

    assert result.status == "failed"
    assert "made at the same time" in result.detail
    assert "metadata.stamped_at" in result.detail


async def test_probe_passes_deterministic_extension(nats_server):
    nc = await nats.connect(nats_server.url)

    async with await serve_extension(nc, UPPER_SUBJECT, echo_upper_handler, queue="q"):
        result = await probe_subject(nc, UPPER_SUBJECT, load_messages(), timeout_s=2)
    await nc.close()

    assert result.status == "passed"
    assert "All 5 sample messages" in result.detail


async def test_probe_reports_no_responders(nats_server):
    nc = await nats.connect(nats_server.url)

    with pytest.raises(Exception) as raised:
        await probe_subject(nc, "beamline.ext.pre.nobody_home.v1", load_messages(count=1), timeout_s=1)
    await nc.close()

    assert "No extension listens on beamline.ext.pre.nobody_home.v1" in str(raised.value)


def test_first_difference_names_the_key():
    assert first_difference({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}}) == "b.c[1]"
    assert first_difference({"a": 1}, {"a": 1, "z": 0}) == "z"
    assert first_difference({"a": 1}, {"a": 1}) is None
    assert first_difference("text", {"a": 1}) == "(the whole reply)"


@pytest.mark.django_db
def test_failed_probe_is_recorded_and_demotes_in_snapshot(nats_server, serve_in_thread):
    extension = services.create_extension(entry("count_calls", COUNTER_SUBJECT))
    serve_in_thread(COUNTER_SUBJECT, counting_handler())

    [(version, result)] = probe_and_record([extension.active_version], nats_url=nats_server.url)
    spec = extension_spec(Extension.objects.get())

    version.refresh_from_db()
    assert result.status == "failed"
    assert version.probe_status == "failed"
    assert "metadata.calls" in version.probe_detail
    assert version.probed_at is not None
    assert version.side_effect_free is True
    assert spec.side_effect_free is False


@pytest.mark.django_db
def test_passing_probe_restores_side_effect_free(nats_server, serve_in_thread):
    extension = services.create_extension(entry("shout_text", UPPER_SUBJECT))
    services.record_probe_result(extension.active_version, "failed", "an earlier failure")
    serve_in_thread(UPPER_SUBJECT, echo_upper_handler)

    call_command("probe_extension", "shout_text", "--nats-url", nats_server.url, "--count", "2")

    version = ExtensionVersion.objects.get()
    assert version.probe_status == "passed"
    assert extension_spec(Extension.objects.get()).side_effect_free is True


@pytest.mark.django_db
def test_command_fails_and_records_on_difference(nats_server, serve_in_thread, tmp_path):
    services.create_extension(entry("count_calls", COUNTER_SUBJECT))
    serve_in_thread(COUNTER_SUBJECT, counting_handler())
    messages_file = tmp_path / "messages.jsonl"
    messages_file.write_text('{"message_id": "only-one", "payload": {"text": "hi"}}\n')

    with pytest.raises(CommandError) as raised:
        call_command("probe_extension", "count_calls", "--nats-url", nats_server.url, "--messages", str(messages_file))

    assert "probe failed" in str(raised.value)
    assert "Message only-one" in str(raised.value)
    assert ExtensionVersion.objects.get().probe_status == "failed"


@pytest.mark.django_db
def test_command_records_error_without_responders(nats_server):
    services.create_extension(entry("nobody_home", "beamline.ext.pre.nobody_home.v1"))

    with pytest.raises(CommandError) as raised:
        call_command("probe_extension", "nobody_home", "--nats-url", nats_server.url, "--count", "1")

    assert "probe error" in str(raised.value)
    assert ExtensionVersion.objects.get().probe_status == "error"


@pytest.mark.django_db
def test_admin_action_probes_active_version(nats_server, serve_in_thread, ops_client):
    extension = services.create_extension(entry("count_calls", COUNTER_SUBJECT))
    serve_in_thread(COUNTER_SUBJECT, counting_handler())

    with override_settings(NATS_URL=nats_server.url):
        response = ops_client.post(
            "/admin/registry/extension/",
            {"action": "probe_active_versions", "_selected_action": [str(extension.pk)]},
            follow=True,
        )

    version = ExtensionVersion.objects.get()
    assert response.status_code == 200
    assert "probe failed" in response.content.decode()
    assert version.probe_status == "failed"


@pytest.mark.django_db
def test_new_subject_forgets_probe_result(nats_server):
    extension = services.create_extension(entry("count_calls", COUNTER_SUBJECT))
    services.record_probe_result(extension.active_version, "failed", "differs")

    services.patch_extension(extension, {"subject": "beamline.ext.pre.count_calls.v2"})

    assert ExtensionVersion.objects.get().probe_status == "not_run"
