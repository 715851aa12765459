"""vLLM's async engine in-process: continuous batching, tensor parallelism (the 72B judge).

vLLM is a GPU-only optional dependency (`pip install -e .[gpu]`); it is imported when the backend
starts, never at module import, so everything else runs without it. The engine arguments and
sampling parameters are built by plain functions (`engine_kwargs`, `sampling_kwargs`) that the tests
check without vLLM.
"""
from __future__ import annotations

import asyncio
import itertools
import logging

from typing import Optional

from .base import (
    BackendError, GenRequest, GenResult, JudgeBackend, PromptTooLong, UnsupportedRequest, check_request_tokens,
    gather_windowed,
)

log = logging.getLogger(__name__)

VLLM_MISSING = (
    "the vllm backend needs vLLM, which is not installed. On a CUDA machine run "
    "`bash scripts/install.sh --gpu` (or `pip install vllm==0.31.0`), or choose "
    "--backend transformers (any machine) or --backend openai (forward to a running `vllm serve`)."
)


def engine_kwargs(settings) -> dict:
    """Keyword arguments of vllm.AsyncEngineArgs."""
    kw = {
        "model": settings.model,
        "served_model_name": settings.model_name,
        "tensor_parallel_size": int(settings.tensor_parallel_size),
        "dtype": settings.dtype if settings.dtype not in ("", None) else "auto",
        "gpu_memory_utilization": float(settings.gpu_memory_utilization),
        "trust_remote_code": bool(settings.trust_remote_code),
        "seed": int(settings.seed),
    }
    if settings.max_model_len:
        kw["max_model_len"] = int(settings.max_model_len)
    return kw


def structured_output_kwargs(response_format: Optional[dict]) -> Optional[dict]:
    """Keyword arguments of vllm 0.31's `StructuredOutputsParams` for an OpenAI `response_format` (None: free text).

    The same mapping as vLLM's own OpenAI server (`structured_outputs_from_response_format`): `json_object` ->
    `json_object=True` (any JSON object), `json_schema` -> `json=<schema>`. Decoding is then constrained, so a
    client (AutoDQ) that asks for JSON gets it; an unsupported type is refused rather than ignored.
    """
    kind = (response_format or {}).get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"json_object": True}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise UnsupportedRequest("response_format json_schema needs a json_schema.schema object")
        return {"json": schema}
    raise UnsupportedRequest(f"response_format type {kind!r} is not supported (text, json_object, json_schema)")


def sampling_kwargs(req: GenRequest) -> dict:
    """Keyword arguments of vllm.SamplingParams for one request (greedy when temperature is 0).

    `structured_outputs` holds `StructuredOutputsParams` keyword arguments (`sampling_params` builds the object).
    """
    kw = {"n": 1, "max_tokens": int(req.max_new_tokens), "temperature": float(req.temperature)}
    if req.temperature > 0:
        kw["top_p"] = float(req.top_p)
        if req.seed is not None:
            kw["seed"] = int(req.seed)
    if req.stop:
        kw["stop"] = list(req.stop)
    structured = structured_output_kwargs(req.response_format)
    if structured is not None:
        kw["structured_outputs"] = structured
    return kw


def sampling_params(SamplingParams, StructuredOutputsParams, req: GenRequest):
    """The `vllm.SamplingParams` of one request (`sampling_kwargs`, structured output made an object)."""
    kw = sampling_kwargs(req)
    if "structured_outputs" in kw:
        kw["structured_outputs"] = StructuredOutputsParams(**kw["structured_outputs"])
    return SamplingParams(**kw)


def import_vllm():
    try:
        from vllm import AsyncEngineArgs, SamplingParams
        from vllm.sampling_params import StructuredOutputsParams
        try:
            from vllm import AsyncLLMEngine as Engine
        except ImportError:  # newer releases name the V1 engine AsyncLLM
            from vllm.v1.engine.async_llm import AsyncLLM as Engine
    except ImportError as exc:
        raise RuntimeError(f"{VLLM_MISSING} ({exc})") from exc
    return AsyncEngineArgs, SamplingParams, StructuredOutputsParams, Engine


class VLLMBackend(JudgeBackend):
    name = "vllm"
    enforces_response_format = True  # structured output (sampling_kwargs)

    def __init__(self, settings):
        super().__init__(settings.model_name)
        self.settings = settings
        self.engine = None
        self.tokenizer = None
        self._SamplingParams = None
        self._StructuredOutputsParams = None
        self._ids = itertools.count()
        self._inflight = 0

    async def start(self) -> None:
        AsyncEngineArgs, SamplingParams, StructuredOutputsParams, Engine = import_vllm()
        from transformers import AutoTokenizer

        s = self.settings
        self.tokenizer = AutoTokenizer.from_pretrained(s.model, trust_remote_code=s.trust_remote_code)
        self._SamplingParams = SamplingParams
        self._StructuredOutputsParams = StructuredOutputsParams
        self.engine = Engine.from_engine_args(AsyncEngineArgs(**engine_kwargs(s)))
        self.ready = True
        log.info("vLLM engine ready: %s", engine_kwargs(s))

    async def stop(self) -> None:
        self.ready = False
        if self.engine is not None and hasattr(self.engine, "shutdown"):
            self.engine.shutdown()

    @property
    def queue_depth(self) -> int:
        return self._inflight

    def encode(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > self.settings.max_input_tokens:
            raise PromptTooLong(f"prompt has {len(ids)} tokens, more than --max-input-tokens "
                                f"{self.settings.max_input_tokens}")
        return ids

    async def _one(self, req: GenRequest, ids: list[int]) -> GenResult:
        params = sampling_params(self._SamplingParams, self._StructuredOutputsParams, req)
        request_id = f"judge-{next(self._ids)}"
        final = None
        self._inflight += 1
        try:
            async for out in self.engine.generate({"prompt_token_ids": ids}, params, request_id):
                final = out
        except asyncio.CancelledError:
            # The HTTP client has gone: free the engine's slot now (vLLM aborts on cancellation
            # too; an explicit abort does not depend on that).
            self.stats.extra["cancelled"] = self.stats.extra.get("cancelled", 0) + 1
            try:
                await self.engine.abort(request_id)
            except Exception:  # noqa: BLE001 - already finished or aborted
                pass
            raise
        finally:
            self._inflight -= 1
        self.stats.generate_calls += 1
        self.stats.batched_requests += 1
        if final is None or not final.outputs:
            raise BackendError("vLLM returned no output")
        o = final.outputs[0]
        return GenResult(text=o.text, prompt_tokens=len(ids), completion_tokens=len(o.token_ids),
                         finish_reason="length" if o.finish_reason == "length" else "stop")

    async def _generate_many(self, requests: list[GenRequest]) -> list[GenResult]:
        # vLLM batches concurrent requests itself (continuous batching); its waiting queue is FIFO,
        # so each request hands it at most `request_window` items at a time.
        ids = []
        for i, r in enumerate(requests):
            try:
                ids.append(self.encode(r.messages))
            except PromptTooLong as exc:
                raise PromptTooLong(str(exc), index=i) from None
        check_request_tokens([len(x) for x in ids], self.settings.limits.max_request_tokens)
        return await gather_windowed([self._one(r, x) for r, x in zip(requests, ids)],
                                     self.settings.request_window)
