"""The benchmark judge: an OpenAI-compatible chat model that scores what a benchmark's own code scores with
an LLM (MMVU's answers, VidCapBench's caption questions).

It is reached with the `openai` client at `--bench_judge_url` (default: the project's Qwen2.5 judge service,
whose `/v1/chat/completions` serves its model; any `vllm serve` endpoint or api.openai.com works) as
`--bench_judge_model`, decoding greedily; the model name is recorded with every score. The benchmarks'
published numbers come from GPT-4o with their own prompt texts, which this repository does not ship: the
defaults are the project's wording (`versavid_r1.prompts`), and `--bench_prompt_file FILE` (YAML or JSON,
keys below) replaces them::

    mmvu_multiple_choice_system: "..."  # MMVU: system message for multiple-choice questions
    mmvu_open_ended_system: "..."       # MMVU: system message for open-ended questions
    mmvu_template: "... {question_block} ... {ground_truth} ... {response} ..."
    vidcapbench_answer: "... {caption} ... {question} ..."
    vidcapbench_judge: "... {question} ... {answer} ... {prediction} ..."

A reply that cannot be read (no JSON verdict, a transport error after the client's retries) raises
`BenchJudgeError`: the sample is recorded as a judge error and scored again by the next run, never as 0.
"""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import yaml

from versavid_r1 import prompts
from versavid_r1.judges.autodq_prompts import PLACEHOLDER, render


class BenchJudgeError(RuntimeError):
    """The judge gave no usable verdict for one sample (the message says why)."""


@dataclass(frozen=True)
class BenchPrompts:
    mmvu_multiple_choice_system: str = prompts.MMVU_JUDGE_SYSTEM
    mmvu_open_ended_system: str = prompts.MMVU_JUDGE_SYSTEM
    mmvu_template: str = prompts.MMVU_JUDGE_TEMPLATE
    vidcapbench_answer: str = prompts.VIDCAPBENCH_ANSWER_TEMPLATE
    vidcapbench_judge: str = prompts.VIDCAPBENCH_JUDGE_TEMPLATE


PLACEHOLDERS = {
    "mmvu_template": {"question_block", "ground_truth", "response"},
    "vidcapbench_answer": {"caption", "question"},
    "vidcapbench_judge": {"question", "answer", "prediction"},
}


def load_bench_prompts(path: Optional[str]) -> BenchPrompts:
    """The project's prompts, with the templates of `path` (YAML/JSON) instead where it has them."""
    if not path:
        return BenchPrompts()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--bench_prompt_file {path}: cannot read it ({exc})") from None
    known = {f.name for f in fields(BenchPrompts)}
    if not isinstance(data, dict) or set(data) - known or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"--bench_prompt_file {path}: expected a mapping of some of {sorted(known)} to texts")
    for name, text in data.items():
        missing = PLACEHOLDERS.get(name, set()) - set(PLACEHOLDER.findall(text))
        if missing:
            raise ValueError(f"--bench_prompt_file {path}: {name} lacks placeholder(s) "
                             + ", ".join("{%s}" % m for m in sorted(missing)))
    return replace(BenchPrompts(), **data)


@dataclass
class BenchJudgeSettings:
    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    retries: int = 3
    concurrency: int = 16
    max_tokens: int = 512
    prompt_file: Optional[str] = None

    @classmethod
    def from_config(cls, cfg) -> "BenchJudgeSettings":
        return cls(url=cfg.bench_judge_url, model=cfg.bench_judge_model, api_key_env=cfg.bench_judge_api_key_env,
                   timeout=cfg.judge_timeout, retries=cfg.judge_retries, concurrency=cfg.judge_concurrency,
                   prompt_file=cfg.bench_prompt_file)

    def record(self) -> dict[str, Any]:
        """What a score records about its judge."""
        return {"model": self.model, "url": self.url, "prompts": self.prompt_file or "project"}


class BenchJudge:
    """One event loop's client (the evaluation scores each batch in its own loop)."""

    def __init__(self, settings: BenchJudgeSettings):
        from openai import AsyncOpenAI

        self.settings = settings
        self.prompts = load_bench_prompts(settings.prompt_file)
        self._client = AsyncOpenAI(base_url=settings.url, api_key=os.environ.get(settings.api_key_env) or "EMPTY",
                                   timeout=settings.timeout, max_retries=settings.retries)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.served_model: Optional[str] = None  # the model name the server replied with

    def record(self) -> dict[str, Any]:
        """What a score records about its judge: the configured and the serving model, URL and prompts."""
        return {**self.settings.record(), "served_model": self.served_model}

    async def chat(self, user: str, system: Optional[str] = None) -> str:
        from openai import OpenAIError

        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        async with self._slots:
            try:
                reply = await self._client.chat.completions.create(
                    model=self.settings.model, messages=messages, temperature=0.0,
                    max_tokens=self.settings.max_tokens)
            except OpenAIError as exc:
                raise BenchJudgeError(f"{self.settings.url}: {type(exc).__name__}: {exc}") from None
        self.served_model = getattr(reply, "model", None) or self.served_model
        text = reply.choices[0].message.content if reply.choices else None
        if not isinstance(text, str):
            raise BenchJudgeError(f"{self.settings.url}: the reply has no text")
        return text

    def render(self, template: str, **values: Any) -> str:
        return render(template, **values)

    async def aclose(self) -> None:
        await self._client.close()


def json_object(text: str) -> dict:
    """The first JSON object in a reply (code fences and text around it allowed); BenchJudgeError if none."""
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    raise BenchJudgeError(f"no JSON object in the judge's reply: {text[:200]!r}")


def bool_field(obj: dict, key: str, text: str) -> bool:
    value = obj.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BenchJudgeError(f"the judge's reply has no true/false {key!r}: {text[:200]!r}")


def vidcapbench_grade(reply: str) -> Optional[str]:
    """VidCapBench's reading of a judge reply (its eval.py): "2" anywhere -> A, else "-1" -> D, else "1" -> B,
    else "0" -> C, else None (not counted). It reads digits anywhere, as the original does."""
    for needle, grade in (("2", "A"), ("-1", "D"), ("1", "B"), ("0", "C")):
        if needle in reply:
            return grade
    return None

