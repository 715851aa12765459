"""Qwen25VLGRPOTrainer on CPU with the offline tiny Qwen2.5-VL / Qwen2-VL and the synthetic demo videos.

What is checked: the video reaches generation and every log-prob forward (value check against a direct
forward), the vision tower learns, one batched `generate` per generation batch, vision tokens are never
sampled, TRL's training variants (batch > 1, gradient accumulation, num_iterations > 1, every loss type,
LoRA, bf16, gradient checkpointing, a reference model, Qwen2-VL), and the vLLM colocate request.
The entry point, the judges and multi-process runs are in test_trainer_entry.py.
"""
from __future__ import annotations

import json
import types
import zlib

import pytest
import torch

from conftest import bf16_attention
from test_vllm_video import hf_processor_as_vllm
from versavid_r1.data import load_video, make_conversation
from versavid_r1.trainer import Qwen25VLGRPOTrainer, decode_rows, rows_to_dataset
from versavid_r1.trainer.row_guard import SkippedRowsExceeded
from versavid_r1.trainer.video_inputs import (
    build_prompt_inputs,
    mm_token_type_ids,
    tokens_to_suppress,
    vision_token_ids,
)
from versavid_r1.trainer.vllm_video import (
    SERVER_MODE_MESSAGE,
    add_videos_to_requests,
    build_video_request,
    suppress_with_logit_bias,
    video_requests,
)

def varied_reward(prompts, completions, **kwargs):
    """A cheap reward with spread inside each group, so every step has non-zero advantages."""
    return [float(zlib.crc32(c[0]["content"].encode()) % 5) for c in completions]


def make_trainer(path, rows, video_cfg, tmp_path, reward=varied_reward, peft_config=None, eval_rows=None,
                 share_prompt_prefill=True, max_prompt_length=None, attn_implementation="sdpa", **overrides):
    from transformers import AutoProcessor
    from trl import GRPOConfig

    from versavid_r1.modeling import load_vl_model

    settings = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
        max_completion_length=8, max_steps=1, learning_rate=5e-2, beta=0.0, use_cpu=True, bf16=False,
        report_to="none", save_strategy="no", logging_steps=1, seed=0, lr_scheduler_type="constant",
        dataloader_pin_memory=False, temperature=1.0,
    )
    settings.update(overrides)
    model = load_vl_model(path, dtype="float32", attn_implementation=attn_implementation)
    processor = AutoProcessor.from_pretrained(path, padding_side="left")
    return Qwen25VLGRPOTrainer(
        model=model, reward_funcs=reward, args=GRPOConfig(**settings), train_dataset=rows_to_dataset(rows),
        eval_dataset=rows_to_dataset(eval_rows) if eval_rows else None,
        processing_class=processor, video_config=video_cfg, peft_config=peft_config,
        share_prompt_prefill=share_prompt_prefill, max_prompt_length=max_prompt_length,
    )


def vision_params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if ".visual." in f".{n}" and p.requires_grad}


def changed(before, model):
    now = dict(model.named_parameters())
    return [n for n, p in before.items() if not torch.equal(p, now[n].detach())]


# --- processor inputs ----------------------------------------------------------------------------------
def test_prompt_inputs_match_processor_and_clip(tiny_dirs, demo_rows, video_cfg):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dirs["qwen2_5_vl"])
    for row in demo_rows[:4]:
        clip = load_video(row, video_cfg)
        assert clip.frames.shape[-1] % 28 == 0 and clip.frames.shape[-2] % 28 == 0
        inp = build_prompt_inputs(processor, make_conversation(row, video_cfg), [clip])
        grid = inp.video_fields["video_grid_thw"]
        t, h, w = grid[0].tolist()
        # the processor kept the loader's frames: no second resize, no re-sampling
        assert (t * 2, h * 14, w * 14) == (clip.frames.shape[0], clip.frames.shape[2], clip.frames.shape[3])
        assert inp.video_fields["pixel_values_videos"].shape[0] == t * h * w
        assert inp.input_ids.count(processor.video_token_id) == t * h * w // 4
        # second_per_grid_ts comes from the clip's own sampling fps (not transformers' 24 fps default)
        assert inp.video_fields["second_per_grid_ts"].tolist() == pytest.approx([2 / clip.fps])
        assert torch.equal(inp.frames[0], clip.frames)
    # Qwen2-VL has no second_per_grid_ts
    p2 = AutoProcessor.from_pretrained(tiny_dirs["qwen2_vl"])
    row = demo_rows[0]
    inp2 = build_prompt_inputs(p2, make_conversation(row, video_cfg), [load_video(row, video_cfg)])
    assert set(inp2.video_fields) == {"pixel_values_videos", "video_grid_thw"}


def test_prompt_without_matching_video_is_refused(tiny_dirs, demo_rows, video_cfg):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_dirs["qwen2_5_vl"])
    with pytest.raises(ValueError, match="placeholder"):
        build_prompt_inputs(processor, make_conversation(demo_rows[0], video_cfg), [])


def test_rows_survive_the_dataset_unmerged(demo_rows):
    ds = rows_to_dataset(demo_rows[:4])
    assert ds.column_names == ["row", "problem_type"]
    back = decode_rows([ds[i] for i in range(4)])
    keys = set(back[0])
    assert all(set(r) == keys for r in back), "every row carries every key (TRL builds reward kwargs from row 0)"
    for orig, got in zip(demo_rows[:4], back):
        assert {k: got[k] for k in orig} == json.loads(json.dumps(orig))
    # messages are built per batch, never stored in Arrow: no merged `video: None` keys in text parts
    text_parts = [p for p in make_conversation(back[0])[0]["content"] if p["type"] == "text"]
    assert all("video" not in p for p in text_parts)


def test_vision_tokens_and_padding_rows_are_suppressed(tiny_dirs):
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dirs["qwen2_5_vl"])
    cfg = AutoConfig.from_pretrained(tiny_dirs["qwen2_5_vl"])
    vis = vision_token_ids(tok, cfg)
    names = {tok.convert_ids_to_tokens(i) for i in vis}
    assert {"<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>"} <= names
    ids = tokens_to_suppress(tok, cfg)
    assert set(vis) <= set(ids) and set(range(len(tok), cfg.get_text_config().vocab_size)) <= set(ids)
    assert tok.eos_token_id not in ids and tok.convert_tokens_to_ids("<|im_end|>") not in ids


# --- the trainer -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", [True, False], ids=["shared-prefill", "trl-path"])
def test_one_step_trains_the_vision_tower_with_one_batched_generate(tiny_dirs, demo_rows, video_cfg, tmp_path, shared):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path,
                           per_device_train_batch_size=8, num_generations=2, share_prompt_prefill=shared)
    model = trainer.model
    before = vision_params(model)
    assert before, "the tiny model has a vision tower"
    calls = []
    original = model.generate

    def counting_generate(*args, **kwargs):
        calls.append({k: (v.shape if hasattr(v, "shape") else v) for k, v in kwargs.items()
                      if k in ("input_ids", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")})
        return original(*args, **kwargs)

    model.generate = counting_generate
    suppress = trainer.generation_config.suppress_tokens
    assert trainer._video_pad_token_id in suppress and trainer._image_pad_token_id in suppress
    trainer.train()
    # all 8 completions (4 prompts x G=2, all four problem types) came from ONE generate call
    assert len(calls) == 1 and calls[0]["input_ids"][0] == 8
    if shared:  # the video went into the one prefill per unique prompt; generate continues from its cache
        assert "video_grid_thw" not in calls[0]
    else:  # TRL's path: the video of every row goes into generate
        assert calls[0]["video_grid_thw"][0] == 8 and calls[0]["second_per_grid_ts"][0] == 8
    moved = changed(before, model)
    assert len(moved) == len(before), f"vision parameters not updated: {sorted(set(before) - set(moved))[:5]}"
    # the reward saw every problem type of the batch
    assert trainer.state.global_step == 1


def test_loss_logps_equal_a_direct_forward_with_the_video(tiny_dirs, demo_rows, video_cfg, tmp_path):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path,
                           per_device_train_batch_size=8, num_generations=2, max_completion_length=12)
    model = trainer.model
    model.eval()
    ds = trainer.train_dataset
    batch = [ds[i] for i in (0, 0, 1, 1, 2, 2, 3, 3)]
    out = trainer._generate_and_score_completions(batch)
    assert len(out["videos"]) == 8
    # no vision token is ever sampled
    vision = set(vision_token_ids(trainer._tokenizer, model.config))
    assert not (set(out["completion_ids"][out["completion_mask"].bool()].tolist()) & vision)

    max_err, max_gap_without_video = loss_logps_vs_direct_forward(trainer, out)
    assert max_err < 1e-5
    assert max_gap_without_video > 1e-3, "the check must be able to tell a forward without the video"


def loss_logps_vs_direct_forward(trainer, out) -> tuple[float, float]:
    """(largest difference, largest difference without the video) between the loss's log-probs of a generated
    batch `out` (computed as in _compute_loss: chunks of 3 cross row boundaries) and a direct forward of each row
    with (and without) its video."""
    model = trainer.model
    input_ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
    k = out["completion_ids"].size(1)
    with torch.no_grad(), trainer._videos_active(out["videos"]):
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, mask, k, batch_size=3)
    max_err, max_gap_without_video = 0.0, 0.0
    for i, row in enumerate(out["videos"]):
        comp = out["completion_ids"][i][out["completion_mask"][i].bool()]
        ids = torch.tensor(row.input_ids + comp.tolist())[None]
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           mm_token_type_ids=mm_token_type_ids(ids, trainer._video_pad_token_id),
                           **row.video_fields).logits
            blind = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        n = len(comp)
        ref = torch.log_softmax(logits[0, -n - 1:-1].float(), -1).gather(-1, comp[:, None])[:, 0]
        ref_blind = torch.log_softmax(blind[0, -n - 1:-1].float(), -1).gather(-1, comp[:, None])[:, 0]
        max_err = max(max_err, (logps[i, :n] - ref).abs().max().item())
        max_gap_without_video = max(max_gap_without_video, (logps[i, :n] - ref_blind).abs().max().item())
    return max_err, max_gap_without_video


@pytest.mark.parametrize(
    "arch, extra",
    [
        # Qwen2-VL, gradient accumulation, num_iterations > 1, a reference model (beta > 0)
        ("qwen2_vl", dict(gradient_accumulation_steps=2, num_iterations=2, beta=0.04, max_steps=2, loss_type="grpo")),
        # bf16 autocast, gradient checkpointing, batch of 8 completions split over two micro-steps
        ("qwen2_5_vl", dict(bf16=True, gradient_checkpointing=True, per_device_train_batch_size=4,
                            steps_per_generation=2, loss_type="dr_grpo")),
    ],
    ids=["qwen2vl-ga2-iter2-ref", "bf16-gradckpt-spg2"],
)
def test_training_variants(tiny_dirs, demo_rows, video_cfg, tmp_path, arch, extra):
    attn = bf16_attention() if extra.get("bf16") else "sdpa"
    trainer = make_trainer(tiny_dirs[arch], demo_rows[:4], video_cfg, tmp_path, attn_implementation=attn, **extra)
    before = vision_params(trainer.model)
    trainer.train()
    assert trainer.state.global_step == extra.get("max_steps", 1)
    assert changed(before, trainer.model), "vision tower not updated"
    logged = trainer.state.log_history[0]
    assert torch.isfinite(torch.tensor(logged["loss"]))
    if extra.get("beta"):
        assert "kl" in logged and trainer.ref_model is not None


def test_lora_on_language_and_vision_with_reference_by_adapter(tiny_dirs, demo_rows, video_cfg, tmp_path):
    from peft import LoraConfig

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv", "proj"]
    trainer = make_trainer(
        tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path, beta=0.04, gradient_checkpointing=True,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM"),
    )
    lora_vision = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
                   if "lora_B" in n and "visual" in n}
    assert lora_vision, "LoRA adapters on the vision tower"
    trainer.train()
    now = dict(trainer.model.named_parameters())
    assert any(not torch.equal(p, now[n]) for n, p in lora_vision.items())
    assert "kl" in trainer.state.log_history[0]


def test_every_trl_loss_type_backpropagates_into_the_vision_tower(tiny_dirs, demo_rows, video_cfg, tmp_path):
    """One generated batch, the loss of every TRL loss type: finite, and a gradient on the vision tower."""
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path,
                           per_device_train_batch_size=8, num_generations=2)
    model = trainer.model
    ds = trainer.train_dataset
    inputs = trainer._generate_and_score_completions([ds[i] for i in (0, 0, 1, 1, 2, 2, 3, 3)])
    assert inputs["advantages"].abs().sum() > 0
    visual = [p for n, p in model.named_parameters() if n.startswith("model.visual.")]
    for loss_type in ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"):
        trainer.loss_type = loss_type
        trainer.importance_sampling_level = "sequence" if loss_type == "luspo" else "token"
        model.zero_grad(set_to_none=True)
        loss = trainer._compute_loss(model, inputs)
        assert torch.isfinite(loss), loss_type
        loss.backward()
        grads = [p.grad for p in visual if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), f"{loss_type}: no gradient on the vision tower"


def test_evaluation_generates_and_scores_with_the_video(tiny_dirs, demo_rows, video_cfg, tmp_path):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path, eval_rows=demo_rows[4:8],
                           per_device_eval_batch_size=4, num_generations_eval=2)
    metrics = trainer.evaluate()
    assert "eval_loss" in metrics and "eval_reward" in metrics and metrics["eval_completions/mean_length"] > 0


def test_too_long_prompt_stops_with_the_row_named(tiny_dirs, demo_rows, video_cfg, tmp_path):
    # Every row is too long: each is skipped (row_guard.py) until none is left, then training stops naming them.
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path)
    trainer.max_prompt_length = 10
    with pytest.raises(SkippedRowsExceeded, match=r"demo\.jsonl:1 .*max_prompt_length 10.*problem_type"):
        trainer._build_video_batch([trainer.train_dataset[0]])


def test_sampled_vision_token_ends_the_completion(tiny_dirs, demo_rows, video_cfg, tmp_path):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path)
    pad = trainer._video_pad_token_id
    ids, lps = trainer._cut_vision_tokens([[5, 6, pad, 7], [5, 6]], [[-1.0, -2.0, -3.0, -4.0], [-1.0, -2.0]])
    assert ids == [[5, 6, trainer.eos_token_ids[0]], [5, 6]]
    assert lps == [[-1.0, -2.0, None], [-1.0, -2.0]]
    assert trainer._vision_cut_count == 1


# --- vLLM ------------------------------------------------------------------------------------------------
def test_vllm_video_request_layout():
    """vLLM 0.31's form (checked against its processor in test_vllm_video.py): the template's placeholder once per
    video, (frames [T, H, W, 3], metadata) per video, no resize or re-sampling."""
    frames = torch.randint(0, 255, (4, 3, 56, 84), dtype=torch.uint8)
    meta = {"fps": 4.0, "frames_indices": [0, 1, 2, 3], "total_num_frames": 4}
    req = build_video_request([1, 8, 9, 10, 3], [frames], [meta], video_token_id=9)
    video, sent = req["multi_modal_data"]["video"]
    assert video.shape == (4, 56, 84, 3) and video.dtype.name == "uint8"
    assert (torch.from_numpy(video).permute(0, 3, 1, 2) == frames).all()
    assert req["prompt_token_ids"] == [1, 8, 9, 10, 3]
    assert sent == {**meta, "do_sample_frames": False}
    assert req["mm_processor_kwargs"] == {"do_resize": False, "do_sample_frames": False}
    wrapped = build_video_request([1, 8, 9, 10, 3], [frames], [meta], video_token_id=9, wrap_placeholders=True)
    assert wrapped["prompt_token_ids"] == [1, 8, 8, 9, 10, 10, 3]
    assert build_video_request([1], [], [], video_token_id=9) == {"prompt_token_ids": [1]}
    with pytest.raises(ValueError, match="placeholder"):
        build_video_request([1, 3], [frames], [meta], video_token_id=9)
    with pytest.raises(ValueError, match="unexpanded placeholder"):  # an expanded run would be expanded again
        build_video_request([1, 8, 9, 9, 10], [frames], [meta], video_token_id=9)
    row = types.SimpleNamespace(input_ids=[2, 8, 9, 9, 10], placeholder_ids=[2, 8, 9, 10], frames=[frames],
                                video_metadata=[meta])
    out = add_videos_to_requests([{"prompt_token_ids": [1]}, {"prompt_token_ids": [2, 8, 9, 9, 10]}], [None, row],
                                 video_token_id=9)
    assert "multi_modal_data" not in out[0] and out[1]["prompt_token_ids"] == [2, 8, 9, 10]
    with pytest.raises(ValueError, match="does not hold the prompt of its row"):
        add_videos_to_requests([{"prompt_token_ids": [2, 8, 9, 10]}], [row], video_token_id=9)
    kwargs = suppress_with_logit_bias({"logit_bias": {"7": 1.0}, "seed": 3}, [9, 10])
    assert kwargs == {"logit_bias": {7: 1.0, 9: -100.0, 10: -100.0}, "seed": 3}


class _FakeLLM:
    """Records what TRL's colocate code sends to `vllm.LLM.generate` and answers like vLLM."""

    def __init__(self):
        self.requests = None
        self.sampling = None

    def generate(self, prompts, sampling_params=None, use_tqdm=False):
        self.requests, self.sampling = prompts, sampling_params
        lp = types.SimpleNamespace(rank=1, logprob=-0.5)
        outs = []
        for p in prompts:
            seq = types.SimpleNamespace(token_ids=[11, 12, 716], logprobs=[{11: lp}, {12: lp}, {716: lp}])
            outs.append(types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[seq]))
        return outs

    def reset_prefix_cache(self):
        pass


def fake_colocate(trainer, monkeypatch):
    """TRL's real colocate `VLLMGeneration` installed in `trainer`, around a `_FakeLLM` (no GPU, no vLLM)."""
    import trl.generation.vllm_generation as vg

    monkeypatch.setattr(vg, "SamplingParams", lambda **kw: kw, raising=False)
    gen = vg.VLLMGeneration.__new__(vg.VLLMGeneration)
    gen.__dict__.update(
        mode="colocate", llm=_FakeLLM(), accelerator=trainer.accelerator, model=trainer.model,
        tensor_parallel_size=1, enable_sleep_mode=False, structured_outputs_regex=None, repetition_penalty=1.0,
        temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, max_completion_length=8, logprobs=0,
        generation_kwargs=suppress_with_logit_bias({}, tokens_to_suppress(trainer._tokenizer, trainer.model.config)),
    )
    trainer.use_vllm, trainer.vllm_generation = True, gen
    trainer._last_loaded_step = trainer.state.global_step  # no weight sync to a fake engine
    return gen


def test_vllm_colocate_generation_sends_the_video(tiny_dirs, demo_rows, video_cfg, tmp_path, monkeypatch):
    """Runs TRL's real colocate `VLLMGeneration.generate` (vLLM itself stubbed) through the trainer."""
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path)
    gen = fake_colocate(trainer, monkeypatch)
    fake = gen.llm
    batch = [trainer.train_dataset[i] for i in (0, 0, 1, 1)]
    out = trainer._generate_and_score_completions(batch)
    assert gen.llm is fake, "the proxy is removed after the call"
    assert len(fake.requests) == 4
    for req, row in zip(fake.requests, out["videos"]):
        video, _ = req["multi_modal_data"]["video"]
        assert torch.equal(torch.from_numpy(video).permute(0, 3, 1, 2), row.frames[0])
        # what vLLM 0.31 makes of the request (oracle: its processing replayed with the HF processor)
        seen = hf_processor_as_vllm(trainer.processing_class, req)
        assert seen["prompt_token_ids"] == row.input_ids
        assert torch.equal(seen["second_per_grid_ts"], row.video_fields["second_per_grid_ts"])
    assert fake.sampling["logit_bias"][trainer._video_pad_token_id] == -100.0
    assert out["completion_ids"][0].tolist()[:3] == [11, 12, 716]


def test_vllm_server_mode_is_refused_at_start(tiny_dirs, demo_rows, video_cfg, tmp_path):
    with pytest.raises(ValueError, match="server.*cannot carry video"):
        make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path, use_vllm=True, vllm_mode="server")
    gen = types.SimpleNamespace(mode="server")
    with pytest.raises(ValueError, match="cannot carry video"):
        with video_requests(gen, [], video_token_id=1):
            pass
    assert "colocate" in SERVER_MODE_MESSAGE
