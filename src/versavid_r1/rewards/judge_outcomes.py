"""What the judge client makes of the judges' answers: results, failures, counts and the cache.

* `OutcomePolicy.classify` turns one reply item into a result or a `JudgeFailure`: an unparseable
  verdict or a per-item `ItemError` is a failure of that item (never a reward of 0); a score outside
  the task's range is a protocol error (`JudgeError`); a `SUSPECTED_INJECTION` verdict (a caption result
  with `suspected_injection`) is a result (scored 0 by the judge's decoy check) that is logged and
  counted, as is every result the decoy check ran on (`decoy_checked`).
* `OutcomePolicy.check_rate` keeps the last `window` judged items; under `on_judge_error="raise"`
  it stops the run once more than `max_rate × window` of them could not be scored, because then
  the judge is broken (wrong model, wrong prompt), not the answers.
* `OutcomePolicy.screen` runs the lexical injection detector on the answers about to be judged.
* `ResultCache`: the bounded, thread-safe LRU cache of successful results.
"""
from __future__ import annotations

import collections
import logging
import math
import threading
from typing import Optional, Union

from versavid_r1 import tasks
from versavid_r1.protocol import SUSPECTED_INJECTION, UNPARSEABLE, CaptionResult, ItemError
from versavid_r1.rewards.injection import injection_hits
from versavid_r1.rewards.judge_items import (
    PERMANENT_FAILURE, UNPARSEABLE_FAILURE, JudgeError, JudgeFailure, JudgeItem, JudgeStats, Result,
)

logger = logging.getLogger("versavid_r1.rewards.judge_client")

Outcome = Union[Result, JudgeFailure]


class ResultCache:
    """A bounded LRU cache of successful results, keyed by `JudgeItem.key()` (0 entries: off)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._data: "collections.OrderedDict[tuple, Result]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Optional[Result]:
        if self.size <= 0:
            return None
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: tuple, value: Result) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class OutcomePolicy:
    """Classification, counting and the unscorable-rate check of the client (module docstring)."""

    def __init__(self, stats: JudgeStats, on_judge_error: str, max_rate: float, window: int) -> None:
        self.stats = stats
        self.on_judge_error = on_judge_error
        self.max_rate = float(max_rate)
        self.window = int(window)
        # Recent judged items: True = the judge could not score it (unparseable or permanent).
        self._recent: "collections.deque[bool]" = collections.deque(maxlen=self.window)
        self._lock = threading.Lock()

    def screen(self, items: list[JudgeItem]) -> None:
        """Count and log answers that talk to the grader (lexical; the reward is not changed here)."""
        flagged = [(item, hits) for item in items for hits in [injection_hits(item.answer)] if hits]
        if flagged:
            self.stats.add(suspected_injection=len(flagged))
            item, hits = flagged[0]
            logger.warning("%d answer(s) look like instructions to the judge (judge/suspected_injection), "
                           "e.g. %s answer %r matched %r", len(flagged), item.problem_type,
                           item.answer[:200], hits[:3])

    def permanent(self, reason: str) -> JudgeFailure:
        self.stats.add(permanent=1)
        return JudgeFailure(PERMANENT_FAILURE, reason)

    def classify(self, judge: str, url: str, item: JudgeItem, result: Union[Result, ItemError]) -> Outcome:
        """The item's outcome: the result, or a JudgeFailure for what the judge could not score.
        Raises JudgeError for a result that breaks the protocol (a score out of range)."""
        if isinstance(result, ItemError):
            if result.permanent:
                return self.permanent(f"judge {judge!r} at {url}: {result.error}")
            raise JudgeError(judge, url, f"item error: {result.error}")   # an outage: skip or raise
        if isinstance(result, CaptionResult):
            for name in ("recall", "precision"):
                v = getattr(result, name)
                if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                    raise JudgeError(judge, url, f"{name}={v!r} outside [0, 1]")
            if result.decoy_recall is not None or result.decoy_precision is not None:
                self.stats.add(decoy_checked=1)
            if result.suspected_injection:
                self._rejected(judge, item)
            return result
        lo, hi = tasks.TASK_REWARD_RANGE[item.problem_type]
        if not (math.isfinite(result.output) and lo <= result.output <= hi):
            raise JudgeError(judge, url, f"{item.problem_type} score {result.output!r} outside [{lo}, {hi}]")
        if result.verdict == UNPARSEABLE:
            self.stats.add(unparseable=1)
            return JudgeFailure(UNPARSEABLE_FAILURE, f"judge {judge!r} at {url}: unparseable "
                                f"{item.problem_type} verdict {str(result.raw)[:200]!r}", result)
        if result.decoy_verdict is not None or result.verdict == SUSPECTED_INJECTION:
            self.stats.add(decoy_checked=1)
        if result.verdict == SUSPECTED_INJECTION:
            self._rejected(judge, item)
        return result

    def _rejected(self, judge: str, item: JudgeItem) -> None:
        """Count and log a positive score the decoy check did not trust."""
        self.stats.add(injection_rejected=1)
        if not injection_hits(item.answer):  # else the lexical screen has counted it already
            self.stats.add(suspected_injection=1)
        logger.warning("judge %r: a positive %s score was not trusted (the answer did as well against a decoy "
                       "ground truth): reward 0; answer %r", judge, item.problem_type, item.answer[:200])

    def check_rate(self, judged: int, failures: list[JudgeFailure]) -> None:
        """Record one call's judged items; under `raise`, stop once too many recent ones failed."""
        with self._lock:
            self._recent.extend([False] * (judged - len(failures)) + [True] * len(failures))
            bad = sum(self._recent)
        if not failures:
            return
        logger.warning("%d judged item(s) got no score (%s); e.g. %s", len(failures),
                       ", ".join(sorted({f.kind for f in failures})), failures[0].reason[:300])
        if self.on_judge_error == "raise" and bad > self.max_rate * self.window:
            f = failures[0]
            raise JudgeError(
                "judges", "(several)",
                f"{bad} of the last {self.window} judged items got no score (unparseable verdicts or "
                f"permanent failures), more than max_unparseable_rate={self.max_rate:g}; last: "
                f"{f.kind}: {f.reason[:300]}. The judge does not answer in the requested format: check "
                f"its model and prompt, or raise max_unparseable_rate, or use on_judge_error=skip",
                attempts=0)
