"""The Qwen2.5 judge's scoring, independent of HTTP: DarkEventInfer 0/1/2 and MixVidQA True/False.

Scoring: the prediction and the ground truth are the texts inside <answer> (versavid_r1.judges.texts:
a text without tags is taken whole, a completion with <think> but no <answer> has an empty answer). An
empty prediction scores 0 with verdict "empty" and the model is not asked. The judge is asked for a
bare verdict with greedy decoding and `max_new_tokens` new tokens; its reply is parsed strictly
(versavid_r1.judges.verdict): anything else is "unparseable" (a failure the client skips and counts,
never a reward). Positive verdicts then pass the decoy check (versavid_r1.judges.decoy) unless it is
switched off: one that does at least as well against a decoy ground truth becomes "suspected_injection", 0.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Optional

from fastapi import HTTPException

from ..protocol import EMPTY, SUSPECTED_INJECTION, UNPARSEABLE, JudgeRequest, JudgeResult
from .backends.base import BackendError, GenRequest, JudgeBackend, JudgeTask, PromptTooLong, RequestTooLarge
from .decoy import check_decoys, positives, rejects, request_decoys
from .prompting import judge_messages
from .security import OverLimit, check_text
from .settings import QwenJudgeSettings
from .texts import answer_text
from .verdict import Verdict, parse_verdict

log = logging.getLogger("versavid_r1.judges.qwen")


class QwenJudge:
    """Scoring logic of the Qwen2.5 judge (the app in qwen_app is a thin HTTP layer over it)."""

    def __init__(self, settings: QwenJudgeSettings, backend: JudgeBackend):
        self.settings = settings
        self.backend = backend
        self.verdicts: Counter = Counter()
        self.decoy_checks = 0

    def _validate(self, items: list[JudgeRequest], prefix: str) -> list[tuple[str, str]]:
        lim = self.settings.limits.max_field_chars
        out = []
        for i, it in enumerate(items):
            where = f"{prefix}[{i}]." if prefix else ""
            for name in ("content", "sol", "question"):
                check_text(where + name, getattr(it, name), lim)
            check_decoys(where, it.decoys, lim)
            gt = answer_text(it.sol)
            if not gt:
                raise HTTPException(422, detail=f"field '{where}sol' holds no ground-truth text")
            out.append((answer_text(it.content), gt))
        return out

    async def _generate(self, asks: list[tuple[int, GenRequest]], prefix: str) -> list[str]:
        """The model's replies to `asks` ((item index, request) pairs), as HTTP errors on failure."""
        try:
            outs = await self.backend.generate_many([r for _, r in asks])
        except RequestTooLarge as exc:
            raise OverLimit(str(exc)) from exc
        except PromptTooLong as exc:
            i = asks[exc.index][0] if exc.index < len(asks) else 0
            where = f"{prefix}[{i}]: " if prefix else ""
            raise OverLimit(f"{where}{exc}") from exc
        except BackendError as exc:
            raise HTTPException(503, detail=str(exc)) from exc
        return [o.text for o in outs]

    def _ask(self, item: JudgeRequest, prediction: str, truth: str) -> GenRequest:
        return GenRequest(messages=judge_messages(item.problem_type, prediction, truth, item.question),
                          max_new_tokens=self.settings.max_new_tokens,
                          judge_task=JudgeTask(item.problem_type, prediction, truth, item.question))

    async def score(self, items: list[JudgeRequest], prefix: str = "items") -> list[JudgeResult]:
        texts = self._validate(items, prefix)
        results: list[Optional[JudgeResult]] = [None] * len(items)
        asks: list[tuple[int, GenRequest]] = []
        for i, (it, (pred, gt)) in enumerate(zip(items, texts)):
            if not pred:
                results[i] = JudgeResult(output=0.0, verdict=EMPTY, raw=None)
            else:
                asks.append((i, self._ask(it, pred, gt)))
        for (i, _), reply in zip(asks, await self._generate(asks, prefix)):
            v = parse_verdict(items[i].problem_type, reply)
            if not v.parsed:
                log.debug("unparseable %s verdict: %r", items[i].problem_type, reply[:200])
            results[i] = JudgeResult(output=v.score, verdict=v.label, raw=reply)
        if self.settings.decoy_check:
            await self._decoy_check(items, texts, results, prefix)
        for r in results:
            self.verdicts[r.verdict] += 1
        return results  # type: ignore[return-value]

    async def _decoy_check(self, items: list[JudgeRequest], texts: list[tuple[str, str]],
                           results: list[Optional[JudgeResult]], prefix: str) -> None:
        """Judge each positive prediction against its decoy ground truths (versavid_r1.judges.decoy)."""
        types = [it.problem_type for it in items]
        truths, preds = [gt for _, gt in texts], [pred for pred, _ in texts]
        asks: list[tuple[int, GenRequest]] = []
        for i in positives([r.verdict if r is not None else None for r in results]):
            decoys = request_decoys(i, types, truths) if items[i].decoys is None else items[i].decoys
            asks += [(i, self._ask(items[i], preds[i], answer_text(d))) for d in decoys if answer_text(d)]
        if not asks:
            return
        self.decoy_checks += len(asks)
        best: dict[int, Verdict] = {}
        for (i, _), reply in zip(asks, await self._generate(asks, prefix)):
            v = parse_verdict(items[i].problem_type, reply)
            if v.parsed and (i not in best or v.score > best[i].score):
                best[i] = v
        for i in dict.fromkeys(i for i, _ in asks):
            first, decoy = results[i], best.get(i)
            if decoy is not None and rejects(first.output, [decoy.score]):
                log.info("suspected injection (%s verdict %s, decoy verdict %s): %r", items[i].problem_type,
                         first.verdict, decoy.label, preds[i][:200])
                results[i] = JudgeResult(output=0.0, verdict=SUSPECTED_INJECTION, raw=first.raw,
                                         decoy_verdict=decoy.label)
            else:
                first.decoy_verdict = decoy.label if decoy is not None else UNPARSEABLE
