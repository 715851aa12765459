"""Which decoy ground truths the judge client sends with an item (the judges' decoy check).

The decoy check (versavid_r1.judges.decoy) judges a prediction whose verdict was positive once more,
against the ground truth of another row, and does not trust the verdict when the decoy does at least as
well. The client chooses the decoys, because it sees the data: in the paper's layout one judge request
holds the 8 completions of one prompt, which share one ground truth, so the service alone has nothing to
compare with.

`DecoyPool` keeps ground truths per problem type (with their questions): those of the training rows
(`add_rows`, called by the trainer before the first step) and those of every item the client has scored.
For an item it picks, deterministically, `k` of them that

- share **no content word** with the item's ground truth (`versavid_r1.words.content_words`: stop-words
  and single letters do not count, inflections do), so an honest answer that matches its own ground
  truth cannot also match the decoy; the prediction is deliberately not consulted, so an answer cannot
  steer the choice by listing words;
- come, among those, from the rows whose **question is most alike** (content words in common; all
  DarkEventInfer rows ask the same question), so the decoy is an answer of the same kind ("blue" for a
  colour question): an instruction that pays only for "a reference that names a colour" then pays for
  the decoy too. Ties are broken by a hash of the item, so the same item always gets the same decoys.

An item with no such candidate is sent with an empty list: it is judged without the check and counted
(`judge/decoy_unavailable`).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Optional

from versavid_r1 import tasks
from versavid_r1.rewards.format import answer_text
from versavid_r1.words import content_words

DEFAULT_POOL_SIZE = 4096  # ground truths kept per problem type (the oldest go first)


class DecoyPool:
    """Ground truths (and their questions) per problem type, to choose decoys from (module docstring)."""

    def __init__(self, max_per_type: int = DEFAULT_POOL_SIZE) -> None:
        if max_per_type < 1:
            raise ValueError(f"max_per_type must be >= 1, got {max_per_type}")
        self.max_per_type = int(max_per_type)
        # problem type -> ground truth -> (its content words, the content words of its question)
        self._pool: dict[str, "OrderedDict[str, tuple[frozenset[str], frozenset[str]]]"] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pool.values())

    def add(self, problem_type: str, truth: str, question: str = "") -> None:
        """Remember one ground truth (the text inside its `<answer>`) of a judged problem type."""
        truth = answer_text(truth) if isinstance(truth, str) else ""
        words = content_words(truth)
        if problem_type not in tasks.JUDGED_TYPES or not words:
            return
        with self._lock:
            pool = self._pool.setdefault(problem_type, OrderedDict())
            pool[truth] = (words, content_words(question or ""))
            pool.move_to_end(truth)
            while len(pool) > self.max_per_type:
                pool.popitem(last=False)

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Remember the ground truths of dataset rows (`problem_type`, `solution`, `problem`); returns how
        many rows of a judged type were seen."""
        n = 0
        for row in rows:
            ptype = row.get("problem_type")
            if ptype in tasks.JUDGED_TYPES and isinstance(row.get("solution"), str):
                self.add(ptype, row["solution"], str(row.get("problem") or ""))
                n += 1
        return n

    def pick(self, problem_type: str, truth: str, question: str = "", k: int = 1, salt: str = "") -> list[str]:
        """Up to `k` decoy ground truths for an item (module docstring); [] when none qualifies."""
        truth = answer_text(truth)
        own, asked = content_words(truth), content_words(question or "")
        with self._lock:
            entries = list(self._pool.get(problem_type, {}).items())
        ranked = []
        for cand, (words, cand_question) in entries:
            if words & own or cand == truth:
                continue
            alike = len(asked & cand_question) / len(asked | cand_question) if asked | cand_question else 0.0
            tie = hashlib.sha256(f"{salt}\x00{truth}\x00{cand}".encode("utf-8", "replace")).digest()
            ranked.append((-alike, tie, cand))
        ranked.sort()
        return [cand for _, _, cand in ranked[:max(0, int(k))]]


def decoys_for(pool: Optional[DecoyPool], problem_type: str, truth: str, question: str, answer: str,
               k: int) -> tuple[str, ...]:
    """The decoys the client sends with one item (`k` 0 or no pool: none, i.e. no decoy check)."""
    if pool is None or k <= 0:
        return ()
    return tuple(pool.pick(problem_type, truth, question, k, salt=answer.strip()))
