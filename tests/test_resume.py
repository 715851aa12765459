"""Resumes restore the model, failed saves are never resumed from, output folders are guarded (in-process).

Weights are compared, not step numbers: a run resumed at its checkpoint's own step trains no further, so
its model must equal the checkpoint read back from disk by transformers' own loader (`from_pretrained`) or
PEFT's serialization, tensor by tensor, and differ from the base model. Without
`versavid_r1.trainer.checkpoints` a plain resume restores only `lm_head` (the rest keeps base weights).
The multi-process paths (torchrun DDP, DeepSpeed ZeRO-2/3) and Ctrl-C are in test_trainer_entry.py.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import SMOKE_GRPO, answer_is_a
from versavid_r1.grpo import make_parser, resolve_resume, run
from versavid_r1.trainer.checkpoints import COMPLETE_MARKER, CheckpointError, is_complete, load_full_weights
from versavid_r1.trainer.run_guard import OutputDirError, OutputDirLock

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mcqa_data(demo_jsonl):
    rows = [json.loads(line) for line in Path(demo_jsonl).read_text().splitlines() if line.strip()]
    path = Path(demo_jsonl).parent / "resume-mcqa.jsonl"
    path.write_text("".join(json.dumps(answer_is_a(r)) + "\n" for r in rows if r["problem_type"] == "MCQA"))
    return str(path)


def args(model: str, data: str, out: Path, *extra) -> list[str]:
    # 2 prompts x 4 generations per step (a group of 4 whose sampled answers all agree, so that no gradient
    # flows, is rare; with 2 it happens half of the time), a checkpoint every step; a learning rate that moves
    # every tensor
    return ["--config", str(ROOT / "configs/grpo_tiny_cpu.yaml"), "--model_name_or_path", model, "--data_path", data,
            "--output_dir", str(out), "--log_completions", "false", "--report_to", "none", *SMOKE_GRPO,
            "--per_device_train_batch_size", "8", "--num_generations", "4", "--learning_rate", "0.01",
            "--save_steps", "1", *extra]


def train(*argv):
    return run(*make_parser().parse_args_and_config(args=list(argv)))


def from_disk(path: str):
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32)


def test_plain_resume_restores_every_tensor_and_never_uses_a_failed_save(tiny_dirs, mcqa_data, tmp_path,
                                                                        monkeypatch):
    import versavid_r1.trainer.checkpoints as checkpoints

    base = tiny_dirs["qwen2_5_vl"]
    out = tmp_path / "out"
    real_mark = checkpoints.mark_complete

    def disk_full_at_checkpoint_2(folder, info):  # the last write of checkpoint-2's save hits a full disk
        if folder.endswith("checkpoint-2"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), folder)
        real_mark(folder, info)

    monkeypatch.setattr(checkpoints, "mark_complete", disk_full_at_checkpoint_2)
    with pytest.raises(CheckpointError, match="no space left on device") as exc:
        train(*args(base, mcqa_data, out, "--max_steps", "2", "--save_total_limit", "1"))
    monkeypatch.setattr(checkpoints, "mark_complete", real_mark)
    assert "checkpoint-2" in str(exc.value)
    assert (out / "checkpoint-2" / "model.safetensors").is_file() and not is_complete(str(out / "checkpoint-2"))
    assert is_complete(str(out / "checkpoint-1")), "the last good checkpoint must outlive a failed save"
    assert resolve_resume("true", str(out)) == str(out / "checkpoint-1"), "the failed save must not be picked"

    # resume at checkpoint-1's own step: nothing is trained after loading
    trainer = train(*args(base, mcqa_data, out, "--max_steps", "1", "--resume_from_checkpoint", "true"))
    assert trainer.state.global_step == 1
    resumed = {k: v.detach() for k, v in trainer.model.state_dict().items()}
    checkpoint = from_disk(str(out / "checkpoint-1")).state_dict()
    original = from_disk(base).state_dict()
    assert set(resumed) == set(checkpoint)
    assert [k for k in checkpoint if not torch.equal(resumed[k], checkpoint[k])] == []
    unchanged = [k for k in original if torch.equal(resumed[k], original[k])]
    assert unchanged == [], f"tensors still at the base weights: {unchanged}"

    # the same command again, without the resume flag: refused, naming both ways forward
    with pytest.raises(OutputDirError) as refused:
        train(*args(base, mcqa_data, out, "--max_steps", "1"))
    assert "--resume_from_checkpoint true" in str(refused.value)
    assert "--overwrite_output_dir true" in str(refused.value)


def test_overwrite_starts_over_and_a_lora_resume_restores_the_adapters(tiny_dirs, mcqa_data, tmp_path):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    out = tmp_path / "lora"
    (out / "checkpoint-5").mkdir(parents=True)  # an older run's checkpoints
    (out / "checkpoint-5" / COMPLETE_MARKER).write_text("{}")
    (out / "checkpoint-7").mkdir()  # an incomplete one counts too: it may be all a crashed run left
    lora = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8",
            "--lora_target_modules", "q_proj", "v_proj", "qkv", "proj", "--max_steps", "1"]
    train(*args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, *lora, "--overwrite_output_dir", "true"))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"], "old checkpoints removed"

    trainer = train(*args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, *lora, "--resume_from_checkpoint", "true"))
    mine = get_peft_model_state_dict(trainer.model)
    saved = load_file(str(out / "checkpoint-1" / "adapter_model.safetensors"))
    assert set(mine) == set(saved) and any("visual" in k for k in saved)
    assert [k for k in saved if not torch.equal(mine[k].cpu(), saved[k])] == []
    assert all(saved[k].abs().sum() > 0 for k in saved if "lora_B" in k), "adapters differ from a fresh init"


def test_a_checkpoint_that_does_not_match_is_an_error_naming_the_keys(tiny_dirs, tmp_path):
    from safetensors.torch import load_file, save_file

    base = tiny_dirs["qwen2_5_vl"]
    saved = load_file(os.path.join(base, "model.safetensors"))  # legacy names, as save_pretrained writes
    legacy = "model.layers.0.mlp.up_proj.weight"
    assert legacy in saved
    saved.pop(legacy)
    saved["visual.extra.weight"] = torch.zeros(2)
    folder = tmp_path / "checkpoint-7"
    folder.mkdir()
    save_file(saved, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError) as exc:
        load_full_weights(from_disk(base), str(folder))
    message = str(exc.value)
    assert "1 missing: model.language_model.layers.0.mlp.up_proj.weight" in message
    assert "1 unexpected: model.visual.extra.weight" in message


# --- the output folder -------------------------------------------------------------------------------
def test_two_runs_cannot_share_an_output_dir(tiny_dirs, mcqa_data, tmp_path):
    out = tmp_path / "out"
    with OutputDirLock(str(out)):
        with pytest.raises(OutputDirError) as exc:
            train(*args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, "--max_steps", "1"))
    message = str(exc.value)
    assert f'"pid": {os.getpid()}' in message and "another training run" in message
    with OutputDirLock(str(out)):  # released by the holder: free again
        pass


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    out = tmp_path / "run"
    for step in (2, 10, 12):
        (out / f"checkpoint-{step}").mkdir(parents=True)
    for step in (2, 10):
        (out / f"checkpoint-{step}" / COMPLETE_MARKER).write_text("{}")
    assert resolve_resume("true", str(out)) == str(out / "checkpoint-10")
    assert resolve_resume("auto", str(out)) == str(out / "checkpoint-10")
    shutil.rmtree(out / "checkpoint-2")
    shutil.rmtree(out / "checkpoint-10")
    with pytest.raises(FileNotFoundError, match="incomplete, not usable: checkpoint-12"):
        resolve_resume("true", str(out))
    assert resolve_resume("auto", str(out)) is None
