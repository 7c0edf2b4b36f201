"""PipelineRunner over both transports: parallel groups, fail-closed and fail-open, retries, replies."""
import asyncio
import re
import time

import pytest

from executor.core.errors import InvalidRequest, NoResponders, Overloaded, PolicyNotFound
from executor.core.flags import ParallelFlags
from executor.core.runtime import PipelineRunner

from .conftest import executor_tasks
from .helpers import (
    ALL_OFF,
    ALL_ON,
    echo_with,
    extension,
    policy,
    replying,
    request,
    sleeper,
    snapshot,
    step,
    subject_of,
    validator_step,
)


def runner_for(host, max_in_flight=16, **options):
    return PipelineRunner(host.transport, max_in_flight=max_in_flight, **options)


def members_of(reply, stage_index=0, group_index=0):
    return reply["execution"]["stages"][stage_index]["groups"][group_index]["members"]


async def test_two_independent_pre_processors_run_in_parallel(host):
    await host.add(subject_of("a"), echo_with({"a": 1}, delay=0.1))
    await host.add(subject_of("b"), echo_with(metadata_changes={"b": 2}, delay=0.1))
    state = snapshot([extension("a"), extension("b")], [policy([step("a"), step("b")])])

    started = time.perf_counter()
    reply = await runner_for(host).execute(state, request({"text": "hi"}, stages=["pre"]))
    elapsed = time.perf_counter() - started

    assert reply["status"] == "ok"
    assert reply["payload"] == {"text": "hi", "a": 1}
    assert reply["metadata"] == {"policy_id": "p1", "b": 2}
    assert reply["execution"]["mode"] == "parallel"
    group = reply["execution"]["stages"][0]["groups"][0]
    assert group["execution_mode"] == "parallel"
    assert [member["status"] for member in group["members"]] == ["ok", "ok"]
    assert elapsed < 0.18


async def test_three_independent_pre_processors_run_in_parallel(host):
    for name in ("a", "b", "c"):
        await host.add(subject_of(name), echo_with({name: True}, delay=0.1))
    state = snapshot([extension(name) for name in "abc"], [policy([step(name) for name in "abc"])])

    started = time.perf_counter()
    reply = await runner_for(host).execute(state, request({"text": "hi"}, stages=["pre"]))
    elapsed = time.perf_counter() - started

    assert reply["status"] == "ok"
    assert reply["payload"] == {"text": "hi", "a": True, "b": True, "c": True}
    assert len(members_of(reply)) == 3
    assert elapsed < 0.2


async def test_timeout_fails_closed_for_required(host):
    await host.add(subject_of("fast"), echo_with({"fast": 1}))
    await host.add(subject_of("slow"), sleeper(1.0))
    state = snapshot(
        [extension("fast"), extension("slow", timeout_ms=50)],
        [policy([step("fast"), step("slow")])],
    )

    reply = await runner_for(host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "timeout"
    assert reply["error"]["extension_id"] == "slow"
    assert reply["payload"] == {"text": "hi"}
    assert members_of(reply)[1]["error_type"] == "timeout"


async def test_timeout_fails_open_for_optional(host):
    await host.add(subject_of("fast"), echo_with({"fast": 1}))
    await host.add(subject_of("slow"), sleeper(1.0))
    state = snapshot(
        [extension("fast"), extension("slow", timeout_ms=50)],
        [policy([step("fast"), step("slow", mode="optional")])],
    )

    reply = await runner_for(host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "ok"
    assert reply["payload"] == {"text": "hi", "fast": 1}
    assert members_of(reply)[1]["status"] == "failed"
    assert members_of(reply)[1]["error_type"] == "timeout"
    assert reply["execution"]["warnings"][0]["extension_id"] == "slow"


async def test_error_reply_fails_closed_for_required(host):
    await host.add(subject_of("ok"), echo_with({"ok": 1}))
    await host.add(subject_of("broken"), replying({"error": {"code": "boom", "message": "it broke"}}))
    state = snapshot([extension("ok"), extension("broken")], [policy([step("ok"), step("broken")])])

    reply = await runner_for(host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "extension_error"
    assert reply["error"]["extension_error"] == {"code": "boom", "message": "it broke"}
    assert members_of(reply)[1]["attempts"] == 1


async def test_error_reply_fails_open_for_optional(host):
    await host.add(subject_of("ok"), echo_with({"ok": 1}))
    await host.add(subject_of("broken"), replying({"error": {"code": "boom", "message": "it broke"}}))
    state = snapshot(
        [extension("ok"), extension("broken")],
        [policy([step("ok"), step("broken", mode="optional")])],
    )

    reply = await runner_for(host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "ok"
    assert reply["payload"] == {"text": "hi", "ok": 1}
    assert members_of(reply)[1]["error_type"] == "extension_error"


async def test_context_merge_without_conflicts(host):
    await host.add(subject_of("a"), echo_with({"a": 1}, {"ma": 1}))
    await host.add(subject_of("b"), echo_with({"b": 2}, {"mb": 2}))
    state = snapshot([extension("a"), extension("b")], [policy([step("a"), step("b")])])

    reply = await runner_for(host).execute(state, request({"text": "x"}, stages=["pre"]))

    assert reply["payload"] == {"text": "x", "a": 1, "b": 2}
    assert reply["metadata"] == {"policy_id": "p1", "ma": 1, "mb": 2}
    assert "conflicts" not in reply["execution"]["stages"][0]["groups"][0]


async def test_context_merge_conflict_last_declared_wins(host):
    # The later-declared member replies first, so arrival order is the reverse of declared order.
    await host.add(subject_of("first"), echo_with({"text": "first"}, {"tag": "first"}, delay=0.05))
    await host.add(subject_of("second"), echo_with({"text": "second"}, {"tag": "second"}))
    state = snapshot([extension("first"), extension("second")], [policy([step("first"), step("second")])])

    reply = await runner_for(host).execute(state, request({"text": "x"}, stages=["pre"]))

    assert reply["payload"] == {"text": "second"}
    assert reply["metadata"]["tag"] == "second"
    conflicts = reply["execution"]["stages"][0]["groups"][0]["conflicts"]
    assert {(item["section"], item["key"], item["overridden"], item["winner"]) for item in conflicts} == {
        ("payload", "text", "first", "second"),
        ("metadata", "tag", "first", "second"),
    }


async def test_no_responders_fails_fast_and_distinct_from_timeout(host):
    state = snapshot([extension("absent", timeout_ms=2000)], [policy([step("absent")])])

    started = time.perf_counter()
    reply = await runner_for(host).execute(state, request(stages=["pre"]))
    elapsed = time.perf_counter() - started

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "no_responders"
    assert elapsed < 0.5


async def test_no_responders_retried_up_to_retry(host):
    state = snapshot([extension("absent", retry=2)], [policy([step("absent")])])

    reply = await runner_for(host, retry_backoff_s=0.001).execute(state, request(stages=["pre"]))

    assert reply["error"]["type"] == "no_responders"
    assert members_of(reply)[0]["attempts"] == 3


async def test_timeout_not_retried(host):
    calls = []

    async def slow(request_body):
        calls.append(request_body)
        await asyncio.sleep(0.5)
        return {}

    await host.add(subject_of("slow"), slow)
    state = snapshot([extension("slow", timeout_ms=50, retry=3)], [policy([step("slow")])])

    reply = await runner_for(host).execute(state, request(stages=["pre"]))
    await asyncio.sleep(0.05)

    assert reply["error"]["type"] == "timeout"
    assert members_of(reply)[0]["attempts"] == 1
    assert len(calls) == 1


async def test_error_reply_not_retried(host):
    calls = []

    async def broken(request_body):
        calls.append(request_body)
        return {"error": {"code": "bad", "message": "no"}}

    await host.add(subject_of("broken"), broken)
    state = snapshot([extension("broken", retry=3)], [policy([step("broken")])])

    reply = await runner_for(host).execute(state, request(stages=["pre"]))

    assert reply["error"]["type"] == "extension_error"
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("body", "error_text"),
    [(b"[1, 2]", "JSON object"), (b"not json", "not valid JSON"), (b'{"metadata": 5}', "metadata")],
    ids=["list", "not-json", "metadata-not-object"],
)
async def test_bad_reply_is_failure(host, body, error_text):
    await host.add_raw(subject_of("odd"), body)
    state = snapshot([extension("odd")], [policy([step("odd")])])

    reply = await runner_for(host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "bad_reply"
    assert error_text in reply["error"]["message"]


async def test_required_timeout_ends_group_before_slow_sibling(host):
    await host.add(subject_of("doomed"), sleeper(1.0))
    await host.add(subject_of("sibling"), sleeper(0.8))
    state = snapshot(
        [extension("doomed", timeout_ms=50), extension("sibling", timeout_ms=2000)],
        [policy([step("doomed"), step("sibling")])],
    )

    started = time.perf_counter()
    reply = await runner_for(host).execute(state, request(stages=["pre"]))
    elapsed = time.perf_counter() - started

    assert reply["status"] == "failed"
    assert reply["error"]["extension_id"] == "doomed"
    assert elapsed < 0.4
    assert members_of(reply)[1]["status"] == "cancelled"
    assert members_of(reply)[1]["error_type"] == "cancelled"
    assert executor_tasks() == []


async def test_cancelled_sibling_is_really_cancelled(memory_host):
    sibling_events = []

    async def sibling(request_body):
        try:
            await asyncio.sleep(1.0)
            sibling_events.append("finished")
        except asyncio.CancelledError:
            sibling_events.append("cancelled")
            raise
        return {}

    await memory_host.add(subject_of("failing"), replying({"error": {"code": "x", "message": "y"}}))
    await memory_host.add(subject_of("sibling"), sibling)
    state = snapshot([extension("failing"), extension("sibling", timeout_ms=2000)],
                     [policy([step("failing"), step("sibling")])])

    reply = await runner_for(memory_host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "failed"
    assert sibling_events == ["cancelled"]
    assert executor_tasks() == []


async def test_group_deadline_fails_member_still_running(memory_host):
    async def hangs(request_body):
        await asyncio.sleep(0.5)
        return {}

    await memory_host.add(subject_of("a"), echo_with())
    await memory_host.add(subject_of("hangs"), hangs)
    memory_host.transport.register(subject_of("hangs"), hangs)
    state = snapshot([extension("a", timeout_ms=20), extension("hangs", timeout_ms=20)],
                     [policy([step("a"), step("hangs", mode="optional")])])
    # The in-memory transport's own timeout is disabled here by a generous handler budget, so
    # the group deadline (20 ms x 1.5) is what stops the member.
    original_request = memory_host.transport.request

    async def without_call_timeout(subject, data, headers, timeout):
        return await original_request(subject, data, headers, 10.0)

    memory_host.transport.request = without_call_timeout

    reply = await runner_for(memory_host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "ok"
    assert members_of(reply)[1]["error_type"] == "group_deadline"
    assert members_of(reply)[1]["latency_ms"] < 200


async def test_parallel_and_sequential_results_identical(host):
    await host.add(subject_of("a"), echo_with({"a": 1}, {"ma": "x"}, delay=0.01))
    await host.add(subject_of("b"), echo_with({"b": [1, 2]}, {"mb": {"k": 1}}))
    await host.add(subject_of("c"), replying({"metadata": {"mc": True}}))
    extensions = [extension(name) for name in "abc"]
    policies = [policy([step(name) for name in "abc"])]
    body = request({"text": "same", "n": 3}, stages=["pre"], metadata={"user": "u"},
                   trace_id="0af7651916cd43dd8448eb211c80319c")

    parallel = await runner_for(host).execute(snapshot(extensions, policies, ALL_ON), body)
    sequential = await runner_for(host).execute(snapshot(extensions, policies, ALL_OFF), body)

    assert parallel["execution"]["mode"] == "parallel"
    assert sequential["execution"]["mode"] == "sequential"
    assert parallel["status"] == sequential["status"] == "ok"
    assert parallel["payload"] == sequential["payload"]
    assert parallel["metadata"] == sequential["metadata"]


async def test_extension_call_body_and_traceparent(memory_host):
    await memory_host.add(subject_of("a"), echo_with())
    await memory_host.add(subject_of("b"), echo_with())
    state = snapshot([extension("a"), extension("b")],
                     [policy([step("a", config={"level": 2}), step("b")])])
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

    await runner_for(memory_host).execute(state, request({"m": 1}, stages=["pre"], trace_id=trace_id,
                                                         metadata={"user": "u"}))

    calls = {call.subject: call for call in memory_host.transport.calls}
    first = calls[subject_of("a")]
    assert first.request == {"trace_id": trace_id, "tenant_id": "t1", "payload": {"m": 1},
                             "metadata": {"user": "u", "policy_id": "p1"}, "config": {"level": 2}}
    assert "config" not in calls[subject_of("b")].request
    spans = set()
    for call in calls.values():
        match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", call.headers["traceparent"])
        assert match is not None
        assert match.group(1) == trace_id
        spans.add(match.group(2))
    assert len(spans) == 2


async def test_traceparent_reaches_nats_extension(nats_server):
    import nats

    from executor.core.transport import NatsTransport

    nc = await nats.connect(nats_server.url)
    seen = []

    async def respond(msg):
        seen.append(msg.headers)
        await msg.respond(b"{}")

    await nc.subscribe(subject_of("traced"), cb=respond)
    state = snapshot([extension("traced")], [policy([step("traced")])])

    reply = await PipelineRunner(NatsTransport(nc), max_in_flight=1).execute(state, request(stages=["pre"]))
    await nc.close()

    assert reply["status"] == "ok"
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", seen[0]["traceparent"])
    assert seen[0]["traceparent"][3:35] == reply["execution"]["trace_id"]


async def test_no_responders_then_served_succeeds_on_retry(memory_host):
    attempts = []

    async def flaky(request_body):
        attempts.append(1)
        if len(attempts) == 1:
            raise NoResponders("nothing yet")
        return {"payload": {"served": True}}

    await memory_host.add(subject_of("flaky"), flaky)
    state = snapshot([extension("flaky", retry=1)], [policy([step("flaky")])])

    reply = await runner_for(memory_host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "ok"
    assert reply["payload"] == {"served": True}
    assert members_of(reply)[0]["attempts"] == 2


async def test_validators_reject_first_in_declared_order(host):
    await host.add(subject_of("v1", "validator"), replying({"status": "ok"}))
    await host.add(subject_of("v2", "validator"), replying({"status": "reject", "reason": "spam", "details": {"s": 1}}))
    await host.add(subject_of("v3", "validator"), replying({"status": "reject", "reason": "late"}))
    extensions = [extension(name, type="validator") for name in ("v1", "v2", "v3")]
    state = snapshot(extensions, [policy(validators=[validator_step(name) for name in ("v1", "v2", "v3")])])

    reply = await runner_for(host).execute(state, request(stages=["validators"]))

    assert reply["status"] == "rejected"
    assert reply["error"]["type"] == "rejected"
    assert reply["error"]["extension_id"] in ("v2", "v3")
    assert reply["error"]["stage"] == "validators"


async def test_validator_warn_and_ignore_go_on(host):
    await host.add(subject_of("warns", "validator"), replying({"status": "reject", "reason": "odd"}))
    await host.add(subject_of("ignored", "validator"), replying({"error": {"code": "x", "message": "y"}}))
    await host.add(subject_of("fine", "validator"), replying({}))
    extensions = [extension(name, type="validator") for name in ("warns", "ignored", "fine")]
    steps = [validator_step("warns", on_fail="warn"), validator_step("ignored", on_fail="ignore"),
             validator_step("fine")]
    state = snapshot(extensions, [policy(validators=steps)])

    reply = await runner_for(host).execute(state, request(stages=["validators"]))

    assert reply["status"] == "ok"
    assert [member["status"] for member in members_of(reply)] == ["rejected", "failed", "ok"]
    assert [warning["extension_id"] for warning in reply["execution"]["warnings"]] == ["warns"]


async def test_validator_bad_status_is_bad_reply(memory_host):
    await memory_host.add(subject_of("v", "validator"), replying({"status": "maybe"}))
    state = snapshot([extension("v", type="validator")], [policy(validators=[validator_step("v")])])

    reply = await runner_for(memory_host).execute(state, request(stages=["validators"]))

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "bad_reply"


async def test_unknown_and_disabled_extensions_fail_step(memory_host):
    state = snapshot([extension("off", enabled=False)],
                     [policy([step("ghost", mode="optional"), step("off")])])

    reply = await runner_for(memory_host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "failed"
    assert members_of(reply, group_index=0)[0]["error_type"] == "unknown_extension"
    assert reply["error"]["type"] == "extension_disabled"
    assert reply["error"]["extension_id"] == "off"


async def test_later_groups_and_stages_reported_skipped(memory_host):
    await memory_host.add(subject_of("broken"), replying({"error": {"code": "x", "message": "y"}}))
    state = snapshot(
        [extension("broken"), extension("later"), extension("v", type="validator")],
        [policy([step("broken", None), step("later", None)], [validator_step("v")])],
    )

    reply = await runner_for(memory_host).execute(state, request())

    stages = reply["execution"]["stages"]
    assert stages[0]["groups"][1]["members"][0]["status"] == "skipped"
    assert stages[1]["groups"][0]["members"][0]["status"] == "skipped"


async def test_dependent_steps_see_earlier_results(memory_host):
    async def enrich(request_body):
        return {"payload": {**request_body["payload"], "seen": request_body["payload"].get("normalized")}}

    await memory_host.add(subject_of("normalize"), echo_with({"normalized": True}))
    await memory_host.add(subject_of("other"), echo_with({"other": True}))
    await memory_host.add(subject_of("enrich"), enrich)
    state = snapshot([extension(name) for name in ("normalize", "other", "enrich")],
                     [policy([step("normalize"), step("other"), step("enrich", ("normalize",))])])

    reply = await runner_for(memory_host).execute(state, request({"t": 1}, stages=["pre"]))

    assert reply["payload"] == {"t": 1, "normalized": True, "other": True, "seen": True}
    assert [group["execution_mode"] for group in reply["execution"]["stages"][0]["groups"]] == [
        "parallel", "sequential"]


async def test_invalid_policy_is_failed_reply(memory_host):
    state = snapshot([extension("a")], [policy([step("a", ("a",))])])

    reply = await runner_for(memory_host).execute(state, request(stages=["pre"]))

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "invalid_policy"


async def test_overloaded_when_max_in_flight_reached(memory_host):
    await memory_host.add(subject_of("slow"), sleeper(0.2))
    state = snapshot([extension("slow")], [policy([step("slow")])])
    runner = runner_for(memory_host, max_in_flight=1)

    first = asyncio.create_task(runner.execute(state, request(stages=["pre"])))
    await asyncio.sleep(0.02)
    with pytest.raises(Overloaded):
        await runner.execute(state, request(stages=["pre"]))
    assert (await first)["status"] == "ok"
    assert runner.in_flight == 0


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ([], "$"),
        ({"policy_id": "p1", "payload": {}}, "tenant_id"),
        ({"tenant_id": "t1", "payload": {}}, "policy_id"),
        ({"tenant_id": "t1", "policy_id": "p1"}, "payload"),
        ({"tenant_id": "t1", "policy_id": "p1", "payload": {}, "metadata": []}, "metadata"),
        ({"tenant_id": "t1", "policy_id": "p1", "payload": {}, "stages": ["pre", "route"]}, "stages[1]"),
        ({"tenant_id": "t1", "policy_id": "p1", "payload": {}, "stages": ["pre", "pre"]}, "stages[1]"),
        ({"tenant_id": "t1", "policy_id": "p1", "payload": {}, "stages": "pre"}, "stages"),
        ({"tenant_id": "t1", "policy_id": "p1", "payload": {}, "trace_id": "abc"}, "trace_id"),
        ({"tenant_id": 5, "policy_id": "p1", "payload": {}}, "tenant_id"),
    ],
    ids=["not-object", "no-tenant", "no-policy", "no-payload", "metadata-list", "unknown-stage", "stage-twice",
         "stages-string", "bad-trace-id", "tenant-number"],
)
async def test_invalid_request_names_field(memory_host, body, path):
    state = snapshot([], [policy()])

    with pytest.raises(InvalidRequest) as raised:
        await runner_for(memory_host).execute(state, body)

    assert raised.value.path == path


async def test_policy_of_other_tenant_not_found(memory_host):
    state = snapshot([], [policy(tenant_id="other")])

    with pytest.raises(PolicyNotFound):
        await runner_for(memory_host).execute(state, request())
    with pytest.raises(PolicyNotFound):
        await runner_for(memory_host).execute(state, request(policy_id="missing"))


async def test_observer_sees_invocations_groups_conflicts(memory_host):
    from executor.core.observer import NoopObserver

    class Recorder(NoopObserver):
        def __init__(self):
            self.events = []

        def invocation_finished(self, event):
            self.events.append(("invocation", event))

        def group_finished(self, event):
            self.events.append(("group", event))

        def merge_conflict(self, event):
            self.events.append(("conflict", event))

        def pipeline_finished(self, event):
            self.events.append(("pipeline", event))

    await memory_host.add(subject_of("a"), replying({"metadata": {"k": 1}}))
    await memory_host.add(subject_of("b"), replying({"metadata": {"k": 2}}))
    state = snapshot([extension("a"), extension("b")], [policy([step("a"), step("b")])], revision=7)
    recorder = Recorder()

    await PipelineRunner(memory_host.transport, max_in_flight=1, observer=recorder).execute(
        state, request(stages=["pre"]))

    kinds = [kind for kind, _ in recorder.events]
    assert kinds == ["conflict", "invocation", "invocation", "group", "pipeline"]
    group = recorder.events[3][1]
    assert (group.stage, group.group_size, group.execution_mode, group.dependency_level) == ("pre", 2, "parallel", 0)
    invocation = recorder.events[1][1]
    assert (invocation.extension_id, invocation.status, invocation.policy_id, invocation.tenant_id) == (
        "a", "ok", "p1", "t1")
    assert recorder.events[0][1].winner_id == "b"
    assert recorder.events[4][1].revision == 7


async def test_flags_max_group_size_one_runs_sequentially(memory_host):
    await memory_host.add(subject_of("a"), echo_with({"a": 1}))
    await memory_host.add(subject_of("b"), echo_with({"b": 1}))
    flags = ParallelFlags(True, True, parallel_execution_max_group_size=1)
    state = snapshot([extension("a"), extension("b")], [policy([step("a"), step("b")])], flags)

    reply = await runner_for(memory_host).execute(state, request({}, stages=["pre"]))

    assert reply["execution"]["mode"] == "sequential"
    assert reply["payload"] == {"a": 1, "b": 1}
