"""What the judge client sends and counts: items to score, errors, counters, wire conversion.

Kept apart from `judge_client` (the HTTP machinery) so the data types can be read, imported and tested
without it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from versavid_r1 import tasks
from versavid_r1.answer import wrap_answer
from versavid_r1.protocol import EMPTY, CaptionRequest, CaptionResult, JudgeRequest, JudgeResult
from versavid_r1.rewards.format import answer_text

Result = Union[JudgeResult, CaptionResult]


class JudgeError(RuntimeError):
    """A judge could not score an item. Names the URL and the cause.

    `fatal` is True for errors that `on_judge_error="skip"` must not hide (4xx: a request the
    service rejects is a bug on one side of the protocol, not an unavailable judge).
    `permanent` is True when the service said that this item cannot be scored (HTTP 422 with
    `"permanent": true`, versavid_r1.protocol): retrying will not help, skipping it is safe.
    `over_limit` is True when the service refused the request as too large (413, or 422 with
    `"over_limit": true`): a smaller request may pass; a single item refused so is skipped under `skip`.
    """

    def __init__(
        self,
        judge: str,
        url: str,
        cause: str,
        *,
        attempts: int = 1,
        status: Optional[int] = None,
        fatal: bool = False,
        permanent: bool = False,
        over_limit: bool = False,
    ) -> None:
        self.judge = judge
        self.url = url
        self.cause = cause
        self.attempts = attempts
        self.status = status
        self.fatal = fatal
        self.permanent = permanent
        self.over_limit = over_limit
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
        super().__init__(f"judge {judge!r} at {url} failed{tries}: {cause}")


# Kinds of JudgeFailure: the judge answered but could not score the item (its reply held no clean
# verdict / the service reported a permanent per-item failure), or it could not be reached.
UNPARSEABLE_FAILURE = "unparseable"
PERMANENT_FAILURE = "permanent"
OUTAGE_FAILURE = "outage"


@dataclass(frozen=True)
class JudgeFailure:
    """Why one item got no score. `permanent`: scoring it again will give the same failure (an
    evaluation can record it as final); otherwise the judge was unavailable (score it again later).
    `result` is the judge's reply when there was one (the unparseable verdict with its `raw` text)."""

    kind: str
    reason: str
    result: Optional["Result"] = None

    @property
    def permanent(self) -> bool:
        return self.kind in (UNPARSEABLE_FAILURE, PERMANENT_FAILURE)


@dataclass(frozen=True)
class JudgeItem:
    """One answer to score. `answer` is the extracted answer text (no tags); `solution` is the
    ground truth as stored in the dataset (sent as `sol`); `question` is the row's own question;
    `events` the caption row's precomputed ground-truth events (the judge then skips extracting them);
    `decoys` the decoy ground truths of the judge's decoy check (versavid_r1.rewards.decoys; () = no
    check, None = the service's own choice), filled in by the client."""

    problem_type: str
    answer: str
    solution: str
    question: str = ""
    events: Optional[tuple[str, ...]] = None
    decoys: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if self.problem_type not in tasks.JUDGE_OF_TYPE:
            raise ValueError(
                f"problem type {self.problem_type!r} is not judge-scored; judged types: "
                f"{sorted(tasks.JUDGE_OF_TYPE)}"
            )

    @property
    def judge(self) -> str:
        return tasks.JUDGE_OF_TYPE[self.problem_type]

    def key(self) -> tuple[str, str, str, str, str]:
        question = "" if self.judge == tasks.CAPTION_JUDGE else self.question.strip()
        return (self.judge, self.problem_type, question, answer_text(self.solution), self.answer.strip())


@dataclass
class JudgeStats:
    """Cumulative counters of one JudgeClient (all event loops together)."""

    calls: int = 0  # items sent to a judge (each item of a batch counts; retries do not)
    cache_hits: int = 0  # items answered from the cache or by an identical item of the same call
    retries: int = 0  # HTTP attempts repeated after a retryable error
    failures: int = 0  # items that could not be scored (after the last retry / malformed reply)
    skipped: int = 0  # items returned as None because of on_judge_error="skip"
    requests: int = 0  # HTTP attempts (including retries)
    batch_requests: int = 0  # logical requests that used the batch endpoint
    unparseable: int = 0  # replies without a clean verdict: a judge failure of that item, not a 0
    permanent: int = 0  # items the judge reported as permanently unscorable (e.g. non-JSON caption replies)
    suspected_injection: int = 0  # answers flagged by the decoy check or the lexical detector
    injection_rejected: int = 0  # of those, positive verdicts the decoy check turned into 0
    decoy_checked: int = 0  # positive verdicts / captions the judge checked against decoys
    decoy_unavailable: int = 0  # items sent without a decoy while the check was on (no candidate)
    empty: int = 0  # items with an empty answer: scored 0 without a request
    latency_total_s: float = 0.0  # sum over successful HTTP attempts
    latency_max_s: float = 0.0  # since the last reset_latency_max() (versavid_reward resets it per call)
    latency_count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    COUNTERS = (
        "calls", "cache_hits", "retries", "failures", "skipped", "requests", "batch_requests",
        "unparseable", "permanent", "suspected_injection", "injection_rejected", "decoy_checked",
        "decoy_unavailable", "empty",
        "latency_total_s", "latency_count",
    )

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self.latency_total_s += seconds
            self.latency_count += 1
            self.latency_max_s = max(self.latency_max_s, seconds)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            snap = {name: getattr(self, name) for name in self.COUNTERS}
            snap["latency_max_s"] = self.latency_max_s
            return snap

    def reset_latency_max(self) -> None:
        with self._lock:
            self.latency_max_s = 0.0

    @staticmethod
    def delta(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
        """Counter differences between two snapshots (latency_max_s is taken from `after`)."""
        out = {k: after[k] - before.get(k, 0) for k in JudgeStats.COUNTERS}
        out["latency_max_s"] = after.get("latency_max_s", 0.0)
        return out


def request_model(item: JudgeItem) -> Union[JudgeRequest, CaptionRequest]:
    content = wrap_answer(item.answer.strip())
    decoys = None if item.decoys is None else list(item.decoys)
    if item.judge == tasks.CAPTION_JUDGE:
        events = list(item.events) if item.events else None
        return CaptionRequest(content=content, sol=item.solution, events=events, decoys=decoys)
    return JudgeRequest(content=content, sol=item.solution, problem_type=item.problem_type, question=item.question,
                        decoys=decoys)


def empty_result(item: JudgeItem) -> Result:
    if item.judge == tasks.CAPTION_JUDGE:
        return CaptionResult(recall=0.0, precision=0.0)
    return JudgeResult(output=0.0, verdict=EMPTY)
