"""The reference extensions: what each one is, where it listens, and its handler.

``REFERENCE_EXTENSIONS`` is the one list the service entry point and the demo registry
data are checked against. ``timeout_ms`` and ``retry`` are the values the demo registry
gives each extension.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from executor.extensions import (
    audit_log,
    detect_language,
    enrich_context,
    extract_metadata,
    mask_pii,
    normalize_text,
    pii_guard,
)
from executor.extensions._contract import Handler


@dataclass(frozen=True)
class ReferenceExtension:
    """One reference extension: its registry fields and the handler that serves its subject.

    ``warm_up`` runs once before the service subscribes, so a slow first load (a model)
    does not delay the first requests.
    """

    id: str
    type: str
    subject: str
    handle: Handler
    side_effect_free: bool
    description: str
    timeout_ms: int
    retry: int
    warm_up: Callable[[], Any] | None = None

    def registry_entry(self) -> dict[str, Any]:
        """Return the extension as a registry entry of the extension registry's import format."""
        return {
            "id": self.id,
            "type": self.type,
            "subject": self.subject,
            "timeout_ms": self.timeout_ms,
            "retry": self.retry,
            "enabled": True,
            "metadata": {"side_effect_free": self.side_effect_free, "description": self.description},
        }


REFERENCE_EXTENSIONS: tuple[ReferenceExtension, ...] = (
    ReferenceExtension(
        id="normalize_text",
        type="pre",
        subject=normalize_text.SUBJECT,
        handle=normalize_text.handle,
        side_effect_free=True,
        description="Adds the text under Unicode NFKC, whitespace collapsed, case-folded, as normalized_text.",
        timeout_ms=200,
        retry=1,
    ),
    ReferenceExtension(
        id="detect_language",
        type="pre",
        subject=detect_language.SUBJECT,
        handle=detect_language.handle,
        side_effect_free=True,
        description="Sets metadata.language and language_confidence with the py3langid model.",
        timeout_ms=300,
        retry=1,
        warm_up=detect_language.load_identifier,
    ),
    ReferenceExtension(
        id="extract_metadata",
        type="pre",
        subject=extract_metadata.SUBJECT,
        handle=extract_metadata.handle,
        side_effect_free=True,
        description="Sets metadata.extracted: URLs, e-mail addresses, mentions, hashtags, counts.",
        timeout_ms=200,
        retry=1,
    ),
    ReferenceExtension(
        id="enrich_context",
        type="pre",
        subject=enrich_context.SUBJECT,
        handle=enrich_context.handle,
        side_effect_free=True,
        description="Sets metadata.enriched_context: keywords and word frequencies of normalized_text.",
        timeout_ms=200,
        retry=1,
    ),
    ReferenceExtension(
        id="audit_log",
        type="pre",
        subject=audit_log.SUBJECT,
        handle=audit_log.handle,
        side_effect_free=False,
        description="Appends one JSON line per message to an audit file; has a side effect.",
        timeout_ms=500,
        retry=0,
    ),
    ReferenceExtension(
        id="pii_guard",
        type="validator",
        subject=pii_guard.SUBJECT,
        handle=pii_guard.handle,
        side_effect_free=True,
        description="Rejects messages carrying a Luhn-valid card number, a US SSN or a UK NINO.",
        timeout_ms=200,
        retry=1,
    ),
    ReferenceExtension(
        id="mask_pii",
        type="post",
        subject=mask_pii.SUBJECT,
        handle=mask_pii.handle,
        side_effect_free=True,
        description="Masks e-mail addresses and phone numbers in the response text.",
        timeout_ms=200,
        retry=1,
    ),
)

EXTENSIONS_BY_ID = {extension.id: extension for extension in REFERENCE_EXTENSIONS}


def select_extensions(ids: Iterable[str] | None) -> list[ReferenceExtension]:
    """Return the reference extensions with ``ids`` in the given order, or all when ``ids`` is None.

    Raises ``ValueError`` naming the unknown ids and the known ones.
    """
    if ids is None:
        return list(REFERENCE_EXTENSIONS)

    requested = list(dict.fromkeys(ids))
    unknown = [extension_id for extension_id in requested if extension_id not in EXTENSIONS_BY_ID]
    if unknown:
        raise ValueError(
            f"Unknown extension id(s): {', '.join(unknown)}. Known: {', '.join(EXTENSIONS_BY_ID)}."
        )
    return [EXTENSIONS_BY_ID[extension_id] for extension_id in requested]
