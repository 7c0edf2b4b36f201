"""``normalize_text`` (pre-processor): a normalized copy of the message text for matching.

The normalized text is the original under Unicode NFKC, with every run of whitespace
collapsed to one space, trimmed, and case-folded. It is added to the message as the
top-level key ``normalized_text``. The original text stays where it was, so a provider still
receives what the user wrote. The context gets ``normalized: true``.
"""
from __future__ import annotations

import unicodedata

from executor.extensions._contract import Reply, Request, message_of, replies_with_error, text_of

SUBJECT = "beamline.ext.pre.normalize_text.v1"


def normalize(text: str) -> str:
    """Return ``text`` under NFKC, whitespace collapsed and trimmed, and case-folded."""
    compatible = unicodedata.normalize("NFKC", text)
    collapsed = " ".join(compatible.split())
    return collapsed.casefold()


@replies_with_error
def handle(request: Request) -> Reply:
    """Add ``normalized_text`` to the message and ``normalized: true`` to the context."""
    message = message_of(request)
    text = text_of(message)

    return {
        "payload": {**message, "normalized_text": normalize(text)},
        "metadata": {"normalized": True},
    }
