"""Text helpers for consolidation: normalization, exact-duplicate keys, informativeness."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

__all__ = [
    "distinct_texts",
    "informativeness",
    "normalize_text",
    "split_sentences",
    "text_features",
    "text_key",
]

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")

# Function words and conversational fillers: they add length, not information, so
# "Well, I am happy" does not out-inform "I'm happy" when a duplicate group picks its text.
_STOPWORDS = frozenset(
    """a about after again all also am an and any are as at be because been before being
    but by can could did do does doing for from had has have having he her here hers him his
    how i if in into is it its just me more most my no nor not now of off oh ok okay on once
    only or other our ours out over own s said same she should so some such t than that the
    their theirs them then there these they this those through to too um uh under until up
    us very was we well were what when where which while who whom why will with would yeah
    yes you your yours honestly know like really truly super quite pretty totally absolutely
    actually basically literally definitely just m re ve ll d""".split()
)


def normalize_text(text: str) -> str:
    """Unicode NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    # ASCII is already in NFKC form; skipping the call halves the cost on most text.
    folded = (text if text.isascii() else unicodedata.normalize("NFKC", text)).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def text_key(text: str) -> str:
    """The exact-duplicate key of a text: a hash of its normalized form."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).hexdigest()


def informativeness(text: str) -> tuple[int, int]:
    """How much a text says, for choosing a duplicate group's text: higher says more.

    Distinct content words first (fillers, intensifiers and function words do not
    count), then whether it is written with capitals (an all-lower-case echo loses
    to the original). Ties go to the earlier memory (the caller's order): a copy
    that only adds fillers or swaps a word for a synonym never wins.
    """
    return text_features(text)[1]


def text_features(text: str) -> tuple[str, tuple[int, int]]:
    """``(text_key(text), informativeness(text))`` from one normalization."""
    norm = normalize_text(text)
    content = set(norm.split()) - _STOPWORDS
    cased = int(text != text.lower())
    key = hashlib.blake2b(norm.encode(), digest_size=16).hexdigest()
    return key, (len(content), cased)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at ``.``, ``!`` or ``?`` followed by a capital or quote."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def distinct_texts(texts: Sequence[str]) -> list[str]:
    """Texts in order, dropping any whose normalized form was already seen."""
    seen: set[str] = set()
    out = []
    for text in texts:
        key = normalize_text(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    return out
