"""Split text into words for counting, in scripts with and without spaces between words."""
from __future__ import annotations

import re

# Chinese and Japanese write words without spaces between them, so each ideograph or kana
# counts as one word there, the usual approximation without a dictionary-based segmenter.
_UNSPACED_SCRIPTS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_UNSPACED_SCRIPTS}]|[^\W{_UNSPACED_SCRIPTS}]+")


def split_words(text: str) -> list[str]:
    """Return the words of ``text`` in order: runs of letters and digits, or single CJK characters."""
    return _WORD.findall(text)
