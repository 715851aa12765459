"""Any `from_pretrained` causal LM, on CPU or GPU, with a fair micro-batching queue.

Requests are queued per lane: verdicts (`/predict`, `/predict_batch`) and chat (`/v1/chat/completions`,
long generations for the caption judge). Each lane has its own worker task and generate thread, so a
short verdict never waits behind a 1,000-token chat generation, and chat never shares a verdict
batch (a batch generates up to its longest `max_new_tokens`). Within a lane, the queue is fair across
requests (versavid_r1.judges.backends.scheduler): a batch takes one item from each waiting request in
turn, so a request of 512 items does not hold back a request of one.

The worker takes the first waiting items, then keeps collecting until it has `max_batch_size` items
or `max_wait_ms` has passed (items already waiting are taken at once, so under load batches fill
without waiting; while traffic comes one request at a time, a lone request runs at once), and runs
ONE left-padded `generate` call for them in its lane's thread, so the event loop never blocks.
Items with different sampling settings are split into separate calls; the batch generates up to the
largest `max_new_tokens` asked for and each reply is cut back to its own limit, which for greedy
decoding gives the same text as generating it alone. `stats.generate_calls` counts the calls.

Work whose caller has gone (the HTTP client disconnected or timed out, so the request's task was
cancelled) is not generated: queued items are dropped, and rows of a running `generate` call stop at
the next token (a stopping criterion reads each row's flag); `stats.extra["cancelled"]` counts both.
With `prefix_cache` on (the default), the fixed head of the verdict prompts (system prompt and
template text) is computed once and reused (versavid_r1.judges.backends.prefix_cache); `generate`
then runs only on each request's own tokens. Any problem there falls back to the plain call.

A request that arrives while a generate call runs preempts it (versavid_r1.judges.backends.scheduler):
the call stops at its next token, its unfinished rows keep their tokens and are queued again, and the
newcomer runs next, so a short verdict waits for one token of a 32-item batch, not for the whole batch.
The preempted rows continue from their prompt plus the tokens generated so far, which for greedy decoding
gives the same text as an uninterrupted call (`stats.extra["preempted"]` counts the rows stopped so).

Why by hand: transformers' `generate` batches only what one caller hands it, and the serving engines
that batch across requests (vLLM, TGI) are separate GPU stacks; this queue is the small piece that
lets a plain `from_pretrained` model on a CPU or one GPU serve many concurrent HTTP requests.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from .base import CHAT_LANE, LANES, GenRequest, GenResult, JudgeBackend, PromptTooLong, check_request_tokens
from .prefix_cache import PrefixCache
from .scheduler import FairQueue, Slot

log = logging.getLogger(__name__)


@dataclass
class _Lane:
    """One lane's queue, worker task and generate thread."""

    name: str
    executor: ThreadPoolExecutor
    queue: Optional[FairQueue] = None
    worker: Optional[asyncio.Task] = None
    last_batch_size: int = 1  # size of the previous batch: 1 means no concurrent traffic seen
    pending: int = 0
    running: bool = False  # a generate call is in progress
    preempt: threading.Event = field(default_factory=threading.Event)  # stop it at the next token


def _stopping(group: list[Slot], preempt: threading.Event):
    """Stopping criteria, read after each token: the rows whose caller has gone, and every row once a request
    is waiting that this call does not serve (scheduler.py: the call is preempted)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class AbandonedOrPreempted(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            if preempt.is_set():
                return torch.ones(len(group), dtype=torch.bool, device=input_ids.device)
            return torch.tensor([s.abandoned.is_set() for s in group], dtype=torch.bool,
                                device=input_ids.device)

    return StoppingCriteriaList([AbandonedOrPreempted()])


def _resolve_device(requested: str):
    import torch

    if requested in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _resolve_dtype(requested: str, device: str):
    import torch

    if requested in ("", "auto"):
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
                "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}[requested]
    except KeyError:
        raise ValueError(f"unknown dtype {requested!r}") from None


class TransformersBackend(JudgeBackend):
    name = "transformers"

    def __init__(self, settings):
        super().__init__(settings.model_name)
        self.settings = settings
        self.max_batch_size = int(settings.max_batch_size)
        self.max_wait_s = float(settings.max_wait_ms) / 1000.0
        self.max_input_tokens = int(settings.max_input_tokens)
        # One thread per lane: each lane runs one generate call at a time; the lanes run side by side.
        self._lanes = {name: _Lane(name, ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"judge-{name}"))
                       for name in LANES}
        self._executor = self._lanes[LANES[0]].executor   # loads the model
        self.tokenizer = None
        self.model = None
        self._eos_ids: list[int] = []
        self._pad_id: int = 0
        self._threads_before: Optional[int] = None
        self._threads: Optional[int] = None
        self._stats_lock = threading.Lock()
        self._prefix_cache: Optional[PrefixCache] = None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)
        for lane in self._lanes.values():
            if lane.executor is not self._executor and self._threads is not None:
                import torch  # torch's thread count is per calling thread: set it in every lane's thread

                await loop.run_in_executor(lane.executor, torch.set_num_threads, self._threads)
            lane.queue = FairQueue()
            lane.worker = asyncio.create_task(self._run(lane), name=f"judge-microbatch-{lane.name}")
        self.stats.extra["cancelled"] = 0
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for lane in self._lanes.values():
            if lane.worker is not None:
                lane.worker.cancel()
                try:
                    await lane.worker
                except (asyncio.CancelledError, Exception):
                    pass
                lane.worker = None
            for slot in lane.queue.drain() if lane.queue is not None else ():
                if not slot.future.done():
                    slot.future.set_exception(RuntimeError("judge backend stopped"))
        if self._threads_before is not None:  # undo it in the threads that set it, and here
            import torch

            for lane in self._lanes.values():
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        lane.executor, torch.set_num_threads, self._threads_before)
                except RuntimeError:
                    pass
            torch.set_num_threads(self._threads_before)
        for lane in self._lanes.values():
            lane.executor.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        s = self.settings
        device = _resolve_device(s.device)
        dtype = _resolve_dtype(s.dtype, device)
        if str(device) == "cpu":
            threads = s.cpu_threads or max(1, (os.cpu_count() or 1) - 1)
            self._threads_before = torch.get_num_threads()
            self._threads = threads
            torch.set_num_threads(threads)   # restored by stop() for in-process use
            log.info("torch CPU threads: %d", threads)
        tok = AutoTokenizer.from_pretrained(s.model, trust_remote_code=s.trust_remote_code)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        kwargs = {"dtype": dtype, "trust_remote_code": s.trust_remote_code}
        multi_gpu = s.device in ("", "auto") and torch.cuda.device_count() > 1
        if multi_gpu:
            kwargs["device_map"] = "auto"   # shard a large judge over all visible GPUs
        model = AutoModelForCausalLM.from_pretrained(s.model, **kwargs)
        if not multi_gpu:
            model = model.to(device)
        model.eval()
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        for t in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")):
            if isinstance(t, int) and t >= 0 and t != tok.unk_token_id and t not in eos_ids:
                eos_ids.append(t)
        self.tokenizer, self.model = tok, model
        self._eos_ids, self._pad_id = eos_ids, int(tok.pad_token_id)
        if getattr(s, "prefix_cache", False) and not model.config.is_encoder_decoder:
            self._prefix_cache = PrefixCache(model, s.prefix_cache_min_tokens, s.prefix_cache_entries)
            self.stats.extra.update(self._prefix_cache.stats())
        log.info("loaded %s on %s (%s), eos ids %s", s.model, model.device, dtype, eos_ids)

    # --- requests ----------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return sum(lane.pending for lane in self._lanes.values())

    def encode(self, messages: list[dict]) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:  # a base model without a chat template: a plain transcript
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) > self.max_input_tokens:
            raise PromptTooLong(f"prompt has {len(ids)} tokens, more than --max-input-tokens "
                                f"{self.max_input_tokens}")
        return ids

    async def _generate_many(self, requests: list[GenRequest]) -> list[GenResult]:
        loop = asyncio.get_running_loop()
        slots = []
        for i, r in enumerate(requests):
            try:
                slots.append(Slot(r, self.encode(r.messages), loop.create_future()))
            except PromptTooLong as exc:
                raise PromptTooLong(str(exc), index=i) from None
        check_request_tokens([len(s.input_ids) for s in slots], self.settings.limits.max_request_tokens)
        lane = self._lanes[CHAT_LANE if requests[0].lane == CHAT_LANE else LANES[0]]
        lane.pending += len(slots)
        lane.queue.put_request(slots, urgent=lane.running)
        if lane.running:  # the call in progress stops at its next token; this request goes next
            lane.preempt.set()
        try:
            return list(await asyncio.gather(*(s.future for s in slots)))
        finally:
            for s in slots:   # the caller has gone: queued items are dropped, running rows stop
                if not s.future.done():
                    s.future.cancel()

    # --- the micro-batching worker (one per lane) ---------------------------------------------------
    async def _collect(self, lane: _Lane) -> list[Slot]:
        loop = asyncio.get_running_loop()
        queue = lane.queue
        batch: list[Slot] = []
        while not batch:
            await queue.wait()
            batch = queue.pop(self.max_batch_size)
            self._drop_cancelled(lane)
        if queue.last_pop_urgent:  # requests that preempted a call: they alone, at once
            return batch
        if lane.last_batch_size <= 1 and not len(queue):
            # Traffic has been one request at a time: waiting for partners would only add latency.
            # Once requests overlap, the queue fills during a generate and the wait applies again.
            return batch
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if len(queue):
                batch += queue.pop(self.max_batch_size - len(batch))
                self._drop_cancelled(lane)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(queue.wait(), remaining)
            except asyncio.TimeoutError:
                break
        lane.last_batch_size = len(batch)
        return batch

    def _drop_cancelled(self, lane: _Lane) -> None:
        """Account for the items the queue dropped because their caller had gone."""
        if lane.queue.dropped:
            lane.pending -= lane.queue.dropped
            self.stats.extra["cancelled"] += lane.queue.dropped
            lane.queue.dropped = 0

    async def _run(self, lane: _Lane) -> None:
        while True:
            try:
                await self._run_once(lane)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the worker die: every later request would hang
                log.exception("micro-batching worker error")

    async def _run_once(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        batch = await self._collect(lane)
        groups: dict[tuple, list[Slot]] = {}
        for slot in batch:
            groups.setdefault(slot.request.sampling_key(), []).append(slot)
        in_order = list(groups.values())
        for k, group in enumerate(in_order):
            live = [s for s in group if not s.gone]     # callers may leave while earlier groups ran
            self.stats.extra["cancelled"] += len(group) - len(live)
            lane.pending -= len(group) - len(live)
            if not live:
                continue
            lane.preempt.clear()
            lane.running = True
            unfinished: list[Slot] = []
            try:
                results = await loop.run_in_executor(lane.executor, self._generate_batch, live,
                                                     lane.name != CHAT_LANE, lane.preempt)
            except Exception as exc:  # resolve every waiter; the service turns it into a 503
                for slot in live:
                    if not slot.future.done():
                        slot.future.set_exception(exc)
            else:
                for slot, res in zip(live, results):
                    if res is None and not slot.gone:
                        unfinished.append(slot)
                    elif not slot.future.done():
                        slot.future.set_result(res)
            finally:
                lane.running = False
                lane.pending -= len(live) - len(unfinished)
                self.stats.extra["cancelled"] += sum(s.abandoned.is_set() for s in live)
            if unfinished:  # preempted: they continue from their tokens after the requests that came
                self.stats.extra["preempted"] = self.stats.extra.get("preempted", 0) + len(unfinished)
                later = [x for g in in_order[k + 1:] for x in g if not x.gone]  # not started: wait as well
                lane.queue.requeue(unfinished + later)
                return

    def _plain_inputs(self, group: list[Slot]):
        """The left-padded prompts of the group: (input_ids, attention_mask)."""
        import torch

        width = max(len(it.tokens) for it in group)
        input_ids = torch.full((len(group), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(group), width), dtype=torch.long)
        for i, it in enumerate(group):            # left padding
            n = len(it.tokens)
            input_ids[i, width - n:] = torch.tensor(it.tokens, dtype=torch.long)
            attention[i, width - n:] = 1
        return input_ids, attention

    def _generate_ids(self, group: list[Slot], gen_cfg, use_prefix_cache: bool, preempt: threading.Event):
        """One generate call; returns (output ids, input width). Uses cached prompt prefixes when it
        can (verdict lane only: the cache is not shared between threads), else (or if that path
        fails) the plain left-padded call. Rows whose caller has gone stop early; every row stops
        when the call is preempted."""
        import torch

        model = self.model
        stop = _stopping(group, preempt)
        pc = self._prefix_cache if use_prefix_cache else None
        if pc is not None and pc.disabled_reason is None:
            try:
                with torch.inference_mode():
                    batch = pc.build([tuple(it.tokens) for it in group], self._pad_id)
                    if batch is not None:
                        out = model.generate(input_ids=batch.input_ids.to(model.device),
                                             attention_mask=batch.attention_mask.to(model.device),
                                             past_key_values=batch.past_key_values,
                                             generation_config=gen_cfg, stopping_criteria=stop)
                        return out, batch.input_ids.shape[1]
            except Exception as exc:  # a model whose cache differs: log once, then stay on the plain path
                pc.disabled_reason = f"{type(exc).__name__}: {exc}"
                log.warning("prefix cache disabled, plain generate from now on: %s", pc.disabled_reason)
            finally:
                self.stats.extra.update(pc.stats())
        input_ids, attention = self._plain_inputs(group)
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids.to(model.device),
                                 attention_mask=attention.to(model.device),
                                 generation_config=gen_cfg, stopping_criteria=stop)
        return out, input_ids.shape[1]

    def _generate_batch(self, group: list[Slot], use_prefix_cache: bool = True,
                        preempt: Optional[threading.Event] = None) -> list[Optional[GenResult]]:
        """Runs in the lane's thread: one generate call for the whole group. A row the call left unfinished
        because it was preempted gets None and keeps its tokens (`Slot.generated`) to continue from."""
        from transformers import GenerationConfig

        preempt = preempt or threading.Event()
        tok = self.tokenizer
        first = group[0].request
        sample = first.temperature > 0
        gen_cfg = GenerationConfig(
            max_new_tokens=max(it.request.max_new_tokens - len(it.generated) for it in group),
            do_sample=sample,
            temperature=first.temperature if sample else None,
            top_p=first.top_p if sample else None,
            top_k=None,
            pad_token_id=self._pad_id,
            eos_token_id=self._eos_ids or None,
        )
        t0 = time.perf_counter()
        out, width = self._generate_ids(group, gen_cfg, use_prefix_cache, preempt)
        with self._stats_lock:   # the lanes' threads run side by side
            self.stats.generate_seconds += time.perf_counter() - t0
            self.stats.generate_calls += 1
            self.stats.batched_requests += len(group)
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(group))
        new_tokens = out[:, width:].tolist()
        eos = set(self._eos_ids)
        results: list[Optional[GenResult]] = []
        for it, new in zip(group, new_tokens):
            limit = it.request.max_new_tokens
            row = (it.generated + new)[:limit]
            finish = "length" if len(row) >= limit else None
            for j in range(len(it.generated), len(row)):
                if row[j] in eos:
                    row, finish = row[:j], "stop"
                    break
            text = tok.decode(row, skip_special_tokens=True)
            for s in it.request.stop or ():
                k = text.find(s) if s else -1
                if k >= 0:
                    text, finish = text[:k], "stop"
            if finish is None and preempt.is_set():  # stopped for a newcomer: continue later from here
                it.generated = row
                results.append(None)
                continue
            results.append(GenResult(text=text, prompt_tokens=len(it.input_ids),
                                     completion_tokens=len(row), finish_reason=finish or "length"))
        return results
