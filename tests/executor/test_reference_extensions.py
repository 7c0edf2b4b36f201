"""The reference extensions: each handler as a pure function, then as NATS services, then the demo data."""
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest

from bench import traffic
from executor.extensions import (
    audit_log,
    detect_language,
    enrich_context,
    extract_metadata,
    mask_pii,
    normalize_text,
    pii_guard,
)
from executor.extensions.registry import EXTENSIONS_BY_ID, REFERENCE_EXTENSIONS, ReferenceExtension
from executor.extensions.service import serve_reference_extensions, stop_servers

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEMO_REGISTRY = PROJECT_DIR / "executor" / "extensions" / "demo_registry.json"
MESSAGES = [json.loads(line) for line in (PROJECT_DIR / "bench" / "messages" / "messages.jsonl").open(encoding="utf-8")]
MESSAGES_BY_ID = {message["message_id"]: message for message in MESSAGES}


def request_for(text, **extra):
    message = {"message_id": "m-1", "message_type": "text", "payload": {"text": text}, "metadata": {}}
    return {"trace_id": "trace-1", "tenant_id": "tenant-parallel", "payload": message,
            "metadata": {"policy_id": "policy-parallel-demo"}, **extra}


def request_with_message(message):
    return {"trace_id": "trace-1", "tenant_id": "tenant-parallel", "payload": message,
            "metadata": {"policy_id": "policy-parallel-demo"}}


# normalize_text


def test_normalize_applies_nfkc_whitespace_and_casefold():
    assert normalize_text.normalize("  Ｆｕｌｌ\u00a0WIDTH\t\n Straße ") == "full width strasse"


def test_normalize_handler_adds_normalized_text_and_keeps_original():
    request = request_for("Hello   WORLD")

    reply = normalize_text.handle(request)

    assert reply["payload"]["normalized_text"] == "hello world"
    assert reply["payload"]["payload"] == {"text": "Hello   WORLD"}
    assert reply["payload"]["message_id"] == "m-1"
    assert reply["metadata"] == {"normalized": True}


def test_normalize_accepts_text_as_plain_string_payload():
    message = {"message_id": "m-2", "message_type": "text", "payload": "ÉCOLE", "metadata": {}}

    reply = normalize_text.handle(request_with_message(message))

    assert reply["payload"]["normalized_text"] == "école"
    assert reply["payload"]["payload"] == "ÉCOLE"


@pytest.mark.parametrize(
    "message",
    [
        {"message_id": "m", "message_type": "text", "payload": {"image": "..."}, "metadata": {}},
        {"message_id": "m", "message_type": "text", "payload": 42, "metadata": {}},
        "not a message object",
    ],
    ids=["object-without-text", "number", "message-not-object"],
)
def test_normalize_without_text_replies_invalid_message(message):
    reply = normalize_text.handle(request_with_message(message))

    assert reply["error"]["code"] == "invalid_message"
    assert reply["error"]["message"]


# detect_language


@pytest.mark.parametrize("language", ["en", "fr", "de", "es", "it", "pt", "nl", "ru", "pl", "tr", "ja", "zh", "ar"])
def test_detect_language_identifies_udhr_article_1(language):
    message = MESSAGES_BY_ID[f"udhr-{language}-art01"]

    reply = detect_language.handle(request_with_message(message))

    assert reply["metadata"]["language"] == language
    assert 0.5 < reply["metadata"]["language_confidence"] <= 1.0


def test_detect_language_without_letters_is_undetermined():
    reply = detect_language.handle(request_for("12 345 !!"))

    assert reply == {"metadata": {"language": "und", "language_confidence": 0.0}}


def test_detect_language_identifies_most_of_message_set():
    correct = sum(
        detect_language.detect(message["payload"]["text"])[0] == message["metadata"]["language"]
        for message in MESSAGES
    )

    # Short articles of close languages (Spanish and Portuguese) can be mistaken.
    assert correct >= 0.9 * len(MESSAGES)


# extract_metadata


def test_extract_finds_links_addresses_mentions_hashtags():
    text = ("Hi @maria_lopez, notes at https://example.com/notes?id=4#top, write to ops.team@example.org "
            "or @maria_lopez again #release #2024 #Beamline.")

    extracted = extract_metadata.extract(text)

    assert extracted["urls"] == ["https://example.com/notes?id=4#top"]
    assert extracted["emails"] == ["ops.team@example.org"]
    assert extracted["mentions"] == ["maria_lopez"]
    assert extracted["hashtags"] == ["release", "Beamline"]
    assert extracted["char_count"] == len(text)


def test_extract_counts_words_in_spaced_and_unspaced_scripts():
    assert extract_metadata.extract("Alle Menschen sind frei.")["word_count"] == 4
    assert extract_metadata.extract("人人生而自由")["word_count"] == 6


def test_extract_handler_writes_extracted_into_context():
    reply = extract_metadata.handle(request_for("mail me: a@example.com"))

    assert set(reply) == {"metadata"}
    assert reply["metadata"]["extracted"]["emails"] == ["a@example.com"]
    assert reply["metadata"]["extracted"]["mentions"] == []


# enrich_context


def test_enrich_reads_normalized_text_for_keywords():
    message = {"message_id": "m", "message_type": "text", "payload": {"text": "ignored"}, "metadata": {},
               "normalized_text": "rights and dignity and rights of every person and rights"}

    reply = enrich_context.handle(request_with_message(message))

    enriched = reply["metadata"]["enriched_context"]
    assert enriched["keywords"] == ["rights", "dignity", "every", "person"]
    assert enriched["word_frequencies"][:2] == [{"word": "rights", "count": 3}, {"word": "and", "count": 3}]
    assert enriched["word_count"] == 10


def test_enrich_after_normalize_uses_its_output():
    normalized = normalize_text.handle(request_for("Freedom, FREEDOM and  Justice"))

    reply = enrich_context.handle(request_with_message(normalized["payload"]))

    assert reply["metadata"]["enriched_context"]["keywords"] == ["freedom", "justice"]


def test_enrich_without_normalized_text_replies_missing_dependency():
    reply = enrich_context.handle(request_for("Freedom and justice"))

    assert reply["error"]["code"] == "missing_dependency"
    assert "normalize_text" in reply["error"]["message"]


def test_enrich_honours_config_and_rejects_bad_config():
    message = {"message_id": "m", "payload": "x", "normalized_text": "alpha beta gamma alpha"}

    limited = enrich_context.handle({**request_with_message(message), "config": {"max_keywords": 1}})
    invalid = enrich_context.handle({**request_with_message(message), "config": {"max_keywords": "many"}})

    assert limited["metadata"]["enriched_context"]["keywords"] == ["alpha"]
    assert invalid["error"]["code"] == "invalid_config"


# pii_guard


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Please charge my card 4111 1111 1111 1111, expiry 12/30", "credit_card"),
        ("card 4111-1111-1111-1111", "credit_card"),
        ("number 5500000000000004 on file", "credit_card"),
        ("my SSN is 078-05-1120", "us_ssn"),
        ("NI number AB 12 34 56 C", "uk_nino"),
    ],
    ids=["card-spaced", "card-hyphens", "card-plain", "ssn", "nino"],
)
def test_pii_guard_rejects_card_and_national_ids(text, kind):
    reply = pii_guard.handle(request_for(text))

    assert reply["status"] == "reject"
    assert kind in reply["reason"]
    assert reply["details"]["kinds"] == [kind]
    assert reply["details"]["counts"] == {kind: 1}


def test_pii_guard_reject_details_hide_the_values():
    reply = pii_guard.handle(request_for("card 4111 1111 1111 1111"))

    assert "4111" not in json.dumps(reply)


@pytest.mark.parametrize(
    "text",
    [
        "order number 4111 1111 1111 1112",
        "call +1 (555) 010-0199 tomorrow",
        "adopted on 1948-12-10",
        "serial 000-12-3456",
        "All human beings are born free and equal in dignity and rights.",
    ],
    ids=["non-luhn-number", "phone", "date", "invalid-ssn-area", "plain-text"],
)
def test_pii_guard_passes_text_without_pii(text):
    assert pii_guard.handle(request_for(text)) == {"status": "ok"}


def test_pii_guard_finds_card_joined_with_other_numbers():
    assert pii_guard.count_card_numbers("card 4111 1111 1111 1111 exp 12 30") == 1


def test_passes_luhn_matches_known_numbers():
    assert pii_guard.passes_luhn("79927398713")
    assert pii_guard.passes_luhn("4111111111111111")
    assert not pii_guard.passes_luhn("4111111111111112")


def test_pii_guard_rejects_synthetic_pii_messages():
    rejected = {
        message["message_id"]
        for message in MESSAGES
        if pii_guard.handle(request_with_message(message))["status"] == "reject"
    }

    assert rejected == {"synthetic-card-payment", "synthetic-card-es", "synthetic-payroll-ssn",
                        "synthetic-nino-update"}


# mask_pii


def test_mask_replaces_emails_and_phones():
    masked, counts = mask_pii.mask("Call +44 20 7946 0958 or (030) 1234-5678, mail jo.doe@example.com.")

    assert masked == "Call [phone] or [phone], mail [email]."
    assert counts == {"emails": 1, "phones": 2}


@pytest.mark.parametrize(
    "text",
    ["adopted on 1948-12-10", "Article 9 of 1948", "SSN 078-05-1120", "card 4111 1111 1111 1111"],
    ids=["date", "year", "ssn", "card-number"],
)
def test_mask_leaves_non_phone_numbers(text):
    assert mask_pii.mask(text) == (text, {"emails": 0, "phones": 0})


def test_mask_handler_keeps_payload_shape():
    message = {"message_id": "m", "message_type": "text", "payload": {"text": "mail A@Example.com", "lang": "en"},
               "metadata": {}, "normalized_text": "mail a@example.com"}

    reply = mask_pii.handle(request_with_message(message))

    assert reply["payload"]["payload"] == {"text": "mail [email]", "lang": "en"}
    assert reply["payload"]["normalized_text"] == "mail [email]"
    assert reply["metadata"] == {"pii_masked": {"emails": 1, "phones": 0}}


def test_mask_handler_masks_plain_string_payload():
    message = {"message_id": "m", "message_type": "text", "payload": "ring 020 123 4567", "metadata": {}}

    reply = mask_pii.handle(request_with_message(message))

    assert reply["payload"]["payload"] == "ring [phone]"


# audit_log


def test_audit_log_appends_line_and_echoes_input(tmp_path):
    path = tmp_path / "audit" / "log.jsonl"
    request = request_for("secret text", config={"path": str(path)})

    reply = audit_log.handle_with_clock(request, clock=lambda: 0.0)

    assert reply == {"payload": request["payload"], "metadata": request["metadata"]}
    [line] = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["seen_at"] == "1970-01-01T00:00:00.000+00:00"
    assert record["message_id"] == "m-1"
    assert record["tenant_id"] == "tenant-parallel"
    assert record["policy_id"] == "policy-parallel-demo"
    assert record["trace_id"] == "trace-1"
    assert record["text_length"] == len("secret text")
    assert "secret text" not in line


def test_audit_log_path_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "from-env.jsonl"
    monkeypatch.setenv(audit_log.PATH_ENVIRONMENT_VARIABLE, str(path))

    audit_log.handle(request_for("one"))
    audit_log.handle(request_for("two"))

    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_audit_log_unwritable_path_replies_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    reply = audit_log.handle(request_for("x", config={"path": str(blocker / "log.jsonl")}))

    assert reply["error"]["code"] == "audit_write_failed"


# The services over NATS


async def request_json(nc, subject, body, timeout=5):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await nc.request(subject, data, timeout=timeout)
    return json.loads(reply.data)


@pytest.fixture
async def nats_client(nats_server):
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture
async def served_extensions(nats_client, tmp_path, monkeypatch):
    monkeypatch.setenv(audit_log.PATH_ENVIRONMENT_VARIABLE, str(tmp_path / "audit.jsonl"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        servers = await serve_reference_extensions(nats_client, REFERENCE_EXTENSIONS, pool, max_concurrency=8)
        yield servers
        await stop_servers(servers)


@pytest.mark.nats
async def test_services_answer_on_their_subjects(nats_client, served_extensions):
    request = request_for("Bonjour @lucie, écris à lucie@example.net")

    replies = {
        extension.id: await request_json(nats_client, extension.subject, request)
        for extension in REFERENCE_EXTENSIONS
    }

    assert replies["normalize_text"]["payload"]["normalized_text"] == "bonjour @lucie, écris à lucie@example.net"
    assert replies["detect_language"]["metadata"]["language"] == "fr"
    assert replies["extract_metadata"]["metadata"]["extracted"]["mentions"] == ["lucie"]
    assert replies["enrich_context"]["error"]["code"] == "missing_dependency"
    assert replies["audit_log"]["payload"] == request["payload"]
    assert replies["pii_guard"] == {"status": "ok"}
    assert replies["mask_pii"]["payload"]["payload"]["text"] == "Bonjour @lucie, écris à [email]"


@pytest.mark.nats
async def test_malformed_request_gets_error_and_service_survives(nats_client, served_extensions):
    subject = EXTENSIONS_BY_ID["normalize_text"].subject

    not_json = await request_json(nats_client, subject, b"{not json")
    no_message = await request_json(nats_client, subject, {"payload": "just a string"})
    afterwards = await request_json(nats_client, subject, request_for("Still HERE"))

    assert not_json["error"]["code"] == "invalid_request"
    assert no_message["error"]["code"] == "invalid_message"
    assert afterwards["payload"]["normalized_text"] == "still here"


@pytest.mark.nats
async def test_service_handles_requests_concurrently(nats_client):
    def slow_echo(request):
        time.sleep(0.05)
        return {"metadata": {"seen": request["payload"]["message_id"]}}

    slow = ReferenceExtension(id="slow_echo", type="pre", subject="test.ext.pre.slow_echo.v1", handle=slow_echo,
                              side_effect_free=True, description="Sleeps 50 ms.", timeout_ms=1000, retry=0)
    with ThreadPoolExecutor(max_workers=20) as pool:
        servers = await serve_reference_extensions(nats_client, [slow], pool, max_concurrency=20)
        started = time.perf_counter()
        replies = await asyncio.gather(*(request_json(nats_client, slow.subject, request_for(str(i)))
                                         for i in range(20)))
        elapsed = time.perf_counter() - started
        await stop_servers(servers)

    assert len(replies) == 20
    assert elapsed < 0.5  # one at a time would take 20 × 50 ms = 1 s


@pytest.mark.nats
async def test_entry_point_serves_and_stops_on_sigterm(nats_server, nats_client, tmp_path):
    environment = {**os.environ, "BEAMLINE_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    command = [sys.executable, "-m", "executor.extensions", "--nats-url", nats_server.url,
               "--only", "normalize_text,detect_language", "--max-concurrency", "4"]
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        reply = None
        for _ in range(100):  # up to about 10 s for the process and the language model to load
            try:
                reply = await request_json(nats_client, EXTENSIONS_BY_ID["detect_language"].subject,
                                           request_for("Alle Menschen sind frei"), timeout=0.1)
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    log_messages = [json.loads(line)["message"] for line in log.splitlines()]
    assert reply is not None, "the extensions did not answer within 10 s"
    assert reply["metadata"]["language"] == "de"
    assert process.returncode == 0
    assert "Reference extensions started" in log_messages
    assert "Reference extensions stopped" in log_messages


# bench.traffic against a stand-in executor


@pytest.mark.nats
async def test_traffic_reports_outcomes_per_tenant_and_mode(nats_server, nats_client):
    async def fake_executor(msg):
        request = json.loads(msg.data)
        mode = "parallel" if request["tenant_id"] == "tenant-parallel" else "sequential"
        status = "rejected" if "4111" in request["payload"]["payload"]["text"] else "ok"
        reply = {"status": status, "payload": request["payload"], "metadata": {},
                 "execution": {"mode": mode, "stages": [], "latency_ms": 1.5}}
        await msg.respond(json.dumps(reply).encode())

    subscription = await nats_client.subscribe(traffic.EXECUTE_SUBJECT, cb=fake_executor)
    options = traffic.TrafficOptions(nats_url=nats_server.url, messages=MESSAGES, rounds=2, duration_s=1,
                                     concurrency=8, timeout_s=2)
    outcomes, rounds_sent, _ = await traffic.run_traffic(options)
    await subscription.unsubscribe()

    rows = {(row[0], row[1]): row for row in traffic.summary_rows(outcomes)}
    card_like = sum("4111" in message["payload"]["text"] for message in MESSAGES)
    assert rounds_sent == 2
    assert set(rows) == {("tenant-parallel", "parallel"), ("tenant-sequential", "sequential")}
    assert rows[("tenant-parallel", "parallel")][2:6] == [
        str(2 * len(MESSAGES)), str(2 * (len(MESSAGES) - card_like)), str(2 * card_like), "0"
    ]
    assert rows[("tenant-parallel", "parallel")][8] == "1.5"


@pytest.mark.nats
async def test_traffic_without_executor_says_to_start_it(nats_server):
    options = traffic.TrafficOptions(nats_url=nats_server.url, messages=MESSAGES[:1], rounds=1, duration_s=1,
                                     concurrency=1, timeout_s=2)

    with pytest.raises(traffic.TrafficError, match="make run"):
        await traffic.run_traffic(options)


def test_traffic_nats_url_precedence(tmp_path):
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps({"nats_url": "nats://127.0.0.1:4333", "console_url": "http://127.0.0.1:8000"}))

    assert traffic.resolve_nats_url("nats://flag:1", {"NATS_URL": "nats://env:2"}, run_file) == "nats://flag:1"
    assert traffic.resolve_nats_url(None, {"NATS_URL": "nats://env:2"}, run_file) == "nats://env:2"
    assert traffic.resolve_nats_url(None, {}, run_file) == "nats://127.0.0.1:4333"
    with pytest.raises(traffic.TrafficError, match="make run"):
        traffic.resolve_nats_url(None, {}, tmp_path / "missing.json")


def test_traffic_percentile_is_nearest_rank():
    values = [float(value) for value in range(1, 101)]

    assert traffic.percentile(values, 0.5) == 50.0
    assert traffic.percentile(values, 0.95) == 95.0
    assert traffic.percentile([7.0], 0.95) == 7.0


# Demo registry data

SUBJECT_PATTERN = re.compile(r"beamline\.ext\.(pre|validate|post)\.([a-z][a-z0-9_]*)\.v[1-9][0-9]*")
SUBJECT_PART_BY_TYPE = {"pre": "pre", "validator": "validate", "post": "post"}
TYPE_BY_STAGE = {"pre": "pre", "validators": "validator", "post": "post"}


@pytest.fixture(scope="module")
def demo_registry():
    return json.loads(DEMO_REGISTRY.read_text(encoding="utf-8"))


def test_demo_extensions_follow_registry_contract(demo_registry):
    for entry in demo_registry["extensions"]:
        match = SUBJECT_PATTERN.fullmatch(entry["subject"])
        assert set(entry) == {"id", "type", "subject", "timeout_ms", "retry", "enabled", "metadata"}, entry["id"]
        assert re.fullmatch(r"[a-z][a-z0-9_]*", entry["id"]), entry["id"]
        assert match, entry["subject"]
        assert match.group(1) == SUBJECT_PART_BY_TYPE[entry["type"]], entry["id"]
        assert match.group(2) == entry["id"]
        assert 10 <= entry["timeout_ms"] <= 5000, entry["id"]
        assert 0 <= entry["retry"] <= 3, entry["id"]
        assert entry["enabled"] is True
        assert set(entry["metadata"]) == {"side_effect_free", "description"}, entry["id"]
        assert isinstance(entry["metadata"]["side_effect_free"], bool), entry["id"]


def test_demo_extensions_match_reference_extensions(demo_registry):
    served = {extension.id: extension.registry_entry() for extension in REFERENCE_EXTENSIONS}

    assert {entry["id"]: entry for entry in demo_registry["extensions"]} == served
    assert [entry["id"] for entry in demo_registry["extensions"] if not entry["metadata"]["side_effect_free"]] == [
        "audit_log"
    ]


def test_demo_tenants_and_policies(demo_registry):
    tenants = {tenant["tenant_id"] for tenant in demo_registry["tenants"]}
    policies = {policy["policy_id"]: policy for policy in demo_registry["policies"]}

    assert tenants == {"tenant-parallel", "tenant-sequential"}
    assert policies["policy-parallel-demo"]["tenant_id"] == "tenant-parallel"
    assert policies["policy-sequential-demo"]["tenant_id"] == "tenant-sequential"
    for tenant in demo_registry["tenants"]:
        assert tenant["name"] and tenant["description"]


def test_demo_policy_step_types(demo_registry):
    types = {entry["id"]: entry["type"] for entry in demo_registry["extensions"]}

    for policy in demo_registry["policies"]:
        for stage, extension_type in TYPE_BY_STAGE.items():
            step_ids = [step["id"] for step in policy[stage]]
            assert len(step_ids) == len(set(step_ids)), policy["policy_id"]
            for step in policy[stage]:
                assert types.get(step["id"]) == extension_type, (policy["policy_id"], stage, step["id"])
                assert set(step.get("depends_on", [])) <= set(step_ids), (policy["policy_id"], step["id"])
                if stage == "validators":
                    assert step["on_fail"] in {"block", "warn", "ignore"}
                else:
                    assert step["mode"] in {"required", "optional"}


def test_demo_policy_shapes_dependencies_and_barrier(demo_registry):
    for policy in demo_registry["policies"]:
        pre = {step["id"]: step for step in policy["pre"]}
        assert list(pre) == ["normalize_text", "detect_language", "extract_metadata", "enrich_context", "audit_log"]
        assert pre["normalize_text"]["depends_on"] == []
        assert pre["detect_language"]["depends_on"] == []
        assert pre["extract_metadata"]["depends_on"] == []
        assert pre["enrich_context"]["depends_on"] == ["normalize_text"]
        assert "depends_on" not in pre["audit_log"]
        assert policy["validators"] == [{"id": "pii_guard", "on_fail": "block", "depends_on": []}]
        assert [step["id"] for step in policy["post"]] == ["mask_pii"]
        assert policy["post"][0]["mode"] == "required"
        assert {"providers", "fallbacks", "sticky", "version"} <= set(policy)


def test_demo_registry_passes_registry_validation(demo_registry):
    from registry.validation import (
        Catalog,
        ExtensionFacts,
        validate_extension_entry,
        validate_policy,
        validate_tenant,
    )

    catalog = Catalog(
        extensions={entry["id"]: ExtensionFacts(type=entry["type"], enabled=entry["enabled"])
                    for entry in demo_registry["extensions"]},
        tenant_ids={tenant["tenant_id"] for tenant in demo_registry["tenants"]},
    )

    for entry in demo_registry["extensions"]:
        assert validate_extension_entry(entry) == [], entry["id"]
    for tenant in demo_registry["tenants"]:
        assert validate_tenant(tenant) == [], tenant["tenant_id"]
    for policy in demo_registry["policies"]:
        assert validate_policy(policy, catalog) == [], policy["policy_id"]


def test_message_set_size_and_shape():
    assert 40 <= len(MESSAGES) <= 100
    assert len(MESSAGES_BY_ID) == len(MESSAGES)
    assert len({message["metadata"]["language"] for message in MESSAGES}) >= 8
    for message in MESSAGES:
        assert set(message) == {"message_id", "message_type", "payload", "metadata"}
        assert isinstance(message["payload"]["text"], str) and message["payload"]["text"]
