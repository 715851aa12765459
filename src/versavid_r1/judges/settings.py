"""Settings of the two judge services: dataclasses whose fields are also the command-line flags.

Every field with `metadata["help"]` becomes a flag of the same name (`max_batch_size` ->
`--max-batch-size`) with the field's default, so a setting is defined once. The entry scripts call
`qwen_settings_from_args` / `caption_settings_from_args`; tests build the dataclasses directly.
Defaults are safe: bind 127.0.0.1, bounded request and field sizes, bounded concurrency, bounded
time to send a request. `validate()` checks every option before anything is loaded; the entry
scripts turn its error into exit status 2 with the message (versavid_r1.judges.server.parse_or_exit).
This module imports nothing heavy (no pydantic, fastapi or torch), so a bad flag fails at once.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Optional, Sequence

from ..tasks import (
    DEFAULT_CAPTION_JUDGE_PORT, DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FIELD_CHARS,
    DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_REQUEST_TOKENS, DEFAULT_QWEN_JUDGE_PORT,
)

API_KEY_ENV = "VERSAVID_JUDGE_API_KEY"
BACKENDS = ("transformers", "vllm", "openai", "lexical")
CAPTION_BACKENDS = ("openai", "lexical")
_LEXICAL = "lexical: "  # help prefix of the lexical backend's thresholds (versavid_r1.judges.lexical)
DTYPES = ("auto", "bfloat16", "bf16", "float16", "fp16", "float32", "fp32")
_DEVICE = re.compile(r"^(?:auto|cpu|mps|cuda(?::\d+)?)$")
SCORING_MODES = ("project", "official")
OFFICIAL_MAX_EVENTS = 10  # DREAM-1K asks for at most 10 events per caption


def _opt(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class ServiceLimits:
    """Request limits shared by both services (all enforced before any model work)."""

    max_body_bytes: int = _opt(DEFAULT_MAX_BODY_BYTES, "request body limit in bytes; larger bodies get 413")
    max_field_chars: int = _opt(DEFAULT_MAX_FIELD_CHARS, "characters per text field (content, sol, question, event); "
                                        "longer gets 422")
    max_batch_items: int = _opt(DEFAULT_MAX_BATCH_ITEMS, "items of one /predict_batch request; more gets 422")
    max_chat_chars: int = _opt(64_000, "Qwen judge: message characters of one /v1/chat/completions "
                                       "request; more gets 422")
    max_request_tokens: int = _opt(DEFAULT_MAX_REQUEST_TOKENS, "Qwen judge (transformers/vllm): prompt tokens of all items "
                                            "of one request together; more gets 422 (the default fits "
                                            "16 items of --max-input-tokens, the client's batch)")
    limit_concurrency: int = _opt(512, "open connections plus requests in progress; beyond it the "
                                       "service answers 503 at once (uvicorn's limit_concurrency)")
    request_read_timeout_s: float = _opt(30.0, "seconds a client has to send a whole request (headers "
                                               "and body) from its first byte or from connecting; slower "
                                               "or idle half-open connections are closed")
    keep_alive_s: float = _opt(30.0, "seconds an idle keep-alive connection stays open")
    error_log_per_minute: int = _opt(20, "most log lines per minute of one kind of warning or error; "
                                         "the rest are counted and summarised")

    def validate(self) -> None:
        for name in ("max_body_bytes", "max_field_chars", "max_batch_items", "max_chat_chars",
                     "max_request_tokens", "limit_concurrency", "error_log_per_minute"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("request_read_timeout_s", "keep_alive_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")


_HOST_HELP = "interface to bind (127.0.0.1 = this machine only; 0.0.0.0 exposes the service)"
_KEY_HELP = (f"require this bearer token; prefer the environment variable {API_KEY_ENV} (a flag is "
             "visible in the process list); neither set = no auth")
_INSTANCE_HELP = ("a token that /health reports, so that a launcher can check that the service answering "
                  "is the one it started (versavid_r1.judges.wait --instance)")


def _check_common(s) -> None:
    """Options both services share."""
    s.limits.validate()
    if not 0 <= s.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {s.port}")
    if not s.host or any(c.isspace() for c in s.host):
        raise ValueError(f"--host must be an interface address, got {s.host!r}")
    if s.log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise ValueError(f"--log-level must be critical, error, warning, info, debug or trace, got {s.log_level!r}")


def _check_url(flag: str, url: Optional[str]) -> None:
    if url and not re.match(r"^https?://[^\s/]+", url):
        raise ValueError(f"{flag} must be an http:// or https:// URL, got {url!r}")


def _looks_local(model: str) -> bool:
    """A path the user means as a directory on this machine (not a hub id like Qwen/Qwen2.5-7B)."""
    return model.startswith(("/", "./", "../", "~"))


@dataclass
class QwenJudgeSettings:
    """The Qwen2.5 judge (DarkEventInfer 0/1/2, MixVidQA True/False, OpenAI-compatible chat)."""

    model: Optional[str] = _opt(None, "HF id or local directory, e.g. Qwen/Qwen2.5-72B-Instruct (the paper's; the "
                                      "remote model name for --backend openai); required except with --backend "
                                      "lexical")
    backend: str = _opt("transformers", "model backend", choices=BACKENDS)
    served_model_name: Optional[str] = _opt(None, "name in /health and /v1 replies; unset = the --model value")
    host: str = _opt("127.0.0.1", _HOST_HELP)
    port: int = _opt(DEFAULT_QWEN_JUDGE_PORT, "port")
    api_key: Optional[str] = _opt(None, _KEY_HELP)
    instance_token: Optional[str] = _opt(None, _INSTANCE_HELP)
    max_new_tokens: int = _opt(16, "new tokens of a judge verdict (greedy): the verdict is a token or two; "
                                   "the rest lets a judge that explains after its verdict show whether it "
                                   "hedges (versavid_r1.judges.verdict)")
    decoy_check: bool = _opt(True, "judge every positive verdict's prediction again against the decoy ground "
                                   "truths the client sends with it (other rows' truths); one that does at least "
                                   "as well there is a suspected injection and scores 0 (versavid_r1.judges."
                                   "decoy). The client decides per item (an empty list: no check); "
                                   "--no-decoy-check ignores the decoys")
    chat_max_tokens: int = _opt(1024, "default and cap of max_tokens on /v1/chat/completions")
    # transformers backend
    device: str = _opt("auto", "transformers: auto | cpu | cuda | cuda:N (auto with several GPUs "
                               "shards the model over them)")
    dtype: str = _opt("auto", "auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float16 | float32", choices=DTYPES)
    max_batch_size: int = _opt(32, "transformers: most requests grouped into one generate call")
    max_wait_ms: float = _opt(10.0, "transformers: how long to wait for more requests before "
                                    "generating when the queue is empty")
    max_input_tokens: int = _opt(DEFAULT_MAX_INPUT_TOKENS, "transformers/vllm: longer prompts get 422")
    cpu_threads: Optional[int] = _opt(None, "transformers on CPU: torch threads; unset = all cores "
                                            "but one, which is left to the HTTP event loop (more "
                                            "threads than free cores made generate 3x slower here)")
    prefix_cache: bool = _opt(True, "transformers: compute the prompts' shared head (system prompt and "
                                    "template text) once and reuse its KV cache; --no-prefix-cache "
                                    "recomputes every prompt in full")
    prefix_cache_min_tokens: int = _opt(64, "transformers: shortest shared prompt prefix worth caching "
                                            "(tokens); shorter ones run the plain path")
    prefix_cache_entries: int = _opt(8, "transformers: prefixes kept (LRU); each holds one prompt "
                                        "prefix's KV states of every layer")
    # vllm backend
    tensor_parallel_size: int = _opt(1, "vllm: GPUs the model is split over")
    gpu_memory_utilization: float = _opt(0.9, "vllm: share of GPU memory vLLM may use")
    max_model_len: Optional[int] = _opt(None, "vllm: context length; unset = the model's")
    trust_remote_code: bool = _opt(False, "allow model code from the model directory")
    seed: int = _opt(0, "vllm: engine seed")
    # openai backend (forward to another OpenAI-compatible server, e.g. `vllm serve`)
    openai_base_url: Optional[str] = _opt(None, "openai: the OpenAI-compatible server to forward to")
    openai_api_key_env: str = _opt("OPENAI_API_KEY", "openai: environment variable with its key")
    openai_concurrency: int = _opt(64, "openai: requests in flight at once")
    request_window: int = _opt(32, "vllm/openai: most items of one request handed to the engine at once, "
                                   "so that one large batch cannot queue ahead of every later request")
    request_timeout_s: float = _opt(120.0, "openai: seconds per upstream request")
    # lexical backend (no model: content-word coverage; a stand-in for smoke tests, not for paper numbers)
    lexical_full_cover: float = _opt(1.0, _LEXICAL + "DarkEventInfer scores 2 when the prediction has this "
                                          "share of the ground truth's content words")
    lexical_partial_cover: float = _opt(0.5, _LEXICAL + "DarkEventInfer scores 1 from this share")
    lexical_answer_cover: float = _opt(1.0, _LEXICAL + "MixVidQA is True from this share")
    lexical_min_precision: float = _opt(0.6, _LEXICAL + "below this share of the prediction's content words "
                                             "found in the ground truth (MixVidQA: or the question) the "
                                             "verdict is 0 / False")
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    log_level: str = _opt("info", "uvicorn and service log level")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model or self.backend

    def validate(self) -> "QwenJudgeSettings":
        """Every check that needs no model: a bad option fails here, before anything is loaded."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        _check_common(self)
        for name in ("max_new_tokens", "chat_max_tokens", "max_batch_size", "tensor_parallel_size",
                     "openai_concurrency", "max_input_tokens", "prefix_cache_min_tokens",
                     "prefix_cache_entries", "request_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise ValueError("max_wait_ms must be >= 0")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not _DEVICE.match(self.device or "auto"):
            raise ValueError(f"--device must be auto, cpu, mps, cuda or cuda:N, got {self.device!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if not (math.isfinite(self.request_timeout_s) and self.request_timeout_s > 0):
            raise ValueError("--request-timeout-s must be a finite number > 0")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError("--cpu-threads must be >= 1")
        if self.backend == "openai":
            if not self.openai_base_url:
                raise ValueError("the openai backend needs --openai-base-url")
            _check_url("--openai-base-url", self.openai_base_url)
        elif self.model and self.backend != "lexical" and _looks_local(self.model) and \
                not os.path.isdir(os.path.expanduser(self.model)):
            raise ValueError(f"--model {self.model!r} is not a directory")
        _check_shares(self, "lexical_full_cover", "lexical_partial_cover", "lexical_answer_cover",
                      "lexical_min_precision")
        if self.lexical_partial_cover > self.lexical_full_cover:
            raise ValueError("lexical_partial_cover must be <= lexical_full_cover")
        if not self.model and self.backend != "lexical":  # never a silent 72B load (or download)
            raise ValueError(
                "no judge model: pass --model, e.g. --model Qwen/Qwen2.5-72B-Instruct --backend vllm "
                "--tensor-parallel-size 2 (the paper's judge, GPUs), --model <a small causal LM directory> "
                "--backend transformers --device cpu, or --backend lexical (no model, for smoke tests)")
        return self

    def preflight(self) -> None:
        """Checks of this machine the entry script runs before it starts (not part of `validate`, so
        that settings can be built and tested anywhere)."""
        if self.backend == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError("the vllm backend needs vLLM, which is not installed: on a CUDA machine run "
                             "`bash scripts/install.sh --gpu`, or choose --backend transformers or openai")


@dataclass
class CaptionJudgeSettings:
    """The AutoDQ caption judge: an OpenAI-compatible (or Azure OpenAI) model extracts events and
    classifies entailment (or, with the lexical backend, sentence/clause events and word coverage)."""

    backend: str = _opt("openai", "openai: AutoDQ with the model below (OpenAI-compatible or Azure); "
                                  "lexical: no model, clause events and content-word coverage (a stand-in "
                                  "for smoke tests, not for paper numbers)", choices=CAPTION_BACKENDS)
    model: str = _opt("gpt-3.5-turbo-0125", "model (Azure: the deployment name)")
    base_url: Optional[str] = _opt(None, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:5000/v1 "
                                         "(the Qwen2.5 judge); default api.openai.com")
    upstream_api_key_env: str = _opt("OPENAI_API_KEY", "environment variable with the model "
                                                       "endpoint's key")
    azure_endpoint: Optional[str] = _opt(None, "use Azure OpenAI at this endpoint (with --api-version)")
    api_version: Optional[str] = _opt(None, "Azure OpenAI API version")
    host: str = _opt("127.0.0.1", _HOST_HELP)
    port: int = _opt(DEFAULT_CAPTION_JUDGE_PORT, "port")
    api_key: Optional[str] = _opt(None, _KEY_HELP)
    instance_token: Optional[str] = _opt(None, _INSTANCE_HELP)
    json_mode: str = _opt("auto", "ask for response_format=json_object (auto: only for a prompt that mentions "
                                  "JSON, and a call the server rejects is repeated without it, that call only; "
                                  "on: for every call)", choices=("auto", "on", "off"))
    max_events: int = _opt(10, "most events extracted from one caption")
    scoring: str = _opt("project", "AutoDQ rules: 'project' (a side with no events scores 0, captions as "
                                   "written) or 'official' (DREAM-1K's: a side with no events scores 1, "
                                   "captions lower-cased, at most 10 events)", choices=SCORING_MODES)
    prompt_file: Optional[str] = _opt(None, "YAML/JSON file with the extraction and entailment prompt "
                                            "templates (see versavid_r1.judges.autodq_prompts); unset = "
                                            "the project's own prompts")
    decoy_check: bool = _opt(True, "score a caption with a positive recall or precision again against the "
                                   "decoy captions the client sends with it; one that does at least as well "
                                   "there is a suspected injection and scores 0 (versavid_r1.judges.decoy); "
                                   "--no-decoy-check ignores the decoys")
    max_attempts: int = _opt(3, "tries per model call when its reply is malformed")
    retry_temperature: float = _opt(0.7, "temperature of the retries (the first try is greedy)")
    max_tokens: int = _opt(1024, "max_tokens of each model call")
    concurrency: int = _opt(32, "model calls in flight at once")
    cache_size: int = _opt(10_000, "ground-truth captions whose events are kept (LRU)")
    request_timeout_s: float = _opt(60.0, "seconds per model call")
    transport_retries: int = _opt(2, "the openai client's retries of connection errors, 429, 5xx")
    lexical_entail_cover: float = _opt(0.75, _LEXICAL + "an event counts as entailed when one event of the "
                                             "other caption has this share of its content words")
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    log_level: str = _opt("info", "uvicorn and service log level")

    def validate(self) -> "CaptionJudgeSettings":
        """Every check that needs no model endpoint: a bad option fails here, before anything starts."""
        if self.backend not in CAPTION_BACKENDS:
            raise ValueError(f"backend must be one of {CAPTION_BACKENDS}, not {self.backend!r}")
        _check_shares(self, "lexical_entail_cover")
        if self.json_mode not in ("auto", "on", "off"):
            raise ValueError("json_mode must be auto, on or off")
        _check_common(self)
        if bool(self.azure_endpoint) != bool(self.api_version):
            raise ValueError("Azure OpenAI needs both --azure-endpoint and --api-version")
        _check_url("--base-url", self.base_url)
        _check_url("--azure-endpoint", self.azure_endpoint)
        for name in ("max_events", "max_attempts", "concurrency", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.cache_size < 0 or self.transport_retries < 0:
            raise ValueError("--cache-size and --transport-retries must be >= 0")
        if not (math.isfinite(self.request_timeout_s) and self.request_timeout_s > 0):
            raise ValueError("--request-timeout-s must be a finite number > 0")
        if not 0 <= self.retry_temperature <= 2:
            raise ValueError(f"--retry-temperature must be in [0, 2], got {self.retry_temperature}")
        if self.scoring not in SCORING_MODES:
            raise ValueError(f"scoring must be one of {SCORING_MODES}, not {self.scoring!r}")
        if self.scoring == "official" and self.max_events != OFFICIAL_MAX_EVENTS:
            raise ValueError(f"--scoring official extracts at most {OFFICIAL_MAX_EVENTS} events per caption, "
                             f"as DREAM-1K does; --max-events {self.max_events} contradicts it")
        from .autodq_prompts import load_prompt_file

        load_prompt_file(self.prompt_file)  # a bad file stops the service before it starts
        return self

    def preflight(self) -> None:
        """Checks of this machine before the service starts: the model endpoint's key is set (the entry
        script then makes one real call with it: versavid_r1.judges.upstream)."""
        from .upstream import missing_key_message

        missing = missing_key_message(self)
        if missing:
            raise ValueError(missing)


def _check_shares(settings, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(settings, name) <= 1.0:
            raise ValueError(f"{name} must be a share in [0, 1], got {getattr(settings, name)!r}")


# --- flags from fields ------------------------------------------------------------------------------
def _add_fields(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per documented field. Written here rather than with transformers' HfArgumentParser
    so that the caption service starts without importing transformers."""
    group = parser.add_argument_group(cls.__name__)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if "help" not in f.metadata or f.name in skip:
            continue
        typ = hints[f.name]
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        base = args[0] if args else typ
        default = f.default if f.default is not MISSING else None
        flag = "--" + f.name.replace("_", "-")
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help=f.metadata["help"])
        else:
            group.add_argument(flag, type=base, default=default, choices=f.metadata.get("choices"),
                               help=f.metadata["help"])


def _parser(cls, description: str, skip_limits: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_fields(p, cls)
    _add_fields(p, ServiceLimits, skip=skip_limits)
    return p


def _from_namespace(cls, ns: argparse.Namespace):
    own = {f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name) and f.name != "limits"}
    limits = ServiceLimits(**{f.name: getattr(ns, f.name) for f in fields(ServiceLimits) if hasattr(ns, f.name)})
    own["api_key"] = own.get("api_key") or os.environ.get(API_KEY_ENV) or None
    return cls(**own, limits=limits).validate()


def qwen_arg_parser() -> argparse.ArgumentParser:
    return _parser(QwenJudgeSettings, "Qwen2.5 judge service: DarkEventInfer 0/1/2 and MixVidQA "
                   "True/False verdicts, plus an OpenAI-compatible /v1/chat/completions.")


def qwen_settings_from_args(argv: Optional[Sequence[str]] = None) -> QwenJudgeSettings:
    return _from_namespace(QwenJudgeSettings, qwen_arg_parser().parse_args(argv))


def caption_arg_parser() -> argparse.ArgumentParser:
    return _parser(CaptionJudgeSettings, "AutoDQ caption judge service: event extraction and "
                   "entailment with an OpenAI-compatible model; returns recall and precision.",
                   skip_limits=("max_chat_chars", "max_request_tokens"))


def caption_settings_from_args(argv: Optional[Sequence[str]] = None) -> CaptionJudgeSettings:
    return _from_namespace(CaptionJudgeSettings, caption_arg_parser().parse_args(argv))
