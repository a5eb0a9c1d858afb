"""LoCoMo conversations as an agent's duplicate-heavy memory log: ``compression.py``'s workload.

Each conversation becomes one agent's log: every turn an episodic memory, every
``observation`` fact a semantic memory, and a lightly reworded second copy of a
seeded fraction of the turns (see ``reword``), the kind of near-duplicate that
consolidation should merge. Every memory records in ``metadata['turns']`` the turn
ids it stands for, so recall can be scored against LoCoMo's evidence.

Example:
    >>> import random
    >>> text = "I'm really happy, it's a great day!"
    >>> reword(text, random.Random("x")) == reword(text, random.Random("x")) != text
    True
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

import locomo_data

# word:replacement pairs (``_`` is a space); a rewording swaps up to two synonyms.
_SYNONYMS = dict(
    pair.replace("_", " ").split(":")
    for pair in """great:awesome awesome:great really:truly very:super happy:glad glad:happy
    kids:children children:kids amazing:incredible love:adore thanks:thank_you big:large
    little:small pretty:quite hard:tough wonderful:lovely lovely:wonderful started:began
    picture:photo photo:picture beautiful:gorgeous fun:enjoyable excited:thrilled nice:good
    friends:pals job:work""".split()
)
_CONTRACTIONS = dict(
    pair.replace("_", " ").split(":")
    for pair in """I'm:I_am it's:it_is It's:It_is don't:do_not can't:cannot that's:that_is
    That's:That_is I've:I_have you're:you_are You're:You_are I'll:I_will didn't:did_not""".split()
)
_FILLERS = ("Well, ", "Oh, ", "Honestly, ", "You know, ", "So, ", "Yeah, ")
_WORD = re.compile(r"[A-Za-z']+")
# The caption's label in this log's turn texts (``locomo.py`` writes ``shares``); the
# cached embeddings and the published figures are of these exact texts.
_CAPTION_LABEL = "shares:"


def reword(text: str, rng: random.Random) -> str:
    """A light, deterministic rewording: synonyms, contractions, a filler, punctuation, casing.

    It makes the kind of near-duplicate an agent's log fills up with: the same
    turn restated, logged twice by two tools, or echoed back. Each operation
    applies with a fixed probability drawn from ``rng``.
    """
    out = text
    if rng.random() < 0.8:
        swaps = [w for w in _WORD.findall(out) if w.lower() in _SYNONYMS]
        for word in rng.sample(swaps, min(len(swaps), 2)):
            new = _SYNONYMS[word.lower()]
            new = new.capitalize() if word[0].isupper() else new
            out = re.sub(rf"\b{re.escape(word)}\b", new, out, count=1)
    if rng.random() < 0.6:
        for short, long in _CONTRACTIONS.items():
            if short in out:
                out = out.replace(short, long, 1)
                break
    if rng.random() < 0.4:
        out = rng.choice(_FILLERS) + out[:1].lower() + out[1:]
    roll = rng.random()
    if roll < 0.3:
        out = out.replace("!", ".")
    elif roll < 0.5:
        out = out.rstrip(".!?") + "!!"
    if rng.random() < 0.2:
        out = out.lower()
    if out == text:
        out = rng.choice(_FILLERS) + text
    return out


@dataclass
class Conversation:
    """One LoCoMo conversation as an agent's memory log and its questions."""

    name: str
    items: list[dict[str, Any]] = field(default_factory=list)
    """Memories to add: text, kind, session, created_at, metadata (with ``turns``)."""
    questions: list[dict[str, Any]] = field(default_factory=list)
    """``question``, ``evidence`` (turn ids) and ``category``."""


def build_conversation(
    dialogue: locomo_data.Conversation, *, copy_fraction: float, seed: int
) -> Conversation:
    """Turns (episodic), observations (semantic) and reworded copies of some turns.

    Every memory records in ``metadata['turns']`` the turn ids it stands for: its
    own ``dia_id`` for a turn and its copy, the evidence turns for an observation.
    """
    conv = Conversation(dialogue.sample_id)
    copies: list[dict[str, Any]] = []
    for s in dialogue.sessions:
        session, start = f"s{s.number}", s.date
        for i, turn in enumerate(s.turns):
            at = start + timedelta(seconds=30 * i)
            meta = {"dia_id": turn.dia_id, "speaker": turn.speaker, "turns": [turn.dia_id]}
            conv.items.append(
                {
                    "text": turn.render(caption_label=_CAPTION_LABEL),
                    "kind": "episodic",
                    "session": session,
                    "created_at": at,
                    "metadata": meta,
                }
            )
            # One generator per turn: a larger fraction copies a superset of the same turns,
            # reworded the same way (so cached embeddings carry over between runs).
            rng = random.Random(f"{seed}:{conv.name}:{turn.dia_id}")
            if rng.random() < copy_fraction:
                copies.append(
                    {
                        "text": turn.render(reword(turn.text, rng), caption_label=_CAPTION_LABEL),
                        "kind": "episodic",
                        "session": session,
                        "created_at": at + timedelta(seconds=10),
                        "metadata": {**meta, "copy": True},
                    }
                )
        by_speaker = sorted(s.observations, key=lambda o: o.speaker)  # stable: file order kept
        for speaker, facts in groupby(by_speaker, key=lambda o: o.speaker):
            for j, fact in enumerate(facts):
                turns = list(fact.evidence)
                conv.items.append(
                    {
                        "text": fact.text,
                        "kind": "semantic",
                        "session": session,
                        "created_at": start + timedelta(hours=1, seconds=j),
                        "metadata": {"speaker": speaker, "evidence": turns, "turns": turns},
                    }
                )
    conv.items.extend(copies)
    conv.questions = [
        {"question": q.question, "evidence": sorted(q.evidence), "category": q.category}
        for q in dialogue.questions
    ]
    return conv


def load_locomo(
    path: Path, *, copy_fraction: float, seed: int, limit: int | None = None
) -> list[Conversation]:
    """The first ``limit`` conversations (all if None or 0) of a LoCoMo file, as memory logs."""
    return [
        build_conversation(c, copy_fraction=copy_fraction, seed=seed)
        for c in locomo_data.read_locomo(path, limit=limit)
    ]
