"""Shared-prefix log-probs (`versavid_r1.trainer.shared_prefix`) in Qwen25VLGRPOTrainer, against TRL's plain path.

The oracle is the trainer's own plain path (TRL's `_get_per_token_logps_and_entropies`, each row with its video),
run on the same model and the same rows: log-probs, entropies and EVERY parameter's gradient must agree within
1e-5 in fp32, with 16-frame demo videos, two prompts of different lengths and completions of different lengths
(one empty), for Qwen2.5-VL and Qwen2-VL, with gradient checkpointing, with LoRA, and after a full ZeRO-3 step.
A forward hook on the vision tower proves each prompt's video was encoded once (an implementation that silently
fell back would pass the equality checks). Also: the fallback for micro-batches that split every group, the
group-keeping shuffle of generation batches, and the background prefetch of the next batches' prompt inputs.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

import pytest
import torch

from conftest import SMOKE_GRPO, answer_is_a, run_isolated
from test_trainer import make_trainer, varied_reward
from test_trainer_prefill import VisionCounter
from versavid_r1.data import VideoConfig
from versavid_r1.trainer import shared_prefix
from versavid_r1.trainer.batching import group_permutation, permute_rows
from versavid_r1.trainer.prefetch import LookAhead, PromptPrefetcher

ROOT = Path(__file__).resolve().parents[1]
# 16 frames, as the paper samples, at a small pixel budget: an 8 x 2 x 4 video grid (16 video tokens).
VIDEO16 = VideoConfig(nframes=16, min_pixels=4 * 28 * 28, max_pixels=4 * 28 * 28)
COMPLETION = 8
LENGTHS = [8, 3, 0, 5, 8]  # rows 0-2: the MCQA prompt, rows 3-4: the (longer) DarkEventInfer prompt


def plain_rows(trainer, order):
    """TRL-layout inputs for dataset rows `order`: left-padded prompts, right-padded completions of LENGTHS."""
    from trl.trainer.utils import pad

    ds = trainer.train_dataset
    _, videos = trainer._build_video_batch([ds[i] for i in order])
    prompts = [torch.tensor(v.input_ids) for v in videos]
    prompt_ids = pad(prompts, padding_value=trainer._tokenizer.pad_token_id, padding_side="left")
    prompt_mask = pad([torch.ones_like(p) for p in prompts], padding_value=0, padding_side="left")
    g = torch.Generator().manual_seed(0)
    completion = torch.randint(300, 600, (len(order), COMPLETION), generator=g)  # ordinary BPE tokens
    lengths = torch.tensor(LENGTHS[: len(order)])
    completion_mask = (torch.arange(COMPLETION)[None] < lengths[:, None]).long()
    ids = torch.cat([prompt_ids, completion], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    return ids, mask, videos, completion_mask.bool()


def run_logps(trainer, share, ids, mask, videos, valid, backward=True):
    """(log-probs, entropies, {param: grad}, videos encoded per vision-tower call) of one log-prob forward."""
    model = trainer.model
    trainer.share_prompt_loss = share
    model.zero_grad(set_to_none=True)
    counter = VisionCounter(model)
    try:
        with trainer._videos_active(videos):
            logps, ent, _ = trainer._get_per_token_logps_and_entropies(
                model, ids, mask, COMPLETION, compute_entropy=True)
    finally:
        counter.close()
    weights = torch.randn(valid.shape, generator=torch.Generator().manual_seed(1))
    if backward:
        ((logps * weights * valid).sum() + 0.1 * (ent * valid).sum()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), ent.detach(), grads, [n for n, _ in counter.calls]


def assert_same(plain, shared, valid):
    assert (plain[0] - shared[0])[valid].abs().max() <= 1e-5, "log-probs"
    assert (plain[1] - shared[1])[valid].abs().max() <= 1e-5, "entropies"
    assert set(plain[2]) == set(shared[2]) and plain[2], "the same parameters get gradients"
    for name, g in plain[2].items():
        err = (g - shared[2][name]).abs().max().item()
        assert err <= 1e-5 * max(1.0, g.abs().max().item()), f"{name}: gradient differs by {err}"
    assert any("visual" in n and g.abs().sum() > 0 for n, g in shared[2].items()), "the vision tower learns"


@pytest.mark.parametrize(
    "arch, variant",
    [("qwen2_5_vl", "gradient-checkpointing"), ("qwen2_vl", "plain"), ("qwen2_5_vl", "lora+gradient-checkpointing")],
)
def test_logps_entropies_and_every_gradient_equal_the_plain_path(tiny_dirs, demo_rows, tmp_path, arch, variant,
                                                                 monkeypatch):
    extra = {"gradient_checkpointing": "gradient-checkpointing" in variant}
    if "lora" in variant:  # the 1-GPU config's LoRA: language model and vision tower
        from peft import LoraConfig

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv", "proj"]
        extra["peft_config"] = LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM")
    trainer = make_trainer(tiny_dirs[arch], demo_rows[:2], VIDEO16, tmp_path, **extra)
    trainer.model.train()
    if extra["gradient_checkpointing"]:  # as Trainer.train enables it; reentrant as TRL forces for LoRA + ZeRO-3
        trainer.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": "lora" in variant})
    ids, mask, videos, valid = plain_rows(trainer, [0, 0, 0, 1, 1])
    assert videos[0].video_fields["video_grid_thw"][0, 0] == 8, "16 frames (8 temporal patches)"
    assert len(videos[0].input_ids) != len(videos[3].input_ids), "two prompt lengths: left padding exercised"
    plain = run_logps(trainer, False, ids, mask, videos, valid)
    dense = shared_prefix.block_mask

    def no_dense_mask(segment):  # the block path must never build the [U, 1, L, L] mask (issue 20, item 7)
        raise AssertionError("the dense block mask was built on the sdpa path")

    monkeypatch.setattr(shared_prefix, "block_mask", no_dense_mask)
    shared = run_logps(trainer, True, ids, mask, videos, valid)
    monkeypatch.setattr(shared_prefix, "block_mask", dense)
    assert plain[3] == [5] and shared[3] == [2], "plain encodes every row's video, shared each prompt's once"
    assert_same(plain, shared, valid)
    assert (shared[0][~valid] == 0).all(), "positions outside the completion mask are zero, never NaN"
    if "lora" in variant:
        assert all("lora_" in n for n in shared[2])
    if extra["gradient_checkpointing"]:
        assert trainer.model.is_gradient_checkpointing


def test_micro_batch_that_splits_every_group_falls_back_once(tiny_dirs, demo_rows, tmp_path, caplog):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], VIDEO16, tmp_path)
    ids, mask, videos, valid = plain_rows(trainer, [0, 1])  # one row of each of two prompts
    plain = run_logps(trainer, False, ids, mask, videos, valid, backward=False)
    with caplog.at_level(logging.WARNING, logger="versavid_r1.trainer.grpo_trainer"):
        fallback = run_logps(trainer, True, ids, mask, videos, valid, backward=False)
        run_logps(trainer, True, ids, mask, videos, valid, backward=False)
    assert fallback[3] == plain[3] == [2], "every row ran its own prompt"
    assert torch.equal(fallback[0], plain[0])
    notes = [r.getMessage() for r in caplog.records if "shared-prefix" in r.getMessage()]
    assert len(notes) == 1 and "splits every group" in notes[0], "logged once, with the reason"
    # a micro-batch holding part of a group still shares that part
    ids, mask, videos, valid = plain_rows(trainer, [0, 0, 1])
    plain = run_logps(trainer, False, ids, mask, videos, valid, backward=False)
    part = run_logps(trainer, True, ids, mask, videos, valid, backward=False)
    assert part[3] == [2] and (plain[0] - part[0])[valid].abs().max() <= 1e-5


def test_plan_refuses_layouts_it_cannot_pack():
    ids = torch.tensor([[0, 5, 6, 7, 8], [0, 5, 6, 7, 9]])
    ok = torch.tensor([[0, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    groups = shared_prefix.plan_groups(ids, ok, 2, keys=["a", "a"])
    assert groups == [shared_prefix.PrefixGroup(rows=(0, 1), prompt_len=2, lengths=(2, 1))]
    holes = torch.tensor([[0, 1, 1, 0, 1], [0, 1, 1, 1, 0]])  # a masked token inside a completion
    assert "left-padded" in shared_prefix.plan_groups(ids, holes, 2, keys=["a", "a"])
    other = torch.tensor([[0, 5, 6, 7, 8], [0, 5, 4, 7, 9]])
    assert "different prompt" in shared_prefix.plan_groups(other, ok, 2, keys=["a", "a"])
    assert "splits every group" in shared_prefix.plan_groups(ids, ok, 2, keys=["a", "b"])


def test_block_mask_lets_completions_see_the_prompt_and_themselves_only():
    segment = torch.tensor([[0, 0, 1, 1, 2, 2, 2, -1]])
    allowed = shared_prefix.block_mask(segment)[0, 0].int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 1, 0, 0],
        [1, 1, 0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ]


def test_block_attention_equals_the_dense_mask_through_transformers_sdpa(monkeypatch):
    """sdpa with a PrefixBlockMask (prompt causally, then each completion against the prompt and itself) gives
    the dense mask's output and gradients, when called the way transformers' sdpa integration calls it."""
    import types

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = [shared_prefix.PrefixGroup((0, 1, 2), 6, (4, 0, 3)), shared_prefix.PrefixGroup((3, 4), 9, (2, 5))]
    packed = shared_prefix.pack(groups, torch.randint(0, 50, (5, 14)), torch.arange(14).expand(3, 2, 14), 5, 0)
    assert packed.layout[0] == shared_prefix.RowLayout(5, ((5, 4), (9, 3)), 12), "an empty completion, padding"
    u, length = packed.input_ids.shape
    g = torch.Generator().manual_seed(0)
    q = torch.randn(u, 4, length, 8, generator=g, requires_grad=True)
    k, v = (torch.randn(u, 2, length, 8, generator=g, requires_grad=True) for _ in range(2))  # 2 KV heads (GQA)
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)
    blocks = []
    row = shared_prefix._block_row
    monkeypatch.setattr(shared_prefix, "_block_row", lambda *a: blocks.append(1) or row(*a))
    out = {}
    block = shared_prefix.PrefixBlockMask.wrap(packed.segment, packed.layout)
    assert block.shape == packed.allowed.shape and block.dtype == torch.bool
    with torch._C.DisableTorchFunctionSubclass():
        assert block.untyped_storage().nbytes() == 1, "no [U, 1, L, L] data behind the block mask"
    assert torch.equal(block & True, packed.allowed), "any other operation sees the dense mask"
    for name, mask in (("dense", packed.allowed), ("block", block)):
        o, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.3)
        weights = torch.linspace(-1, 1, o.numel()).view_as(o)
        out[name] = (o, torch.autograd.grad((o * weights).sum(), (q, k, v)))
    assert len(blocks) == u, "the block path ran, one call per packed row"
    assert (out["dense"][0] - out["block"][0]).abs().max() <= 1e-5
    assert all((a - b).abs().max() <= 1e-5 for a, b in zip(out["dense"][1], out["block"][1]))


# --- micro-batches hold whole groups ----------------------------------------------------------------------
def test_generation_batches_are_shuffled_by_whole_groups(tiny_dirs, demo_rows, tmp_path):
    perm = group_permutation(12, 4, torch.Generator().manual_seed(3))
    assert sorted(perm.tolist()) == list(range(12))
    assert all(perm[i:i + 4].tolist() == list(range(perm[i], perm[i] + 4)) for i in range(0, 12, 4))
    batch = {"x": torch.arange(4), "y": ["a", "b", "c", "d"], "n": torch.tensor(7), "z": None}
    out = permute_rows(batch, [2, 3, 0, 1])
    assert out["x"].tolist() == [2, 3, 0, 1] and out["y"] == ["c", "d", "a", "b"]
    assert out["n"] is batch["n"] and out["z"] is None

    # the trainer: 4 prompts x G=2 generated at once, cut into 2 micro-batches of 4 rows
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], VIDEO16, tmp_path, per_device_train_batch_size=4,
                           num_generations=2, steps_per_generation=2, max_completion_length=4)
    ds = trainer.train_dataset
    generation_batch = [ds[i] for i in (0, 0, 1, 1, 2, 2, 3, 3)]
    trainer.model.train()
    generated = trainer._generate_and_score_completions(generation_batch)
    trainer._generate_and_score_completions = lambda batch: dict(generated)  # the split is what is tested

    def micro_batches(share):
        trainer.share_prompt_loss, trainer._buffered_inputs, trainer._step = share, None, 0
        first = trainer._prepare_inputs(generation_batch)
        trainer._step = 1
        return [first, trainer._prepare_inputs(generation_batch)]

    def groups_whole(mbs):
        return all(len({id(v) for v in mb["videos"]}) == 2 for mb in mbs)

    torch.manual_seed(0)
    for _ in range(3):
        mbs = micro_batches(True)
        assert groups_whole(mbs)
        assert sum(len(mb["videos"]) for mb in mbs) == 8
    torch.manual_seed(0)
    assert not all(groups_whole(micro_batches(False)) for _ in range(4)), "TRL's row shuffle splits groups"


# --- background prefetch --------------------------------------------------------------------------------------
def test_prompt_inputs_are_built_ahead_in_a_background_thread(tiny_dirs, demo_rows, tmp_path):
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], VIDEO16, tmp_path, per_device_train_batch_size=4,
                           num_generations=2, max_steps=2, max_completion_length=4)
    loads, built = [], []
    loader = trainer.video_loader
    trainer.video_loader = lambda row: loads.append(threading.current_thread().name) or loader(row)
    take = trainer._prefetcher.take
    trainer._prefetcher.take = lambda row: built.append((row, take(row))) or built[-1][1]
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(loads) == 4 and all(name.startswith("versavid-prefetch") for name in loads), loads
    assert trainer._prefetcher.hits == 4 and all(result is not None for _, result in built)
    row, (messages, inputs) = built[0]
    again = trainer._build_prompt(row)[1]  # built on this thread: the same inputs
    assert again.input_ids == inputs.input_ids
    assert all(torch.equal(again.video_fields[k], inputs.video_fields[k]) for k in inputs.video_fields)


def test_a_failed_background_build_is_rebuilt_and_raised_on_the_main_thread():
    calls = []

    def build(row):
        calls.append(threading.current_thread().name)
        if row["bad"]:
            raise OSError(f"cannot read {row['video']}")
        return row["video"]

    pre = PromptPrefetcher(build, key=lambda r: r["video"])
    pre.submit([{"video": "a.mp4", "bad": False}, {"video": "b.mp4", "bad": True}, {"video": "a.mp4", "bad": False}])
    assert pre.take({"video": "a.mp4", "bad": False}) == "a.mp4"
    assert pre.take({"video": "b.mp4", "bad": True}) is None, "the caller rebuilds it (and raises) itself"
    pre.submit([{"video": "a.mp4", "bad": False}])  # taken recently: a repeat of the batch is not rebuilt
    assert pre.submitted == 2 and len(calls) == 2
    pre.close()
    ahead = LookAhead(iter([1, 2]))
    assert ahead.peek() == 1 and next(ahead) == 1 and ahead.peek() == 2 and list(ahead) == [2]
    assert ahead.peek() is None


def test_entry_point_flags_reach_the_trainer(tiny_dirs, demo_rows, tmp_path):
    from versavid_r1.grpo import build_trainer, make_parser

    base = ["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
            "--model_name_or_path", tiny_dirs["qwen2_5_vl"], "--check_judges", "false", "--dtype", "float32",
            "--per_device_train_batch_size", "2", "--num_generations", "2"]
    on = make_parser().parse_args_and_config(args=base)
    assert on[0].share_prompt_loss is True and on[0].prefetch_videos is True
    off = make_parser().parse_args_and_config(args=base + ["--share_prompt_loss", "false", "--prefetch_videos",
                                                           "false"])
    trainer = build_trainer(*off, rows=demo_rows[:2])
    assert trainer.share_prompt_loss is False and trainer._prefetcher is None


# --- ZeRO-3 -------------------------------------------------------------------------------------------------
ZERO3_PAIR = r"""
import json, sys
from safetensors.torch import load_file
from versavid_r1.grpo import make_parser, run
config, model, data, out, extra = sys.argv[1:6]
weights = {}
for share in ("false", "true"):
    args = ["--config", config, "--model_name_or_path", model, "--data_path", data, "--output_dir", f"{out}/{share}",
            "--deepspeed", "configs/deepspeed/zero3.json", "--use_cpu", "false", "--max_steps", "1",
            "--save_strategy", "no", "--log_completions", "false", "--report_to", "none", "--check_judges", "false",
            "--per_device_train_batch_size", "8", "--num_generations", "4", "--nframes", "16",
            "--optim", "sgd", "--learning_rate", "1.0", "--share_prompt_loss", share, "--prefetch_videos", "false",
            *json.loads(extra)]
    run(*make_parser().parse_args_and_config(args=args))
    weights[share] = load_file(f"{out}/{share}/model.safetensors")
base = load_file(f"{model}/model.safetensors")
step = {k: float((weights["false"][k] - base[k]).abs().max()) for k in base}
diff = {k: float((weights["true"][k] - weights["false"][k]).abs().max()) for k in base}
print("RESULT " + json.dumps({"step": step, "diff": diff}))
"""


@pytest.mark.slow
def test_zero3_training_step_equals_the_plain_path(tiny_dirs, demo_jsonl, tmp_path):
    """One GRPO step under DeepSpeed ZeRO-3 on CPU, shared-prefix vs plain loss: the same weights after it.
    With an empty torch-extensions folder: the training entry compiles no DeepSpeed op (DeepSpeed's CPU shm
    op took 140 CPU-seconds to build on the first run, more than the two training runs together)."""
    rows = [json.loads(line) for line in Path(demo_jsonl).read_text().splitlines() if line.strip()]
    data = Path(demo_jsonl).parent / "mcqa-zero3.jsonl"  # beside the videos; MCQA only: rule rewards, no judge
    data.write_text("".join(json.dumps(answer_is_a(r)) + "\n" for r in rows if r["problem_type"] == "MCQA"))
    extensions = tmp_path / "torch_extensions"
    env = {"DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "TORCH_EXTENSIONS_DIR": str(extensions)}
    cmd = [sys.executable, "-c", ZERO3_PAIR, str(ROOT / "configs/grpo_tiny_cpu.yaml"), tiny_dirs["qwen2_5_vl"],
           str(data), str(tmp_path / "out"),
           json.dumps(SMOKE_GRPO[2:])]  # rewards that differ; G stays 4
    status, stdout, stderr = run_isolated(cmd, {**os.environ, **env}, timeout=280, cwd=ROOT)
    assert status == 0, stdout[-3000:] + stderr[-3000:]
    assert not extensions.exists() and "built successfully" not in stdout + stderr, "a DeepSpeed op was compiled"
    result = json.loads(stdout.split("RESULT ", 1)[1].splitlines()[0])
    # SGD with lr 1: a weight's change is its gradient, so the comparison is the gradients' (Adam would divide
    # noise-level gradients by their own size)
    moved = [k for k, v in result["step"].items() if v > 1e-3]
    assert any("visual" in k for k in moved) and any("layers" in k for k in moved), "the step moved the weights"
    assert max(result["diff"].values()) <= 1e-5, {k: v for k, v in result["diff"].items() if v > 1e-5}
    assert "shared-prefix log-probs not used" not in stdout + stderr


def test_paper_and_one_gpu_configs_keep_whole_groups_for_the_shared_prefix_loss():
    import yaml

    for name in ("grpo_paper_8xA800.yaml", "grpo_1gpu.yaml", "grpo_tiny_cpu.yaml"):
        cfg = yaml.safe_load((ROOT / "configs" / name).read_text())
        assert cfg["per_device_train_batch_size"] % cfg["num_generations"] == 0, name
        assert cfg.get("share_prompt_loss", True) is True, name
        assert cfg["attn_implementation"] in shared_prefix.MASK_KERNELS, f"{name}: a kernel that takes the mask"
