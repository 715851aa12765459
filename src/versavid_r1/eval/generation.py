"""Batched generation for evaluation, fed exactly like training feeds the policy.

Each prompt goes through `versavid_r1.trainer.video_inputs.build_prompt_inputs` (the trainer's processor
call on the decoded clip: same token ids, `pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`),
and a batch is concatenated with `collate_generation_fields`, as in the trainer's one `generate` call.

- `HFGenerator`: transformers `generate` on the left-padded batch, greedy by default; vision placeholder
  tokens and embedding rows past the tokenizer are suppressed (`tokens_to_suppress`), as in training.
- `VLLMGenerator`: vLLM's offline `LLM.generate` with the trainer's video request
  (`versavid_r1.trainer.vllm_video.build_video_request`: the frames and metadata the processor saw, one
  placeholder per video) on an engine sized for one video of the configured frames and pixels. vLLM is
  imported only when this backend is chosen (GPU machines with the gpu extra).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from versavid_r1.trainer.video_inputs import (
    PromptVideoInputs,
    build_prompt_inputs,
    collate_generation_fields,
    tokens_to_suppress,
)

log = logging.getLogger(__name__)

VLLM_MISSING = (
    "--backend vllm needs the `vllm` package, which is not installed here (it needs a CUDA machine: "
    "pip install -e '.[gpu]'). Use --backend hf (transformers generate) instead."
)


# vLLM's smallest default `max_num_batched_tokens` for its offline `LLM` on a GPU; raised for long videos.
VLLM_MIN_BATCHED_TOKENS = 8192


class _Generator:
    """Shared part: the processor, prompt building and call counting."""

    def __init__(self, processor, cfg):
        self.processor = processor
        self.cfg = cfg
        self.tokenizer = processor.tokenizer
        self.video_token_id = int(self.tokenizer.convert_tokens_to_ids(processor.video_token))
        self.calls = 0  # generate calls made (the resume tests count them)

    def prepare(self, messages: list[dict], clips: Sequence[Any]) -> PromptVideoInputs:
        return build_prompt_inputs(self.processor, messages, clips, min_pixels=self.cfg.min_pixels,
                                   max_pixels=self.cfg.max_pixels, time_encoding=self.cfg.video_time_encoding)

    def generate(self, inputs: Sequence[PromptVideoInputs]) -> list[str]:
        raise NotImplementedError

    def generate_samples(self, inputs: Sequence[PromptVideoInputs], n: int) -> list[list[str]]:
        """`n` sampled completions per prompt (difficulty filtering): each prompt repeated `n` times in one
        batched call, so the copies draw different tokens from the shared random stream."""
        flat = self.generate([x for x in inputs for _ in range(n)])
        return [flat[k * n:(k + 1) * n] for k in range(len(inputs))]


def sampling_settings(cfg) -> dict[str, Any]:
    """The sampler of training rollouts (TRL passes temperature, top_p, top_k 0 = off and repetition_penalty 1
    explicitly). Set here too because transformers fills every generation setting left unset from the
    checkpoint's own generation_config.json: Qwen2.5-VL-Instruct ships top_k 1 (argmax, so n samples would
    all be the same) and a repetition penalty of 1.05 (docs/stack.md)."""
    return {"temperature": float(cfg.temperature), "top_p": float(cfg.top_p), "top_k": int(getattr(cfg, "top_k", 0)),
            "repetition_penalty": float(getattr(cfg, "repetition_penalty", 1.0))}


class HFGenerator(_Generator):
    def __init__(self, model, processor, cfg):
        from transformers import GenerationConfig

        super().__init__(processor, cfg)
        self.model = model
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [self.tokenizer.eos_token_id])
        pad_id = self.tokenizer.pad_token_id
        self.pad_id = int(pad_id if pad_id is not None else self.eos_ids[0])
        sampling = sampling_settings(cfg) if cfg.do_sample else {}
        self.generation_config = GenerationConfig(
            do_sample=bool(cfg.do_sample), max_new_tokens=int(cfg.max_new_tokens), eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id, suppress_tokens=tokens_to_suppress(self.tokenizer, model.config), **sampling,
        )

    def _batch(self, inputs: Sequence[PromptVideoInputs]) -> dict[str, Any]:
        prompt_ids, fields = collate_generation_fields(inputs, self.video_token_id)
        ids = [torch.tensor(x, dtype=torch.long) for x in prompt_ids]
        batch: dict[str, Any] = {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_id, padding_side="left"),
            "attention_mask": pad_sequence([torch.ones_like(t) for t in ids], batch_first=True, padding_value=0,
                                           padding_side="left"),
        }
        types = fields.pop("mm_token_type_ids", None)
        if types is not None:
            batch["mm_token_type_ids"] = pad_sequence([torch.tensor(t, dtype=torch.long) for t in types],
                                                      batch_first=True, padding_value=0, padding_side="left")
        batch.update(fields)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    @torch.inference_mode()
    def generate(self, inputs: Sequence[PromptVideoInputs]) -> list[str]:
        if not inputs:
            return []
        batch = self._batch(inputs)
        if self.cfg.do_sample:
            torch.manual_seed(int(self.cfg.seed) + self.calls)
        out = self.model.generate(**batch, generation_config=self.generation_config)
        self.calls += 1
        completions = out[:, batch["input_ids"].shape[1]:].cpu()
        return [self._decode(row) for row in completions]

    def _decode(self, ids: torch.Tensor) -> str:
        tokens = ids.tolist()
        end = next((i for i, t in enumerate(tokens) if t in self.eos_ids), len(tokens))
        return self.tokenizer.decode(tokens[:end], skip_special_tokens=True)


class VLLMGenerator(_Generator):
    def __init__(self, model_dir: str, processor, cfg, config=None, llm=None):
        try:
            import vllm
        except ImportError as exc:
            raise ImportError(VLLM_MISSING) from exc
        from versavid_r1.trainer.vllm_video import suppress_with_logit_bias, video_config_engine_kwargs

        super().__init__(processor, cfg)
        kwargs: dict[str, Any] = {
            "model": model_dir, "tensor_parallel_size": cfg.vllm_tensor_parallel_size,
            "gpu_memory_utilization": cfg.vllm_gpu_memory_utilization, "seed": cfg.seed,
            # one video, the configured pixel bounds, an encoder budget that holds the longest video
            **video_config_engine_kwargs(cfg.video_config(), max_num_batched_tokens=VLLM_MIN_BATCHED_TOKENS,
                                         max_model_len=cfg.vllm_max_model_len),
        }
        if cfg.dtype != "auto":
            kwargs["dtype"] = cfg.dtype
        if cfg.vllm_max_model_len:
            kwargs["max_model_len"] = cfg.vllm_max_model_len
        # `llm`: an engine already built for this model (the suite shares one between its benchmarks; it is sized
        # by the first benchmark's video settings, the largest of the paper's protocols)
        self.llm = llm if llm is not None else vllm.LLM(**kwargs)
        suppress = tokens_to_suppress(self.tokenizer, config) if config is not None else []
        params = suppress_with_logit_bias({}, suppress)
        params.update(max_tokens=int(cfg.max_new_tokens), seed=int(cfg.seed),
                      temperature=float(cfg.temperature) if cfg.do_sample else 0.0,
                      top_p=float(cfg.top_p) if cfg.do_sample else 1.0)
        if cfg.do_sample:
            sampler = sampling_settings(cfg)
            params["repetition_penalty"] = sampler["repetition_penalty"]
            if sampler["top_k"] > 0:  # vLLM's default considers every token, like top_k 0 in transformers
                params["top_k"] = sampler["top_k"]
        self.sampling_params = vllm.SamplingParams(**params)

    def generate(self, inputs: Sequence[PromptVideoInputs]) -> list[str]:
        return [texts[0] for texts in self._run(inputs, self.sampling_params)]

    def generate_samples(self, inputs: Sequence[PromptVideoInputs], n: int) -> list[list[str]]:
        """`n` completions per prompt as one request with `SamplingParams.n`: vLLM seeds the k-th sample with
        seed + k, so the samples differ (n copies of a request with one seed would all be the same)."""
        params = self.sampling_params.clone()
        params.n = int(n)
        return self._run(inputs, params)

    def _run(self, inputs: Sequence[PromptVideoInputs], params) -> list[list[str]]:
        from versavid_r1.trainer.vllm_video import video_request

        if not inputs:
            return []
        requests = [video_request(x, self.processor) for x in inputs]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        self.calls += 1
        return [[c.text for c in o.outputs] for o in outputs]


def make_generator(cfg, out_dir: str, processor=None, model=None, llm=None) -> _Generator:
    """The generator of `cfg.backend` (loads the model unless given; `llm`: a vLLM engine to reuse)."""
    from .models import load_eval_model, merged_model_dir, processor_source

    if cfg.backend == "vllm":
        try:
            import vllm  # noqa: F401  (fail before merging an adapter or loading anything)
        except ImportError as exc:
            raise ImportError(VLLM_MISSING) from exc
        from transformers import AutoConfig

        from versavid_r1.modeling import load_processor

        model_dir = merged_model_dir(cfg, out_dir)
        processor = processor or load_processor(processor_source(cfg))
        return VLLMGenerator(model_dir, processor, cfg, config=AutoConfig.from_pretrained(model_dir), llm=llm)
    if model is None or processor is None:
        model, processor = load_eval_model(cfg)
    return HFGenerator(model, processor, cfg)

