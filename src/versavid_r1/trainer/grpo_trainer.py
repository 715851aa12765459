"""`Qwen25VLGRPOTrainer`: TRL's GRPOTrainer with video in generation AND in the loss.

TRL 1.16 hands a video content part to `generate` but computes every log-probability (policy, old policy,
reference) without it, so the vision tower gets no gradient and the loss scores completions of a prompt
the model never saw (docs/stack.md). This subclass keeps TRL's algorithm untouched and overrides only where the
video has to travel:

- `_generate_and_score_completions`: decode each unique row's video once per batch, build its prompt and
  processor inputs, make them visible to the methods below while TRL runs, and keep them per row in the
  output so they follow TRL's shuffle/split of the generation batch into micro-batches.
- `_tokenize_prompts`: prompt ids + `pixel_values_videos`/`video_grid_thw`/`second_per_grid_ts` for the one
  batched `generate` call (TRL repeats each prompt G times; all rows go in one call).
- `_generate_single_turn`: vLLM colocate requests carry the video; with transformers generation the
  prefill of each unique prompt is shared by its G completions (`sharing.py`, `shared_prefill.py`); a vision token
  that slipped into a completion is cut (the next forward would fail on it).
- `_get_per_token_logps_and_entropies`: every log-prob forward gets the video fields of its rows. The rows
  of one prompt run their prompt (vision tower included) once, their completions packed after it under a
  block mask (`sharing.py`, `shared_prefix.py`); chunks it cannot pack run TRL's way, per chunk with the video bound in.
- `_prepare_inputs`: with the shared-prefix loss, TRL's shuffle of the generation batch moves whole groups
  (`batching.py`), so micro-batches of a multiple of G rows hold whole groups.
- `_compute_loss`: makes the micro-batch's per-row video inputs visible to the log-prob forward.
- `_prepare_input`: keeps `second_per_grid_ts` fp32 when TRL's generate path prepares inputs (DeepSpeed bf16).
- checkpoints (`checkpoints.CheckpointMixin`): saves are marked complete only once whole; a plain resume
  restores every tensor (keys converted as `from_pretrained` does) or stops naming the keys.
- resume (`resume.ResumeMixin`): the sampler's epoch, TRL's step counter and completion buffer and the row
  guard's failed rows are restored, so a resumed run equals the run that never stopped.
- model card (`model_card.ModelCardMixin`): names the local base model (TRL wrote "[None]").
- `get_batch_samples`: the rows of the batches the Trainer fetched (and one batch ahead) are decoded and
  processed in a background thread (`prefetch.py`) while the model trains.

Rows come from `versavid_r1.trainer.rows.rows_to_dataset` (JSON per row); prompts are built by
`versavid_r1.data.make_conversation` and videos decoded by `versavid_r1.data.load_video` (proxy tasks
applied, cached), both replaceable through the constructor for other data.
"""
from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Mapping
from typing import Any, Callable, Optional, Sequence

import torch
from accelerate.utils import gather_object
from transformers import ProcessorMixin
from trl import GRPOTrainer
from trl.extras.profiling import profiling_decorator
from trl.trainer.utils import split_pixel_values_by_grid, split_tensor_dict, unsplit_pixel_values_by_grid

from .batching import shuffle_groups
from .checkpoints import CheckpointMixin
from .messages import loggable_messages, table_messages
from .model_card import ModelCardMixin
from .prefetch import LookAhead, PromptPrefetcher
from .rank_sync import all_ranks_agree, fail_together
from .resume import ResumeMixin
from .row_guard import DEFAULT_MAX_SKIPPED_ROWS, RowGuard
from .rows import DatasetRows, decode_rows
from .sharing import SharedPassesMixin
from .video_inputs import (
    PromptVideoInputs,
    build_prompt_inputs,
    check_time_encoding,
    collate_generation_fields,
    collate_video_fields,
    for_processor,
    mm_token_type_ids,
    row_key,
    tokens_to_suppress,
)
from .vllm_video import (
    SERVER_MODE_MESSAGE,
    suppress_with_logit_bias,
    trainer_engine_context,
    video_requests,
    vllm_replaces_whole_video_placeholder,
)


# Token-aligned keyword arguments of TRL's log-prob helper that are cut per chunk of rows.
_PER_TOKEN_KWARGS = ("token_type_ids",)
# Seconds per temporal grid of each video (Qwen2.5-VL): stays fp32 wherever it goes.
SECONDS_PER_GRID = "second_per_grid_ts"


class Qwen25VLGRPOTrainer(ResumeMixin, ModelCardMixin, CheckpointMixin, SharedPassesMixin, GRPOTrainer):
    """GRPO for Qwen2.5-VL / Qwen2-VL / Qwen3-VL (dense, MoE) / Qwen3.5 on video prompts (see the module docstring for
    what changes; `versavid_r1.families` for what differs between the families).

    Extra arguments:
        video_config: `versavid_r1.data.VideoConfig` used by the default loader/prompt builder, and whose
            `min_pixels`/`max_pixels` bound the processor if decoded frames are not patch-aligned. Its
            `image_patch_size` follows the processor's (14, or 16 for Qwen3-VL / Qwen3.5).
        video_loader: `row -> list of clips` (objects with `frames` uint8 [T,3,H,W] and `fps`); default
            `[versavid_r1.data.load_video(row, video_config)]` (a row without a video loads none).
        conversation_builder: `row -> chat messages`; default `versavid_r1.data.make_conversation`.
        max_prompt_length: prompts longer than this (video tokens included) stop training with an error
            naming the row; prompts are never truncated (a cut video no longer matches its features).
        share_prompt_prefill: with transformers generation, run each unique prompt (vision tower included)
            once and decode its G completions from a copied KV cache (`shared_prefill.py`); batches that
            are not G consecutive copies of each prompt, images, vLLM and continuous batching use TRL's
            path. `--share_prompt_prefill false` (ScriptArguments) turns it off.
        max_skipped_rows: rows that fail to load during training (a file changed since validation) are
            skipped, logged with their `file:line`, counted in `data/skipped_rows` and replaced by other rows
            (`row_guard.py`); more than this many distinct failed rows stop training with the list.
        share_prompt_loss: in every log-prob forward, run each prompt of a micro-batch once for all its rows
            (`shared_prefix.py`; exact) and shuffle generation batches by whole groups; chunks it cannot pack
            (no two rows of a prompt, flash-attention-2, images) run TRL's way, logged once per reason.
            `--share_prompt_loss false` turns it off.
        prefetch_videos: build the prompt inputs of the batches ahead in a background thread (`prefetch.py`);
            `video_loader` and `conversation_builder` are then also called from that thread.
    """

    def __init__(
        self,
        model,
        reward_funcs=None,
        args=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        video_config=None,
        video_loader: Optional[Callable[[dict], Sequence[Any]]] = None,
        conversation_builder: Optional[Callable[[dict], list]] = None,
        max_prompt_length: Optional[int] = None,
        share_prompt_prefill: bool = True,
        max_skipped_rows: int = DEFAULT_MAX_SKIPPED_ROWS,
        share_prompt_loss: bool = True,
        prefetch_videos: bool = True,
        **kwargs,
    ):
        # Refused before TRL connects to a server: its client cannot send video (see vllm_video.py).
        if args is not None and args.use_vllm and args.vllm_mode == "server":
            raise ValueError(SERVER_MODE_MESSAGE)
        if video_config is None and (video_loader is None or conversation_builder is None):
            from versavid_r1.data import VideoConfig

            video_config = VideoConfig()
        video_config = for_processor(video_config, processing_class)
        self.video_config = video_config
        self.video_loader = video_loader or functools.partial(_load_row_videos, cfg=video_config)
        self.conversation_builder = conversation_builder or functools.partial(_make_conversation, cfg=video_config)
        self.max_prompt_length = max_prompt_length
        self.share_prompt_prefill = share_prompt_prefill
        self.share_prompt_loss = share_prompt_loss
        self._active_videos: Optional[list[PromptVideoInputs]] = None
        self._shared_prefix_fallbacks: set[str] = set()
        self._prefetcher: Optional[PromptPrefetcher] = None
        self._look_ahead: Optional[LookAhead] = None
        # Reason: a colocated vLLM engine sized for one bounded video per prompt (vllm_video.py).
        with trainer_engine_context(args, video_config, max_prompt_length, processing_class):
            super().__init__(
                model=model,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                **kwargs,
            )
        if not isinstance(self.processing_class, ProcessorMixin) or self._video_pad_token_id is None:
            raise TypeError(
                "Qwen25VLGRPOTrainer needs a Qwen2/2.5/3-VL or Qwen3.5 processor (AutoProcessor) whose tokenizer has "
                f"<|video_pad|>; got {type(self.processing_class).__name__}"
            )
        check_time_encoding(self.processing_class, getattr(self.video_config, "time_encoding", "absolute"))
        # Qwen3-VL on a vLLM that replaces whole video placeholders gets them wrapped (vllm_video.py).
        self._wrap_video_placeholders = self.use_vllm and vllm_replaces_whole_video_placeholder(self.processing_class)
        # Vision tokens must never be sampled (TRL only suppresses the image token).
        suppress = tokens_to_suppress(self._tokenizer, self.accelerator.unwrap_model(self.model).config)
        if self.use_vllm:
            self.vllm_generation.generation_kwargs = suppress_with_logit_bias(
                self.vllm_generation.generation_kwargs, suppress
            )
        else:
            merged = sorted(set(self.generation_kwargs.get("suppress_tokens") or []) | set(suppress))
            self.generation_kwargs["suppress_tokens"] = merged
            self.generation_config.suppress_tokens = merged
        self._suppressed_token_ids = frozenset(suppress)
        self._vision_cut_count = 0
        multi = self.accelerator.num_processes > 1
        self.row_guard = RowGuard(max_skipped_rows, seed=self.args.seed,
                                  sync=gather_object if multi else None,
                                  verbose=self.accelerator.is_main_process)
        if prefetch_videos:
            # The worker thread gets its own copy of the processor: a fast tokenizer shared by two threads can
            # fail ("Already borrowed") when one changes its padding settings while the other uses it.
            build = functools.partial(self._build_prompt, processor=copy.deepcopy(self.processing_class))
            self._prefetcher = PromptPrefetcher(build, row_key)

    # ---------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _videos_active(self, rows: Optional[list[PromptVideoInputs]]):
        """Make the per-row video inputs of the batch being processed visible to the overrides below."""
        previous, self._active_videos = self._active_videos, rows
        try:
            yield
        finally:
            self._active_videos = previous

    def _build_video_batch(self, inputs: list[dict]) -> tuple[list[dict], list[PromptVideoInputs]]:
        """Decoded rows with their prompt, and each row's processor inputs (unique rows processed once). A row
        that fails to load is replaced, with all its copies, by another row of the dataset (`row_guard.py`)."""
        dataset = self.train_dataset if self.model.training or self.eval_dataset is None else self.eval_dataset
        rows, built = self.row_guard.prepare(decode_rows(inputs), self._row_inputs, DatasetRows(dataset))
        self._metrics["train" if self.model.training else "eval"]["data/skipped_rows"].append(
            float(len(self.row_guard.skipped)))
        batch = [{**row, "prompt": loggable_messages(built[row_key(row)][0])} for row in rows]
        return batch, [built[row_key(row)][1] for row in rows]

    def _row_inputs(self, row: dict) -> tuple[list, PromptVideoInputs]:
        """One row's chat messages and processor inputs, built ahead by the prefetch thread when it has them;
        raises for a row that cannot load (the prefetcher's failures are redone here, so they raise here)."""
        prefetched = self._prefetcher.take(row) if self._prefetcher is not None else None
        messages, inputs = prefetched or self._build_prompt(row)
        n_tokens = len(inputs.input_ids)
        if self.max_prompt_length and n_tokens > self.max_prompt_length:
            raise ValueError(
                f"prompt of {n_tokens} tokens > max_prompt_length {self.max_prompt_length} "
                f"(problem_type {row.get('problem_type')!r}, video {row.get('video')!r}); lower the frame "
                "count or pixels per frame (nframes / max_pixels) or raise max_prompt_length"
            )
        return messages, inputs

    def _build_prompt(self, row: dict, processor=None) -> tuple[list, PromptVideoInputs]:
        """One row's chat messages and processor inputs (its video decoded through the loader and its cache)."""
        messages = self.conversation_builder(row)
        clips = list(self.video_loader(row) or [])
        return messages, build_prompt_inputs(
            processor or self.processing_class,
            messages,
            clips,
            min_pixels=getattr(self.video_config, "min_pixels", None),
            max_pixels=getattr(self.video_config, "max_pixels", None),
            chat_template_kwargs=self.chat_template_kwargs,
            time_encoding=getattr(self.video_config, "time_encoding", "absolute"),
        )

    # --- overrides ---------------------------------------------------------------------------------------
    def log(self, logs: dict, start_time: Optional[float] = None) -> None:
        # Reason: TRL writes the logged prompts to the completions table (parquet, and wandb/trackio tables).
        # A prompt's content parts differ in keys (video vs text), which wandb's table cannot type; one text
        # per message ("<video: PATH>question...") is readable everywhere.
        logged = getattr(self, "_logs", {}).get("prompt")
        if logged:
            flat = [table_messages(m) for m in logged]
            logged.clear()
            logged.extend(flat)
        super().log(logs, start_time)

    def _generate_and_score_completions(self, inputs):
        # Reason: decode the videos once per batch and carry them, per row, into generation and the loss.
        # A failure on one rank stops every rank with its message (no collective-timeout hang; rank_sync.py).
        inputs, videos = fail_together(lambda: self._build_video_batch(inputs), "loading the video batch")
        with self._videos_active(videos):
            output = super()._generate_and_score_completions(inputs)
        output["videos"] = videos  # a per-row list: TRL's shuffle/split keep it aligned with the rows
        if self._vision_cut_count:
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["completions/vision_token_cut"].append(float(self._vision_cut_count))
            self._vision_cut_count = 0
        return output

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # Reason: decode and process the rows of the fetched batches (and one batch ahead) off the critical path.
        if self._prefetcher is None:
            return super().get_batch_samples(epoch_iterator, num_batches, device)
        if self._look_ahead is None or self._look_ahead.inner is not epoch_iterator:
            self._look_ahead = LookAhead(epoch_iterator)
        batches, num_items = super().get_batch_samples(self._look_ahead, num_batches, device)
        upcoming = batches + [b for b in [self._look_ahead.peek()] if b is not None]
        self._prefetcher.submit(row for batch in upcoming for row in decode_rows(batch))
        return batches, num_items

    @profiling_decorator
    def _prepare_inputs(self, generation_batch):
        # Reason: TRL shuffles the generation batch by rows; keep groups whole for the shared-prefix loss.
        # The rest is TRL 1.16's train branch unchanged (batching.py says why the loss is unchanged).
        if not (self.share_prompt_loss and self.model.training and self._whole_groups(generation_batch)):
            return super()._prepare_inputs(generation_batch)
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self._step % generate_every == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            batch = shuffle_groups(split_pixel_values_by_grid(batch), self.num_generations)
            batches = split_tensor_dict(batch, self.args.steps_per_generation)
            self._buffered_inputs = [unsplit_pixel_values_by_grid(b) for b in batches]
        return self._buffered_inputs[self._step % self.args.steps_per_generation]

    def _tokenize_prompts(self, prompts: list):
        # Reason: TRL's tokenizer call would load the video itself (or not at all); use the decoded clips.
        if self._active_videos is None:
            return super()._tokenize_prompts(prompts)
        prompt_ids, fields = collate_generation_fields(self._active_videos, self._video_pad_token_id)
        return prompt_ids, None, fields

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        # Reason: vLLM colocate requests must carry the video; sampled vision tokens would break the forward.
        rows = self._active_videos
        if self.use_vllm and rows is not None:
            # Every rank installs the proxy (rows without video send none), so TP groups gather alike.
            with video_requests(self.vllm_generation, rows, video_token_id=self._video_pad_token_id,
                                wrap_placeholders=self._wrap_video_placeholders):
                completion_ids, logprobs = super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, num_generations, has_tool_images
                )
        elif self._shared_prefill_enabled() and all_ranks_agree(
            self._can_share_prefill(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        ):
            # Same path on every rank: under ZeRO-3 the two paths run different forwards (rank_sync.py).
            # Reason: TRL repeats each prompt G times before generate; prefill each unique prompt only once.
            completion_ids, logprobs = self._generate_shared_prefill(num_generations), None
        else:
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        return self._cut_vision_tokens(completion_ids, logprobs)

    def _prepare_input(self, data):
        # Reason: under DeepSpeed, Trainer casts every float input to the engine's dtype. TRL's generate
        # path sends `second_per_grid_ts` through it, so generation would see bf16 seconds per grid while
        # the log-prob forwards see fp32 (other temporal positions). Keep it fp32, only moved to the device.
        if isinstance(data, Mapping) and isinstance(data.get(SECONDS_PER_GRID), torch.Tensor):
            rest = super()._prepare_input({k: v for k, v in data.items() if k != SECONDS_PER_GRID})
            return type(data)({**rest, SECONDS_PER_GRID: data[SECONDS_PER_GRID].to(self.args.device)})
        return super()._prepare_input(data)

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **kwargs,
    ):
        # Reason: TRL's helper has no video parameters; each chunk gets its rows' video, its prompts run once.
        rows = self._active_videos
        if not rows or not any(r.video_fields for r in rows):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                **kwargs,
            )
        if len(rows) != input_ids.size(0):
            raise RuntimeError(f"{len(rows)} rows of video inputs for a batch of {input_ids.size(0)} sequences")
        if kwargs.get("pixel_values") is not None:
            raise NotImplementedError("prompts with both images and videos are not supported")
        batch_size = batch_size or input_ids.size(0)
        logps, entropies, aux = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            chunk = (model, rows[start:end], input_ids[start:end], attention_mask[start:end], logits_to_keep)
            chunk_kwargs = {k: kwargs[k][start:end] for k in _PER_TOKEN_KWARGS if kwargs.get(k) is not None}
            blockers = (["the MoE router's auxiliary loss (it counts every row's prompt)"] if compute_aux_loss else []
                        ) + [f"per-token input {k}" for k in chunk_kwargs]
            shared = self._shared_prefix_logps(*chunk, compute_entropy, blockers)
            if shared is not None:
                lp, ent, ax = *shared, None
            else:
                lp, ent, ax = self._plain_logps(*chunk, compute_entropy, compute_aux_loss, chunk_kwargs)
            logps.append(lp)
            if compute_entropy:
                entropies.append(ent)
            if compute_aux_loss:
                aux.append(ax)
        return (
            torch.cat(logps, dim=0),
            torch.cat(entropies, dim=0) if compute_entropy else None,
            torch.stack(aux).mean() if compute_aux_loss else None,
        )

    def _plain_logps(self, model, rows, ids, mask, logits_to_keep, compute_entropy, compute_aux_loss, chunk_kwargs):
        """TRL's forward of one chunk of rows, with the rows' video bound in (every row runs its own prompt)."""
        video = collate_video_fields(rows, device=ids.device)
        if video:
            video["mm_token_type_ids"] = mm_token_type_ids(ids, self._video_pad_token_id, self._image_pad_token_id)
        return super()._get_per_token_logps_and_entropies(
            functools.partial(model, **video) if video else model, ids, mask, logits_to_keep,
            batch_size=ids.size(0), compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss,
            **chunk_kwargs,
        )

    def _compute_loss(self, model, inputs):
        # Reason: the loss forward needs the micro-batch's own rows of video inputs.
        with self._videos_active(inputs.get("videos")):
            return super()._compute_loss(model, inputs)

    def _cut_vision_tokens(self, completion_ids, logprobs):
        """End a completion at a sampled vision token (replaced by EOS), which the forward cannot take."""
        banned = self._suppressed_token_ids
        if not banned:
            return completion_ids, logprobs
        eos = self.eos_token_ids[0]
        out_ids, out_lps = [], [] if logprobs is not None else None
        for i, ids in enumerate(completion_ids):
            ids = list(ids)
            cut = next((j for j, t in enumerate(ids) if int(t) in banned), None)
            if cut is not None:
                self._vision_cut_count += 1
                ids = ids[:cut] + [eos]
                if logprobs is not None:
                    logprobs[i] = list(logprobs[i][:cut]) + [None]  # None -> NaN -> no IS correction
            out_ids.append(ids)
            if out_lps is not None:
                out_lps.append(logprobs[i])
        return out_ids, out_lps


def _load_row_videos(row: dict, cfg) -> list:
    from versavid_r1.data import load_video

    clip = load_video(row, cfg)
    return [] if clip is None else [clip]


def _make_conversation(row: dict, cfg) -> list:
    from versavid_r1.data import make_conversation

    return make_conversation(row, cfg)
