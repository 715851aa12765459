"""AutoDQ without a model: the caption judge's lexical backend (`--backend lexical`).

The same scorer as `AutoDQ` (recall = entailed ground-truth events / ground-truth events, precision
= entailed predicted events / predicted events, precomputed `events` honoured, ground-truth events
cached), with its two model steps replaced by versavid_r1.judges.lexical: events are the caption's
sentence and clause pieces, and an event is entailed when one event of the other caption covers
`lexical_entail_cover` of its content words. Deterministic, no model calls; a stand-in for smoke
tests, debugging and the CPU demo, never for the paper's numbers.
"""
from __future__ import annotations

from .autodq import ENTAILMENT, NEUTRAL, AutoDQ
from .lexical import caption_events, entailed


class LexicalAutoDQ(AutoDQ):
    def __init__(self, settings):
        super().__init__(client=None, settings=settings)
        self.model = "lexical"

    async def extract_events(self, caption: str) -> list[str]:
        return caption_events(caption, self.s.max_events)

    async def classify(self, events: list[str], caption: str) -> list[str]:
        others = caption_events(caption, self.s.max_events)
        return [ENTAILMENT if entailed(e, others, self.s.lexical_entail_cover) else NEUTRAL for e in events]
