"""Builders for snapshots, policies and in-memory extensions used across the executor tests."""
import asyncio

from executor.core.flags import ParallelFlags
from executor.core.model import ExtensionSpec, PolicySpec, Snapshot, StepSpec

ALL_ON = ParallelFlags(
    parallel_execution_enabled=True,
    parallel_pre_processors_enabled=True,
    parallel_validators_enabled=True,
    parallel_post_processors_enabled=True,
)
ALL_OFF = ParallelFlags()

TYPE_BY_STAGE = {"pre": "pre", "validators": "validator", "post": "post"}


def subject_of(extension_id, extension_type="pre"):
    short = {"pre": "pre", "validator": "validate", "post": "post"}[extension_type]
    return f"test.ext.{short}.{extension_id}.v1"


def extension(extension_id, *, type="pre", timeout_ms=500, retry=0, side_effect_free=True, enabled=True):
    return ExtensionSpec(
        id=extension_id,
        type=type,
        subject=subject_of(extension_id, type),
        timeout_ms=timeout_ms,
        retry=retry,
        side_effect_free=side_effect_free,
        enabled=enabled,
    )


def step(step_id, depends_on=(), *, mode="required", on_fail=None, config=None):
    return StepSpec(id=step_id, mode=mode, on_fail=on_fail, depends_on=depends_on, config=config)


def validator_step(step_id, depends_on=(), *, on_fail="block"):
    return StepSpec(id=step_id, mode=None, on_fail=on_fail, depends_on=depends_on, config=None)


def policy(pre=(), validators=(), post=(), *, policy_id="p1", tenant_id="t1"):
    return PolicySpec(
        policy_id=policy_id,
        tenant_id=tenant_id,
        stages={"pre": tuple(pre), "validators": tuple(validators), "post": tuple(post)},
    )


def snapshot(extensions, policies, flags=ALL_ON, revision=1):
    return Snapshot(
        revision=revision,
        extensions={item.id: item for item in extensions},
        policies={item.policy_id: item for item in policies},
        flags=flags,
    )


def request(payload=None, *, stages=None, **extra):
    body = {"tenant_id": "t1", "policy_id": "p1", "payload": payload if payload is not None else {"text": "hi"}}
    if stages is not None:
        body["stages"] = stages
    body.update(extra)
    return body


def echo_with(payload_changes=None, metadata_changes=None, delay=0.0):
    """A processor that sleeps ``delay`` s and echoes its input with the given keys set."""

    async def handler(request):
        if delay:
            await asyncio.sleep(delay)
        payload = dict(request["payload"])
        payload.update(payload_changes or {})
        metadata = dict(request["metadata"])
        metadata.update(metadata_changes or {})
        return {"payload": payload, "metadata": metadata}

    return handler


def sleeper(delay, reply=None):
    """A handler that sleeps ``delay`` s and returns ``reply`` (``{}`` by default)."""

    async def handler(request):
        await asyncio.sleep(delay)
        return {} if reply is None else reply

    return handler


def replying(reply):
    async def handler(request):
        return reply

    return handler
