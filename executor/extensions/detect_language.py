"""``detect_language`` (pre-processor): the language of the message text.

It uses py3langid, a naive Bayes language identifier that ships its own model (140 labels
in py3langid 0.4), with normalized probabilities. The context gets ``language`` (an ISO 639 code,
or ``"und"`` for text without letters) and ``language_confidence`` (the probability of that
language, 0 to 1, rounded to four decimals).
"""
from __future__ import annotations

import functools

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from executor.extensions._contract import Reply, Request, message_of, replies_with_error, text_of

SUBJECT = "beamline.ext.pre.detect_language.v1"
UNDETERMINED = "und"


@functools.cache
def load_identifier() -> LanguageIdentifier:
    """Load the bundled model once per process; it takes about half a second."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str) -> tuple[str, float]:
    """Return the most probable language of ``text`` and its probability."""
    if not any(character.isalpha() for character in text):
        return UNDETERMINED, 0.0

    language, probability = load_identifier().classify(text)
    return language, round(probability, 4)


@replies_with_error
def handle(request: Request) -> Reply:
    """Add ``language`` and ``language_confidence`` to the context."""
    text = text_of(message_of(request))
    language, confidence = detect(text)

    return {"metadata": {"language": language, "language_confidence": confidence}}
