"""Forward judge generations to any OpenAI-compatible chat-completions server (e.g. `vllm serve`)."""
from __future__ import annotations

import asyncio
import os

from .base import BackendError, GenRequest, GenResult, JudgeBackend, gather_windowed


def chat_kwargs(model: str, req: GenRequest) -> dict:
    """The keyword arguments of `chat.completions.create` for one request."""
    kw = {"model": model, "messages": req.messages, "max_tokens": req.max_new_tokens,
          "temperature": float(req.temperature), "n": 1}
    if req.temperature > 0 and req.top_p < 1.0:
        kw["top_p"] = float(req.top_p)
    if req.stop:
        kw["stop"] = list(req.stop)
    if req.response_format:
        kw["response_format"] = req.response_format
    if req.seed is not None:
        kw["seed"] = int(req.seed)
    return kw


class OpenAIBackend(JudgeBackend):
    name = "openai"
    enforces_response_format = True  # forwarded to the upstream server

    def __init__(self, settings):
        super().__init__(settings.model_name)
        self.settings = settings
        self.remote_model = settings.model
        self._sem = asyncio.Semaphore(int(settings.openai_concurrency))
        self._inflight = 0
        self.client = None

    async def start(self) -> None:
        import openai

        s = self.settings
        key = os.environ.get(s.openai_api_key_env) or "EMPTY"   # local servers take any key
        self.client = openai.AsyncOpenAI(base_url=s.openai_base_url, api_key=key,
                                         timeout=s.request_timeout_s, max_retries=2)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self.client is not None:
            await self.client.close()

    @property
    def queue_depth(self) -> int:
        return self._inflight

    async def _one(self, req: GenRequest) -> GenResult:
        self._inflight += 1
        try:
            async with self._sem:
                resp = await self.client.chat.completions.create(**chat_kwargs(self.remote_model, req))
                self.stats.generate_calls += 1
                self.stats.batched_requests += 1
        finally:
            self._inflight -= 1
        if not resp.choices:
            raise BackendError("the upstream server returned no choices")
        choice = resp.choices[0]
        usage = resp.usage
        return GenResult(text=choice.message.content or "",
                         prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                         completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                         finish_reason=choice.finish_reason or "stop")

    async def _generate_many(self, requests: list[GenRequest]) -> list[GenResult]:
        # At most `request_window` items of one request wait for the shared semaphore at a time.
        return await gather_windowed([self._one(r) for r in requests], self.settings.request_window)
