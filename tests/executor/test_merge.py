"""Merging a parallel group's replies, and the sequential reply rules."""
import itertools

from executor.core.merge import WHOLE_MESSAGE, apply_reply, changes_of, merge_group

GROUP_INPUT = {"text": "Hello", "lang": None, "keep": 1}
CONTEXT = {"policy_id": "p1", "user": "u1"}


def merged(replies, payload=GROUP_INPUT, metadata=CONTEXT):
    changes = [changes_of(extension_id, payload, metadata, reply) for extension_id, reply in replies]
    return merge_group(payload, metadata, changes)


def test_merge_without_conflicts():
    replies = [
        ("normalize", {"payload": {**GROUP_INPUT, "text": "hello"}, "metadata": {**CONTEXT, "normalized": True}}),
        ("detect", {"payload": {**GROUP_INPUT, "lang": "en"}, "metadata": {"language": "en"}}),
        ("extract", {"metadata": {"words": 1}}),
    ]

    result = merged(replies)

    assert result.payload == {"text": "hello", "lang": "en", "keep": 1}
    assert result.metadata == {"policy_id": "p1", "user": "u1", "normalized": True, "language": "en", "words": 1}
    assert result.conflicts == ()


def test_merge_with_conflicts_last_declared_wins():
    replies = [
        ("first", {"payload": {**GROUP_INPUT, "text": "one"}, "metadata": {"tag": "one"}}),
        ("second", {"payload": {**GROUP_INPUT, "text": "two"}, "metadata": {"tag": "two"}}),
    ]

    result = merged(replies)

    assert result.payload["text"] == "two"
    assert result.metadata["tag"] == "two"
    assert {(c.section, c.key, c.loser_id, c.winner_id) for c in result.conflicts} == {
        ("payload", "text", "first", "second"),
        ("metadata", "tag", "first", "second"),
    }


def test_merge_result_independent_of_arrival_order():
    replies = [
        ("a", {"payload": {**GROUP_INPUT, "text": "a"}, "metadata": {"x": 1}}),
        ("b", {"payload": {"text": "Hello", "lang": "b"}, "metadata": {"x": 2, "y": 2}}),
        ("c", {"metadata": {"y": 3}}),
    ]
    expected = merged(replies)

    for arrival in itertools.permutations(replies):
        # Replies are collected in any order but handed to the merge in declared order.
        declared = sorted(arrival, key=lambda item: "abc".index(item[0]))
        result = merged(declared)
        assert result.payload == expected.payload
        assert result.metadata == expected.metadata
        assert result.conflicts == expected.conflicts


def test_merge_unchanged_echo_changes_nothing():
    replies = [
        ("echo", {"payload": dict(GROUP_INPUT), "metadata": dict(CONTEXT)}),
        ("writer", {"payload": {**GROUP_INPUT, "text": "changed"}}),
        ("echo_after", {"payload": dict(GROUP_INPUT), "metadata": dict(CONTEXT)}),
    ]

    result = merged(replies)

    assert result.payload["text"] == "changed"
    assert result.conflicts == ()


def test_merge_removed_message_key():
    payload_without_keep = {"text": "Hello", "lang": None}

    result = merged([("trim", {"payload": payload_without_keep}), ("other", {"metadata": {"seen": True}})])

    assert result.payload == payload_without_keep
    assert result.metadata["seen"] is True


def test_merge_non_object_message_replaced_whole():
    result = merged([("a", {"payload": "upper"}), ("b", {"payload": "lower"})], payload="Mixed")

    assert result.payload == "lower"
    assert [(c.key, c.loser_id, c.winner_id) for c in result.conflicts] == [(WHOLE_MESSAGE, "a", "b")]


def test_merge_same_value_is_not_conflict():
    replies = [("a", {"metadata": {"lang": "en"}}), ("b", {"metadata": {"lang": "en"}})]

    result = merged(replies)

    assert result.metadata["lang"] == "en"
    assert result.conflicts == ()


def test_merge_single_member_equals_sequential_rule():
    reply = {"payload": {"text": "new", "extra": 2}, "metadata": {"user": "u2"}}

    result = merged([("only", reply)])
    payload, metadata = apply_reply(GROUP_INPUT, CONTEXT, reply)

    assert result.payload == payload
    assert result.metadata == metadata


def test_apply_reply_missing_keys_mean_unchanged():
    payload, metadata = apply_reply(GROUP_INPUT, CONTEXT, {})

    assert payload == GROUP_INPUT
    assert metadata == CONTEXT
    assert metadata is not CONTEXT


def test_codec_round_trips_values_orjson_rejects():
    from executor.core import codec

    big = {"n": 2**70, "text": "héllo"}

    assert codec.decode(codec.encode(big)) == big
