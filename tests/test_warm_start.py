"""The warm start's batches (`versavid_r1.trainer.sft_data`): the GRPO prompt of each row, video included,
then the target completion, with the loss on the completion only — checked against the processor's own
prompt inputs and a direct forward of the tiny Qwen2.5-VL."""
from __future__ import annotations

import torch

from versavid_r1.answer import extract_answer
from versavid_r1.data import load_video, make_conversation
from versavid_r1.trainer import rows_to_dataset
from versavid_r1.trainer.sft_data import IGNORE_INDEX, WarmStartCollator, target_completion
from versavid_r1.trainer.video_inputs import build_prompt_inputs


def test_batch_is_prompt_then_target_and_the_loss_covers_the_target_only(tiny_dirs, demo_rows, video_cfg):
    from transformers import AutoProcessor

    from versavid_r1.modeling import load_vl_model

    path = tiny_dirs["qwen2_5_vl"]
    processor = AutoProcessor.from_pretrained(path)
    rows = demo_rows[:4]  # one row of each problem type
    collator = WarmStartCollator(processor, video_cfg, think="I watch the video.")
    batch = collator([rows_to_dataset(rows)[i] for i in range(len(rows))])

    tok = processor.tokenizer
    for i, row in enumerate(rows):
        prompt = build_prompt_inputs(processor, make_conversation(row, video_cfg), [load_video(row, video_cfg)],
                                     video_cfg.min_pixels, video_cfg.max_pixels)
        target = f"<think> I watch the video. </think><answer> {extract_answer(row['solution'])} </answer>"
        assert target_completion(row, "I watch the video.") == target
        target_ids = tok(target + tok.eos_token, add_special_tokens=False)["input_ids"]
        n, m = len(prompt.input_ids), len(target_ids)
        assert batch["input_ids"][i, :n].tolist() == prompt.input_ids
        assert batch["input_ids"][i, n:n + m].tolist() == target_ids
        assert (batch["labels"][i, :n] == IGNORE_INDEX).all() and batch["labels"][i, n:n + m].tolist() == target_ids
        assert (batch["labels"][i, n + m:] == IGNORE_INDEX).all() and batch["attention_mask"][i].sum() == n + m
    expected_pixels = torch.cat([
        build_prompt_inputs(processor, make_conversation(r, video_cfg), [load_video(r, video_cfg)],
                            video_cfg.min_pixels, video_cfg.max_pixels).video_fields["pixel_values_videos"]
        for r in rows])
    assert torch.equal(batch["pixel_values_videos"], expected_pixels)

    # transformers' loss on the batch = cross-entropy of a direct forward over the target tokens only
    model = load_vl_model(path, dtype="float32", attn_implementation="sdpa").eval()
    with torch.no_grad():
        out = model(**batch)
        logits = out.logits[:, :-1].float()
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE_INDEX
        direct = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert torch.allclose(out.loss, direct, atol=1e-5)
