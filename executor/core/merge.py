"""Reply rules for pre- and post-processors, and the merge of a parallel group's replies.

A reply ``{payload?, metadata?}`` replaces the message with ``payload`` and merges ``metadata``
into the context key by key; a missing key means unchanged. Sequential steps apply their
reply with ``apply_reply``.

Extensions commonly echo back the whole message and context they received, so inside a
parallel group what a member changed is the difference between its reply and the group's
input: the context keys it added or changed, and the top-level message keys it added,
changed or removed. When either the input message or the replied one is not an object, the
member changed the message as a whole (when it differs). Changes apply in declared order
whatever order the replies arrived in, so the last declared member wins a conflict. A conflict
is two members changing the same key to different values, or one removing what another
sets. Two members agreeing on a value do not conflict.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WHOLE_MESSAGE = None
"""The ``key`` of a message change that replaces the message as a whole."""

_REMOVED = object()


@dataclass(frozen=True)
class Conflict:
    """Two members of a group changed the same key differently; ``winner_id`` was declared later.

    ``section`` is ``payload`` or ``metadata``; ``key`` is ``None`` for the message as a whole.
    """

    section: str
    key: str | None
    loser_id: str
    winner_id: str


@dataclass
class MemberChanges:
    """The changes one member made relative to its group's input."""

    extension_id: str
    context: dict[str, Any] = field(default_factory=dict)
    message_keys: dict[str, Any] = field(default_factory=dict)
    whole_message: Any = _REMOVED
    replaces_whole_message: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.context or self.message_keys or self.replaces_whole_message)


@dataclass(frozen=True)
class MergeResult:
    """The payload and metadata after a group, and the conflicts found on the way."""

    payload: Any
    metadata: dict[str, Any]
    conflicts: tuple[Conflict, ...]


def apply_reply(payload: Any, metadata: Mapping[str, Any], reply: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Apply one processor reply sequentially; return the new payload and a new metadata dict."""
    new_metadata = dict(metadata)
    reply_metadata = reply.get("metadata")
    if reply_metadata is not None:
        new_metadata.update(reply_metadata)

    reply_payload = reply.get("payload")
    return (payload if reply_payload is None else reply_payload), new_metadata


def changes_of(extension_id: str, payload: Any, metadata: Mapping[str, Any],
               reply: Mapping[str, Any]) -> MemberChanges:
    """Return what ``reply`` changed relative to the group's input ``payload`` and ``metadata``."""
    changes = MemberChanges(extension_id)

    reply_metadata = reply.get("metadata")
    if reply_metadata is not None:
        changes.context = {
            key: value for key, value in reply_metadata.items()
            if key not in metadata or metadata[key] != value
        }

    reply_payload = reply.get("payload")
    if reply_payload is None or reply_payload == payload:
        return changes
    if isinstance(payload, dict) and isinstance(reply_payload, dict):
        changes.message_keys = _message_key_changes(payload, reply_payload)
    else:
        changes.whole_message = reply_payload
        changes.replaces_whole_message = True
    return changes


def merge_group(payload: Any, metadata: Mapping[str, Any], changes: Sequence[MemberChanges]) -> MergeResult:
    """Apply ``changes`` (in declared order) to the group's input and report the conflicts."""
    merged_metadata = dict(metadata)
    merged_payload = dict(payload) if isinstance(payload, dict) else payload
    conflicts: list[Conflict] = []
    context_owner: dict[str, str] = {}
    message_owner: dict[str | None, str] = {}

    for member in changes:
        for key, value in member.context.items():
            _note_conflict(conflicts, "metadata", key, context_owner, member.extension_id,
                           merged_metadata.get(key, _REMOVED), value)
            merged_metadata[key] = value
        merged_payload = _apply_message_changes(merged_payload, payload, member, message_owner, conflicts)

    return MergeResult(merged_payload, merged_metadata, tuple(conflicts))


def _message_key_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed = {key: value for key, value in after.items() if key not in before or before[key] != value}
    for key in before.keys() - after.keys():
        changed[key] = _REMOVED
    return changed


def _apply_message_changes(current: Any, group_input: Any, member: MemberChanges,
                           owner: dict[str | None, str], conflicts: list[Conflict]) -> Any:
    if member.replaces_whole_message:
        if current != member.whole_message:
            _note_whole_message_conflict(conflicts, owner, member.extension_id)
        owner.clear()
        owner[WHOLE_MESSAGE] = member.extension_id
        return member.whole_message
    if not member.message_keys:
        return current

    if not isinstance(current, dict):
        # An earlier member replaced the message with a non-object; this later member's key
        # changes win, applied to the group's input as the member saw it.
        _note_whole_message_conflict(conflicts, owner, member.extension_id)
        owner.clear()
        current = dict(group_input)

    for key, value in member.message_keys.items():
        _note_conflict(conflicts, "payload", key, owner, member.extension_id, current.get(key, _REMOVED), value)
        if value is _REMOVED:
            current.pop(key, None)
        else:
            current[key] = value
    return current


def _note_conflict(conflicts: list[Conflict], section: str, key: str, owner: dict[Any, str],
                   extension_id: str, current: Any, new: Any) -> None:
    previous_owner = owner.get(key)
    if previous_owner is not None and previous_owner != extension_id and current != new:
        conflicts.append(Conflict(section, key, previous_owner, extension_id))
    owner[key] = extension_id


def _note_whole_message_conflict(conflicts: list[Conflict], owner: dict[str | None, str],
                                 extension_id: str) -> None:
    for previous_owner in dict.fromkeys(owner.values()):
        if previous_owner != extension_id:
            conflicts.append(Conflict("payload", WHOLE_MESSAGE, previous_owner, extension_id))
