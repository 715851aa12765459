"""Lexical judging: content-word coverage, a weight-free and deterministic stand-in for the LLM judges.

It serves smoke tests, debugging and the CPU demo, where no judge model is at hand. It reads words,
not meaning: paraphrases with other words, negation and wrong details that share the reference's
words fool it. Never report its scores as the paper's judged metrics.

What it computes (docs/judges.md, "The lexical backend", says the same):

- **content words** of a text (`versavid_r1.words`): the lower-cased runs of letters and digits, minus single
  letters and `prompts.LEXICAL_STOP_WORDS`, each cut by `stem` (one light suffix rule), as a set;
- **coverage(x, y)** = |content(x) ∩ content(y)| / |content(x)| (0 when x has no content word);
- **DarkEventInfer** (0/1/2): c = coverage(ground truth, prediction) and the prediction's precision
  p = coverage(prediction, ground truth). 2 when c ≥ `full_cover`, 1 when c ≥ `partial_cover`, else 0;
  and 0 whenever p < `min_precision` (a list of guesses is not a description);
- **MixVidQA** (True/False): True when coverage(ground truth, prediction) ≥ `answer_cover` and the
  prediction's precision against the ground truth and the question together is ≥ `min_precision`
  (an answer may repeat the question's words: "the circle turns blue");
- **AutoDQ events** of a caption: its pieces between sentence ends, semicolons, line breaks and
  `prompts.LEXICAL_CLAUSE_CONNECTIVES`, those with at least one content word, at most `max_events`;
- **entailment** of an event by a caption: some event of the caption covers at least
  `entail_cover` of the event's content words (never "contradiction": words cannot tell).
"""
from __future__ import annotations

import re
from typing import Iterable

from .. import prompts
from ..words import content_words, stem  # noqa: F401 - re-exported: the lexical judge's words

_PIECE_BREAK = re.compile(
    r"[.!?;\n]+|\b(?:"
    + "|".join(re.escape(c) for c in sorted(prompts.LEXICAL_CLAUSE_CONNECTIVES, key=len, reverse=True))
    + r")\b",
    re.IGNORECASE,
)


def coverage(of: Iterable[str] | str, by: Iterable[str] | str) -> float:
    """Share of the content words of `of` that `by` also has (texts or word sets)."""
    a = content_words(of) if isinstance(of, str) else frozenset(of)
    b = content_words(by) if isinstance(by, str) else frozenset(by)
    return len(a & b) / len(a) if a else 0.0


def dei_score(prediction: str, ground_truth: str, full_cover: float, partial_cover: float,
              min_precision: float) -> int:
    """DarkEventInfer score 0, 1 or 2 of `prediction` against `ground_truth`."""
    if coverage(prediction, ground_truth) < min_precision:
        return 0
    c = coverage(ground_truth, prediction)
    return 2 if c >= full_cover else 1 if c >= partial_cover else 0


def mixvidqa_verdict(prediction: str, ground_truth: str, question: str, answer_cover: float,
                     min_precision: float) -> bool:
    """Whether `prediction` answers `question` as `ground_truth` does."""
    allowed = content_words(ground_truth) | content_words(question)
    return (coverage(ground_truth, prediction) >= answer_cover
            and coverage(prediction, allowed) >= min_precision)


def caption_events(caption: str, max_events: int) -> list[str]:
    """The events of a caption: its pieces that hold a content word, whitespace-normalised, in order,
    without repeats, at most `max_events`."""
    events: list[str] = []
    for piece in _PIECE_BREAK.split(caption or ""):
        piece = " ".join(piece.split()).strip(" ,:-")
        if piece and content_words(piece) and piece not in events:
            events.append(piece)
    return events[:max_events]


def entailed(event: str, others: list[str], entail_cover: float) -> bool:
    """Whether one of `others` (the other caption's events) covers enough of `event`."""
    words = content_words(event)
    return bool(words) and any(coverage(words, content_words(o)) >= entail_cover for o in others)
