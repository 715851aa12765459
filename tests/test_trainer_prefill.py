"""Shared prompt prefill (`versavid_r1.trainer.shared_prefill`) in Qwen25VLGRPOTrainer's transformers path.

What is checked, with the offline tiny Qwen2.5-VL / Qwen2-VL (and Qwen3-VL / Qwen3-VL-MoE / Qwen3.5 for the first
check) and the synthetic demo mp4s: greedy completions
are token-for-token those of TRL's plain batched path (two prompts of different lengths, so left padding and
the multimodal rope offsets are exercised), the vision tower encodes each unique video once (a real forward
hook counts the videos it encodes), batches that are not G copies per prompt fall back to TRL's path, a
sampled training step still trains the vision tower, and the entry point's flag reaches the trainer.
"""
from __future__ import annotations

import pytest
import torch

from test_trainer import changed, make_trainer, vision_params
from versavid_r1.trainer.shared_prefill import completions_until_eos, is_grouped


class VisionCounter:
    """Forward hook on the vision tower: per call, the number of videos/images encoded and whether grad was on."""

    def __init__(self, model):
        self.calls: list[tuple[int, bool]] = []
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.handle = base.model.visual.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output):
        grid = kwargs["grid_thw"] if "grid_thw" in kwargs else args[1]
        self.calls.append((int(grid.shape[0]), torch.is_grad_enabled()))

    def videos(self) -> int:
        return sum(n for n, _ in self.calls)

    def reset(self) -> None:
        self.calls.clear()

    def close(self) -> None:
        self.handle.remove()


def generate_batch(trainer, batch, shared: bool):
    trainer.share_prompt_prefill = shared
    return trainer._generate_and_score_completions(batch)


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen2_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5"])
def test_greedy_completions_equal_the_plain_batched_path(model_dirs, demo_rows, video_cfg, tmp_path, arch):
    """Also Qwen3-VL (text timestamps, DeepStack), its MoE and Qwen3.5, whose cache holds linear-attention states."""
    trainer = make_trainer(model_dirs[arch], demo_rows[:2], video_cfg, tmp_path, per_device_train_batch_size=8,
                           num_generations=4, max_completion_length=12, generation_kwargs={"do_sample": False})
    assert trainer.generation_config.do_sample is False
    ds = trainer.train_dataset
    batch = [ds[i] for i in (0, 0, 0, 0, 1, 1, 1, 1)]  # MCQA + DarkEventInfer: prompts of different lengths
    lengths = {len(v.input_ids) for v in trainer._build_video_batch(batch)[1]}
    assert len(lengths) == 2, "the two prompts must differ in length (left padding exercised)"
    counter = VisionCounter(trainer.model)
    try:
        shared = generate_batch(trainer, batch, shared=True)
        assert counter.calls == [(2, False)], "one vision-tower call encoding each unique video once"
        counter.reset()
        plain = generate_batch(trainer, batch, shared=False)
        assert counter.calls == [(8, False)], "TRL's path encodes every copy"
    finally:
        counter.close()
    assert torch.equal(shared["prompt_ids"], plain["prompt_ids"])
    assert torch.equal(shared["completion_mask"], plain["completion_mask"])
    assert torch.equal(shared["completion_ids"], plain["completion_ids"])
    lengths = shared["completion_mask"].sum(1)
    assert (lengths > 1).all()
    first, second = shared["completion_ids"][0], shared["completion_ids"][4]
    if arch != "qwen3_5":  # the random 2-layer Qwen3.5 falls into the same greedy loop after either prompt
        assert not torch.equal(first, second), "the two prompts get different completions"


def test_batches_that_are_not_g_copies_per_prompt_use_trls_path(tiny_dirs, demo_rows, video_cfg, tmp_path):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path, per_device_train_batch_size=4,
                           num_generations=2, max_completion_length=4)
    trainer.share_prompt_prefill = True
    ds = trainer.train_dataset
    counter = VisionCounter(trainer.model)
    try:
        out = trainer._generate_and_score_completions([ds[i] for i in (0, 1, 0, 1)])  # interleaved rows
    finally:
        counter.close()
    assert counter.calls == [(4, False)] and out["completion_ids"].shape[0] == 4
    # the layout check itself, and the EOS cut that replaces TRL's
    assert is_grouped([[1, 2], [1, 2], [3], [3]], 2)
    assert not is_grouped([[1, 2], [3], [1, 2], [3]], 2)
    assert not is_grouped([[1], [1], [1]], 2) and not is_grouped([[1], [1]], 1)
    ids = torch.tensor([[5, 9, 7, 9], [5, 6, 7, 8]])
    assert completions_until_eos(ids, [9]) == [[5, 9], [5, 6, 7, 8]]


def test_a_cache_implementation_takes_trls_path_and_the_default_shares(tiny_dirs, demo_rows, video_cfg, tmp_path,
                                                                        caplog):
    """GRPOConfig `cache_implementation` and the shared prefill's ready cache cannot go together in transformers
    ("Passing both `cache_implementation` ... and `past_key_values` ... is unsupported"): such a run generates on
    TRL's path, saying so once; without one, the shared prefill runs."""
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path, per_device_train_batch_size=4,
                           num_generations=2, max_completion_length=4, cache_implementation="static")
    assert trainer.share_prompt_prefill and trainer.generation_config.cache_implementation == "static"
    ds = trainer.train_dataset
    batch = [ds[i] for i in (0, 0, 1, 1)]
    counter = VisionCounter(trainer.model)
    try:
        with caplog.at_level("WARNING", logger="versavid_r1.trainer.grpo_trainer"):
            for _ in range(2):
                out = trainer._generate_and_score_completions(batch)
                assert out["completion_ids"].shape[0] == 4
        assert counter.calls == [(4, False)] * 2, "TRL's path (every copy encoded), no error"
        assert sum("cache_implementation='static'" in r.getMessage() for r in caplog.records) == 1
        counter.reset()
        trainer.generation_config.cache_implementation = None  # the default
        trainer._generate_and_score_completions(batch)
        assert counter.calls == [(2, False)], "shared prefill: each unique video encoded once"
    finally:
        counter.close()


def test_sampled_training_step_with_shared_prefill_trains_the_vision_tower(tiny_dirs, demo_rows, video_cfg,
                                                                           tmp_path):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path,
                           per_device_train_batch_size=8, num_generations=4)
    trainer.share_prompt_prefill = True
    before = vision_params(trainer.model)
    counter = VisionCounter(trainer.model)
    try:
        trainer.train()
    finally:
        counter.close()
    assert trainer.state.global_step == 1
    generation = [c for c in counter.calls if not c[1]]
    assert generation == [(2, False)], f"generation encoded each of the 2 unique videos once: {counter.calls}"
    assert any(grad for _, grad in counter.calls), "the loss forward ran the vision tower with gradients"
    moved = changed(before, trainer.model)
    assert len(moved) == len(before), f"vision parameters not updated: {sorted(set(before) - set(moved))[:5]}"


def test_entry_point_flag_defaults_on_and_reaches_the_trainer(tiny_dirs, demo_rows, tmp_path):
    from versavid_r1.grpo import build_trainer, make_parser

    base = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
            "--model_name_or_path", tiny_dirs["qwen2_5_vl"], "--check_judges", "false", "--dtype", "float32",
            "--per_device_train_batch_size", "2", "--num_generations", "2"]
    on = make_parser().parse_args_and_config(args=base)
    off = make_parser().parse_args_and_config(args=base + ["--share_prompt_prefill", "false"])
    assert on[0].share_prompt_prefill is True and off[0].share_prompt_prefill is False
    assert build_trainer(*on, rows=demo_rows[:2]).share_prompt_prefill is True
    assert build_trainer(*off, rows=demo_rows[:2]).share_prompt_prefill is False
