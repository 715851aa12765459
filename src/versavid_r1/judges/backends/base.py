"""What every judge backend provides: chat generation for many requests at once, plus counters."""
from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import Any, Coroutine, Optional


# Lanes of generation work: verdicts (short, many) and chat (long, few). A backend that queues work
# (transformers) gives each lane its own queue and thread, so verdicts never wait behind chat.
VERDICT_LANE, CHAT_LANE = "verdict", "chat"
LANES = (VERDICT_LANE, CHAT_LANE)


class BackendError(RuntimeError):
    """The model could not produce a reply (the service answers 503 with this message)."""


class PromptTooLong(ValueError):
    """A prompt exceeds the backend's input limit (the service answers 422). `index` is the
    position of the offending request in the `generate_many` call."""

    def __init__(self, message: str, index: int = 0):
        super().__init__(message)
        self.index = index


class UnsupportedRequest(ValueError):
    """A request option the backend cannot honour, e.g. an unknown `response_format` (the service answers 400,
    so a client can fall back instead of trusting a setting that was dropped)."""


class RequestTooLarge(ValueError):
    """The prompts of one request hold more tokens together than `--max-request-tokens` (422)."""


def check_request_tokens(lengths: list[int], limit: int) -> None:
    """Bound the work of one request: its prompts' tokens together (a batch of 512 long items would
    otherwise hold the model for minutes)."""
    total = sum(lengths)
    if total > limit:
        raise RequestTooLarge(f"the request's {len(lengths)} prompts hold {total} tokens together, more than "
                              f"--max-request-tokens {limit}: send fewer items per request")


@dataclass(frozen=True)
class JudgeTask:
    """The fields a verdict request was built from, for backends that judge without reading the
    prompt (the lexical backend). Model backends ignore it."""

    problem_type: str
    prediction: str
    ground_truth: str
    question: str = ""


@dataclass
class GenRequest:
    """One chat generation. temperature 0 means greedy decoding."""

    messages: list[dict]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: Optional[list[str]] = None
    response_format: Optional[dict] = None   # honoured by backends with `enforces_response_format`
    seed: Optional[int] = None
    lane: str = VERDICT_LANE
    judge_task: Optional[JudgeTask] = None   # set on verdict requests (QwenJudge.score)

    def sampling_key(self) -> tuple:
        """Requests with equal keys can share one batched generate call."""
        return (round(float(self.temperature), 6), round(float(self.top_p), 6))


@dataclass
class GenResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"              # stop | length


@dataclass
class BackendStats:
    requests: int = 0                         # generations asked for
    generate_calls: int = 0                   # model invocations (batched: fewer than requests)
    batched_requests: int = 0                 # requests served by those calls
    max_batch_seen: int = 0
    generate_seconds: float = 0.0             # wall time inside the model calls
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d["generate_seconds"] = round(self.generate_seconds, 3)
        d["mean_batch_size"] = (self.batched_requests / self.generate_calls) if self.generate_calls else 0.0
        d.update(self.extra)
        return d


class JudgeBackend(abc.ABC):
    """A chat model behind the judge. Subclasses implement `_generate_many`."""

    name: str = "base"
    enforces_response_format: bool = False   # the backend constrains replies to a requested `response_format`

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.stats = BackendStats()
        self.ready = False

    async def start(self) -> None:
        """Load the model (called once by the app's lifespan)."""
        self.ready = True

    async def stop(self) -> None:
        self.ready = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting or running inside the backend."""
        return 0

    async def generate(self, request: GenRequest) -> GenResult:
        return (await self.generate_many([request]))[0]

    async def generate_many(self, requests: list[GenRequest]) -> list[GenResult]:
        if not requests:
            return []
        if not self.ready:
            raise BackendError(f"backend {self.name} is not ready")
        self.stats.requests += len(requests)
        try:
            return await self._generate_many(requests)
        except (PromptTooLong, RequestTooLarge, UnsupportedRequest, asyncio.CancelledError):
            raise
        except BackendError:
            self.stats.errors += 1
            raise
        except Exception as exc:  # a model or transport failure: report it, the client decides
            self.stats.errors += 1
            raise BackendError(f"{self.name} backend failed: {type(exc).__name__}: {exc}") from exc

    @abc.abstractmethod
    async def _generate_many(self, requests: list[GenRequest]) -> list[GenResult]:
        ...


async def gather_windowed(coros: list[Coroutine[Any, Any, Any]], window: int) -> list[Any]:
    """Await `coros` with at most `window` of them running at once, results in order. Backends that
    hand every item to an engine at once (vllm, openai) use it per request, so one request of 512
    items cannot fill the engine's FIFO queue ahead of every later request. If one fails or the
    caller is cancelled, the rest are cancelled."""
    gate = asyncio.Semaphore(max(1, int(window)))

    async def run(coro):
        try:
            async with gate:
                return await coro
        finally:
            coro.close()   # a coroutine cancelled before it started is closed, not left unawaited

    tasks = [asyncio.ensure_future(run(c)) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()


def create_backend(settings) -> JudgeBackend:
    """The backend named by `settings.backend` (imports heavy dependencies lazily)."""
    if settings.backend == "transformers":
        from .transformers_backend import TransformersBackend
        return TransformersBackend(settings)
    if settings.backend == "vllm":
        from .vllm_backend import VLLMBackend
        return VLLMBackend(settings)
    if settings.backend == "openai":
        from .openai_backend import OpenAIBackend
        return OpenAIBackend(settings)
    if settings.backend == "lexical":
        from .lexical_backend import LexicalBackend
        return LexicalBackend(settings)
    raise ValueError(f"unknown backend {settings.backend!r}")
