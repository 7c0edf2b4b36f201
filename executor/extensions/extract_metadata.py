"""``extract_metadata`` (pre-processor): links, addresses, mentions, hashtags and counts.

The context gets ``extracted``::

    {"urls": [...], "emails": [...], "mentions": [...], "hashtags": [...],
     "char_count": int, "word_count": int}

Lists keep the order of first appearance, without duplicates. Mentions and hashtags are
stored without their ``@`` or ``#``. ``char_count`` counts Unicode code points and
``word_count`` counts words as ``split_words`` splits them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from executor.extensions._contract import Reply, Request, message_of, replies_with_error, text_of
from executor.extensions._words import split_words

SUBJECT = "beamline.ext.pre.extract_metadata.v1"

URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
EMAIL = re.compile(r"\b[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
MENTION = re.compile(r"(?<![\w@])@(\w+)")
HASHTAG = re.compile(r"(?<![\w#&])#(\w*[^\W\d_]\w*)")

# A sentence often ends right after a link; that punctuation is not part of the URL.
_URL_TRAILING_PUNCTUATION = ".,;:!?)]}'\""


def find_urls(text: str) -> list[str]:
    """Return the http and https URLs in ``text``, without trailing punctuation."""
    return _unique(match.rstrip(_URL_TRAILING_PUNCTUATION) for match in URL.findall(text))


def find_emails(text: str) -> list[str]:
    """Return the e-mail addresses in ``text``."""
    return _unique(EMAIL.findall(text))


def extract(text: str) -> dict[str, object]:
    """Return the ``extracted`` object for ``text``."""
    # URLs and addresses go first, so "@" in an address and "#" in a URL fragment are
    # not read as a mention or a hashtag.
    rest = EMAIL.sub(" ", URL.sub(" ", text))

    return {
        "urls": find_urls(text),
        "emails": find_emails(text),
        "mentions": _unique(MENTION.findall(rest)),
        "hashtags": _unique(HASHTAG.findall(rest)),
        "char_count": len(text),
        "word_count": len(split_words(text)),
    }


@replies_with_error
def handle(request: Request) -> Reply:
    """Add ``extracted`` to the context."""
    text = text_of(message_of(request))

    return {"metadata": {"extracted": extract(text)}}


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
