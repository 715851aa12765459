"""AutoDQ (the DREAM-1K caption metric) with any OpenAI-compatible chat model.

1. Extract at most `max_events` atomic events from each caption (JSON reply).
2. For the ground-truth events, classify the predicted caption as entailment / neutral /
   contradiction of each; for the predicted events, classify the ground-truth caption (JSON replies).
3. recall = entailed ground-truth events / ground-truth events;
   precision = entailed predicted events / predicted events. Only "entailment" counts.

Two sets of rules (`settings.scoring`):
- "project" (default): a side with no events has ratio 0.0 (its empty event list is returned, so it is
  visible), an empty prediction scores 0/0 without a model call, captions are used as written;
- "official" (DREAM-1K's evaluation code): a side with no events has ratio 1.0, both captions are
  lower-cased (and double quotes become single quotes for extraction), an extracted event that repeats
  counts again (not deduplicated), an empty prediction has no events (precision 1.0) and entails nothing
  (recall 0.0 unless the ground truth has no events either).
The prompt templates come from `settings.prompt_file` or the project's own (`autodq_prompts`).

Robustness: JSON mode (`response_format={"type": "json_object"}`) for prompts that ask for JSON, where the
server supports it (`json_mode="auto"`: a call the server rejects is repeated without it; that call only, so one
over-long request cannot switch JSON mode off for the life of the process), tolerant parsing (code
fences, text around the JSON, common key and label variants), bounded retries of malformed replies
(the first try is greedy; retries use `retry_temperature` and tell the model what was wrong).
`AutoDQError.permanent` tells the service which failures are the item's own (the model kept
answering malformed replies, or the endpoint rejected the request itself: the service answers 422
with `"permanent": true`) and which are outages (the endpoint unreachable or failing: 503, retried).
Ground-truth events are cached by a hash of model, event limit and caption; concurrent requests for
the same caption share one extraction. A semaphore bounds the model calls in flight. When the model
keeps failing, `AutoDQError` carries the reason (the service answers 503 with it): never a silent 0.
"""
from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import logging
import re
from collections import Counter, OrderedDict
from typing import Any, Callable, Optional

from .autodq_prompts import load_prompt_file

log = logging.getLogger("versavid_r1.judges.autodq")

ENTAILMENT, NEUTRAL, CONTRADICTION = "entailment", "neutral", "contradiction"
RELATIONS = (ENTAILMENT, NEUTRAL, CONTRADICTION)


class AutoDQError(RuntimeError):
    """The model could not be used to score a caption; the message says why. `permanent`: asking
    again will not help (malformed replies, a request the endpoint rejects), as opposed to an outage."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


# --- tolerant JSON parsing ----------------------------------------------------------------------------
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def parse_json_reply(text: Optional[str]) -> Any:
    """The first JSON object or array in `text` (code fences and surrounding prose are ignored)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty reply")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for cand in candidates:
        cand = cand.strip()
        try:
            return json.loads(cand)
        except json.JSONDecodeError:
            pass
        for i, ch in enumerate(cand):
            if ch in "{[":
                try:
                    return decoder.raw_decode(cand, i)[0]
                except json.JSONDecodeError:
                    continue
    for cand in candidates:
        obj = _python_literal(cand.strip())
        if obj is not None:
            return obj
    raise ValueError("no JSON object in reply")


def _python_literal(text: str) -> Any:
    """A Python dict or list literal in `text`, else None. DREAM-1K's extraction prompt asks for a "Python
    dictionary string", so replies with single-quoted strings are common under `--prompt-file`.
    `ast.literal_eval` evaluates literals only, never code."""
    for open_, close in (("{", "}"), ("[", "]")):
        i, j = text.find(open_), text.rfind(close)
        if 0 <= i < j:
            try:
                obj = ast.literal_eval(text[i:j + 1])
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(obj, (dict, list)):
                return obj
    return None


def _list_in(obj: Any, keys: tuple[str, ...]) -> Any:
    """The list under one of `keys` (case-insensitive) of a dict, or the dict's only list value."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for k in keys:
            if isinstance(lowered.get(k), list):
                return lowered[k]
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    raise ValueError(f"expected a JSON list under one of {list(keys)}")


def parse_events(text: Optional[str], max_events: int, dedupe: bool = True) -> list[str]:
    """Event strings from an extraction reply: {"events": [...]} or a bare list; deduplicated (unless
    `dedupe` is False: DREAM-1K's code keeps a repeated event, which then counts twice) and cut to
    `max_events`."""
    items = _list_in(parse_json_reply(text), ("events", "atomic_events", "event_list"))
    events: list[str] = []
    for it in items:
        if isinstance(it, dict):
            it = next((it[k] for k in ("event", "description", "text") if isinstance(it.get(k), str)), None)
        if not isinstance(it, str):
            raise ValueError("every event must be a string")
        ev = " ".join(it.split())
        if ev and not (dedupe and ev in events):
            events.append(ev)
    return events[:max_events]


def normalise_relation(label: Any) -> str:
    s = str(label).strip().strip(".\"'").lower()
    if s.startswith("entail"):
        return ENTAILMENT
    if s.startswith("contradict"):
        return CONTRADICTION
    if s.startswith("neutral"):
        return NEUTRAL
    raise ValueError(f"unknown relation {str(label)[:40]!r}")


def parse_relations(text: Optional[str], n: int) -> list[str]:
    """One relation per event, in order, from an entailment reply. Accepted forms:
    {"results": [{"id": 1, "relation": "entailment"}, ...]}, a bare list of such objects or of
    labels, or {"1": "entailment", ...}. Entries with ids are placed by id (1-based)."""
    obj = parse_json_reply(text)
    if isinstance(obj, dict) and obj and all(str(k).strip().isdigit() for k in obj):
        items: list = [{"id": int(k), "relation": v} for k, v in obj.items()]
    else:
        items = _list_in(obj, ("results", "relations", "labels", "entailments", "classifications"))
    labels: list[Optional[str]] = [None] * n
    by_order: list[str] = []
    for it in items:
        if isinstance(it, dict):
            lowered = {str(k).lower(): v for k, v in it.items()}
            rel = next((lowered[k] for k in ("relation", "label", "result", "relationship", "answer")
                        if k in lowered), None)
            if rel is None:
                raise ValueError("an entry has no 'relation'")
            rel = normalise_relation(rel)
            idx = lowered.get("id", lowered.get("index", lowered.get("event_id")))
            if isinstance(idx, str) and idx.strip().isdigit():
                idx = int(idx)
            if isinstance(idx, int) and not isinstance(idx, bool):
                if not 1 <= idx <= n:
                    raise ValueError(f"event id {idx} out of range 1..{n}")
                if labels[idx - 1] is not None and labels[idx - 1] != rel:
                    raise ValueError(f"event {idx} classified twice")
                labels[idx - 1] = rel
                continue
            by_order.append(rel)
        else:
            by_order.append(normalise_relation(it))
    if by_order:
        if any(lbl is not None for lbl in labels):
            raise ValueError("entries mix ids and order")
        if len(by_order) != n:
            raise ValueError(f"{len(by_order)} relations for {n} events")
        return by_order
    missing = [i + 1 for i, lbl in enumerate(labels) if lbl is None]
    if missing:
        raise ValueError(f"no relation for event(s) {missing[:5]}")
    return labels  # type: ignore[return-value]


def _asks_for_json(messages: list[dict]) -> bool:
    return any("json" in str(m.get("content", "")).lower() for m in messages)


def ratio(labels: list[str], empty: float = 0.0) -> float:
    """Share of "entailment" labels; `empty` for a side with no events (project 0.0, official 1.0)."""
    return sum(lbl == ENTAILMENT for lbl in labels) / len(labels) if labels else empty


# --- the scorer ------------------------------------------------------------------------------------------
class AutoDQ:
    """AutoDQ scoring through an `openai.AsyncOpenAI`-like client (`client.chat.completions.create`)."""

    def __init__(self, client, settings):
        self.client = client
        self.s = settings
        self.model = settings.model
        self._sem = asyncio.Semaphore(int(settings.concurrency))
        self._json_ok = settings.json_mode in ("on", "auto")   # fixed: a fallback is per call
        self._cache: "OrderedDict[str, list[str]]" = OrderedDict()
        self._inflight: dict[str, asyncio.Future] = {}
        self.active_calls = 0
        self.stats: Counter = Counter()
        self.templates = load_prompt_file(settings.prompt_file)
        self.official = settings.scoring == "official"

    @property
    def json_mode_active(self) -> bool:
        return self._json_ok

    @property
    def cache_entries(self) -> int:
        return len(self._cache)

    # -- model calls --
    async def _chat(self, messages: list[dict], temperature: float) -> str:
        import openai

        kwargs = {"model": self.model, "messages": messages, "temperature": temperature,
                  "max_tokens": self.s.max_tokens}
        # JSON mode only for a prompt that asks for JSON (OpenAI refuses JSON mode otherwise; DREAM-1K's
        # extraction prompt asks for a Python dict string), unless --json-mode on forces it.
        use_json = self._json_ok and (self.s.json_mode == "on" or _asks_for_json(messages))
        if use_json:
            kwargs["response_format"] = {"type": "json_object"}
        async with self._sem:
            self.active_calls += 1
            try:
                self.stats["calls"] += 1
                try:
                    resp = await self.client.chat.completions.create(**kwargs)
                except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                    if not (use_json and self.s.json_mode == "auto"):
                        raise
                    # Rejected: maybe JSON mode, maybe this request (too long for the context).
                    # Repeat this call without it; later calls still ask for JSON mode.
                    self.stats["json_mode_fallbacks"] += 1
                    log.warning("the model endpoint rejected a call with response_format=json_object "
                                "(%s); repeating that call without it (--json-mode off skips the "
                                "first try if the endpoint has no JSON mode)", exc)
                    kwargs.pop("response_format")
                    self.stats["calls"] += 1
                    resp = await self.client.chat.completions.create(**kwargs)
            except openai.OpenAIError as exc:
                self.stats["endpoint_errors"] += 1
                where = getattr(self.client, "base_url", "the model endpoint")
                rejected = isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError))
                raise AutoDQError(f"model endpoint {where} {'rejected the request' if rejected else 'failed'} "
                                  f"({type(exc).__name__}): {exc}", permanent=rejected) from exc
            finally:
                self.active_calls -= 1
        if not getattr(resp, "choices", None):
            return ""
        return resp.choices[0].message.content or ""

    async def _call_parsed(self, messages: list[dict], parse: Callable[[str], Any], what: str) -> Any:
        error, reply = "", ""
        for attempt in range(self.s.max_attempts):
            msgs = messages
            if attempt:
                self.stats["retries"] += 1
                msgs = messages + [
                    {"role": "assistant", "content": reply[:2000]},
                    {"role": "user", "content": self.templates.retry_message(error)},
                ]
            reply = await self._chat(msgs, 0.0 if attempt == 0 else self.s.retry_temperature)
            try:
                return parse(reply)
            except ValueError as exc:
                self.stats["malformed"] += 1
                error = str(exc)
                log.info("malformed %s reply (attempt %d/%d): %s: %r", what, attempt + 1,
                         self.s.max_attempts, error, reply[:200])
        self.stats["failures"] += 1
        raise AutoDQError(f"{what}: {self.s.max_attempts} malformed replies from model "
                          f"{self.model!r}; last problem: {error}; last reply: {reply[:200]!r}", permanent=True)

    # -- steps --
    async def extract_events(self, caption: str) -> list[str]:
        if not caption.strip():
            return []
        m = self.s.max_events
        if self.official:  # DREAM-1K's extraction step quotes the caption inside a dict string
            caption = caption.replace('"', "'")
        return await self._call_parsed(self.templates.extract_messages(caption, m),
                                       lambda t: parse_events(t, m, dedupe=not self.official), "event extraction")

    def cache_key(self, caption: str) -> str:
        raw = f"{self.model}\x00{self.s.max_events}\x00{caption.strip()}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    async def gt_events(self, caption: str) -> list[str]:
        """Events of a ground-truth caption, cached (LRU) and extracted once per caption."""
        key = self.cache_key(caption)
        if key in self._cache:
            self._cache.move_to_end(key)
            self.stats["cache_hits"] += 1
            return list(self._cache[key])
        if key in self._inflight:
            self.stats["cache_hits"] += 1
            return list(await asyncio.shield(self._inflight[key]))
        self.stats["cache_misses"] += 1
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            events = await self.extract_events(caption)
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else AutoDQError("cancelled"))
            fut.exception()  # mark retrieved: waiters (if any) re-raise it
            raise
        else:
            fut.set_result(events)
            if self.s.cache_size > 0:
                self._cache[key] = list(events)
                while len(self._cache) > self.s.cache_size:
                    self._cache.popitem(last=False)
            return list(events)
        finally:
            self._inflight.pop(key, None)

    async def classify(self, events: list[str], caption: str) -> list[str]:
        """Relation of `caption` to each event (an empty caption entails nothing: no call)."""
        if not events:
            return []
        if not caption.strip():
            return [NEUTRAL] * len(events)
        return await self._call_parsed(self.templates.entail_messages(caption, events),
                                       lambda t: parse_relations(t, len(events)), "entailment")

    async def score(self, prediction: str, ground_truth: str,
                    events: Optional[list[str]] = None) -> dict:
        """recall, precision and both event lists for one caption pair."""
        given = None if events is None else [" ".join(e.split()) for e in events if e.strip()]
        if self.official:
            prediction, ground_truth = prediction.lower(), ground_truth.lower()
        elif not prediction.strip():     # nothing predicted: nothing recalled, no model call needed
            return {"recall": 0.0, "precision": 0.0, "pred_events": [], "gt_events": given}

        async def gt_side() -> list[str]:
            return given if given is not None else await self.gt_events(ground_truth)

        gt_ev, pred_ev = await asyncio.gather(gt_side(), self.extract_events(prediction))
        gt_labels, pred_labels = await asyncio.gather(self.classify(gt_ev, prediction),
                                                      self.classify(pred_ev, ground_truth))
        self.stats["scored"] += 1
        empty = 1.0 if self.official else 0.0
        return {"recall": ratio(gt_labels, empty), "precision": ratio(pred_labels, empty),
                "pred_events": pred_ev, "gt_events": gt_ev}
