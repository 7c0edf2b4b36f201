"""``enrich_context`` (pre-processor): keywords and word frequencies of the normalized text.

It reads the message's ``normalized_text``, which ``normalize_text`` writes, so its policy
step declares ``depends_on: ["normalize_text"]``. Without that text it replies with the
error ``missing_dependency``, which makes a wrong step order visible at once.

The context gets ``enriched_context``::

    {"keywords": [...], "word_frequencies": [{"word": str, "count": int}, ...], "word_count": int}

``keywords`` are the most frequent words of at least ``min_keyword_length`` characters;
``word_frequencies`` lists the most frequent words of any length. Both are ordered by count,
then by first appearance, and hold at most ``max_keywords`` entries. The step's ``config``
may set ``max_keywords`` (default 5) and ``min_keyword_length`` (default 4). Because
Chinese and Japanese words are split into single characters, those texts have no keywords
under the default minimum length.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from executor.extensions._contract import (
    MissingDependency,
    Reply,
    Request,
    config_of,
    message_of,
    positive_int_config,
    replies_with_error,
)
from executor.extensions._words import split_words

SUBJECT = "beamline.ext.pre.enrich_context.v1"
DEFAULT_MAX_KEYWORDS = 5
DEFAULT_MIN_KEYWORD_LENGTH = 4


def normalized_text_of(message: dict[str, Any]) -> str:
    """Return the message's ``normalized_text``; raises ``MissingDependency`` when it is absent."""
    normalized = message.get("normalized_text")
    if not isinstance(normalized, str):
        raise MissingDependency(
            "The message has no normalized_text. enrich_context needs normalize_text to run "
            "first: declare depends_on: [\"normalize_text\"] on its policy step."
        )
    return normalized


def enrich(normalized_text: str, *, max_keywords: int, min_keyword_length: int) -> dict[str, Any]:
    """Return the ``enriched_context`` object for ``normalized_text``."""
    words = split_words(normalized_text)
    # Counter keeps first-appearance order for equal counts, and most_common sorts stably.
    ranked = Counter(words).most_common()
    keywords = [word for word, _ in ranked if len(word) >= min_keyword_length]

    return {
        "keywords": keywords[:max_keywords],
        "word_frequencies": [{"word": word, "count": count} for word, count in ranked[:max_keywords]],
        "word_count": len(words),
    }


@replies_with_error
def handle(request: Request) -> Reply:
    """Add ``enriched_context`` to the context."""
    normalized_text = normalized_text_of(message_of(request))
    config = config_of(request)

    enriched = enrich(
        normalized_text,
        max_keywords=positive_int_config(config, "max_keywords", DEFAULT_MAX_KEYWORDS),
        min_keyword_length=positive_int_config(config, "min_keyword_length", DEFAULT_MIN_KEYWORD_LENGTH),
    )
    return {"metadata": {"enriched_context": enriched}}
