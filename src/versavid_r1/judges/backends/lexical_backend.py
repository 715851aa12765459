"""The Qwen2.5 judge without a model: verdicts by content-word coverage (versavid_r1.judges.lexical).

It answers each verdict request with the bare verdict text ("0", "1", "2", "True", "False"), read
from the request's `judge_task`, so the reply still goes through the service's strict verdict parser
and the same HTTP API as a model's. It has no chat model: a `/v1/chat/completions` request (no
`judge_task`) gets 503 with the reason. Deterministic and instant; a stand-in for smoke tests,
debugging and the CPU demo, never for the paper's numbers.
"""
from __future__ import annotations

from ...tasks import DARK_EVENT_INFER, MIX_VID_QA
from ..lexical import dei_score, mixvidqa_verdict
from .base import BackendError, GenRequest, GenResult, JudgeBackend, JudgeTask


class LexicalBackend(JudgeBackend):
    name = "lexical"

    def __init__(self, settings):
        super().__init__(settings.model_name)
        self.settings = settings

    def verdict(self, task: JudgeTask) -> str:
        """The verdict text for one request."""
        s = self.settings
        if task.problem_type == DARK_EVENT_INFER:
            return str(dei_score(task.prediction, task.ground_truth, s.lexical_full_cover,
                                 s.lexical_partial_cover, s.lexical_min_precision))
        if task.problem_type == MIX_VID_QA:
            return str(mixvidqa_verdict(task.prediction, task.ground_truth, task.question,
                                        s.lexical_answer_cover, s.lexical_min_precision))
        raise BackendError(f"the lexical backend does not judge problem_type {task.problem_type!r}")

    async def _generate_many(self, requests: list[GenRequest]) -> list[GenResult]:
        if any(r.judge_task is None for r in requests):
            raise BackendError("the lexical backend only gives judge verdicts (/predict, /predict_batch); it has "
                               "no chat model for /v1/chat/completions")
        self.stats.generate_calls += 1
        self.stats.batched_requests += len(requests)
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(requests))
        return [GenResult(text=self.verdict(r.judge_task)) for r in requests]
