"""What a training run leaves behind, used the way a researcher uses it: one short LoRA run of the offline tiny
Qwen2.5-VL (`--use_peft true`, relative model path, the authors' prompt preset), then

- the adapter it saved loads in evaluation from another folder without extra flags, and its merged weights
  equal base weights + the LoRA product computed by hand from the adapter file on disk;
- the run folder records every resolved setting, the git commit and the package versions;
- the completions table carries row id, problem type, ground truth and each reward;
- training and evaluation built the same prompt text (the configured preset);
- `--report_to wandb` runs offline for one step (skipped when wandb is not installed).
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from conftest import SMOKE_GRPO, answer_is_a
from versavid_r1 import prompts
from versavid_r1.grpo import make_parser, run
from versavid_r1.tasks import MCQA

pytestmark = pytest.mark.slow  # one real (tiny) training run shared by the module

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "grpo_tiny_cpu.yaml"
VIDEO = ["--nframes", "4", "--video_fps", "0", "--min_pixels", "3136", "--max_pixels", "6272"]


HAS_WANDB = importlib.util.find_spec("wandb") is not None


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, demo_jsonl):
    """A 1-step LoRA run started from a folder where the model path is relative (as a user types it). It
    reports to wandb, offline, when wandb is installed (the `tracking` extra), else to TensorBoard."""
    from versavid_r1.tiny_model import build_tiny_qwen25vl

    work = tmp_path_factory.mktemp("lora-run")
    build_tiny_qwen25vl(work / "tiny", seed=0)
    rows = [json.loads(line) for line in Path(demo_jsonl).read_text().splitlines() if line.strip()]
    mcqa = [answer_is_a(r) for r in rows if r["problem_type"] == MCQA]
    data = Path(demo_jsonl).parent / "mcqa-only.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in mcqa))
    argv = ["--config", str(TINY_CONFIG), "--model_name_or_path", "tiny", "--data_path", str(data),
            "--output_dir", "out", "--max_steps", "1", "--save_steps", "1", "--max_completion_length", "8",
            "--report_to", "wandb" if HAS_WANDB else "tensorboard", "--use_peft", "true",
            "--policy_prompt", "authors", "--per_device_train_batch_size", str(2 * len(mcqa)),
            "--check_judges", "false", "--log_completions", "true", *SMOKE_GRPO]
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(work))
    mp.setenv("WANDB_SILENT", "true")
    try:
        run(*make_parser().parse_args_and_config(args=argv))
    finally:
        if HAS_WANDB:
            import wandb

            wandb.finish()
        mp.undo()
    return {"work": work, "out": work / "out", "data": data, "rows": mcqa}


def lora_merged_by_hand(base_params: dict[str, torch.Tensor], adapter_dir: Path) -> dict[str, torch.Tensor]:
    """W + (alpha / r) * B A for every adapted weight, read from the adapter files on disk (linear layers:
    B @ A; the patch-embedding convolution: the same product over the rank, kernel dimensions kept)."""
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["r"]
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    merged = dict(base_params)
    for key, a in tensors.items():
        if ".lora_A." not in key:
            continue
        b = tensors[key.replace(".lora_A.", ".lora_B.")]
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        delta = torch.einsum("or,r...->o...", b.reshape(b.shape[0], b.shape[1]), a)
        merged[module + ".weight"] = base_params[module + ".weight"] + scale * delta
    return merged


def fill_lora_b(path: Path) -> None:
    """LoRA's B starts at zero, and one GRPO step whose groups all scored alike leaves it there, which would
    make "merged == base" pass for an adapter that was never applied: give B random values, in the file the
    trainer wrote (same keys and layout)."""
    tensors = load_file(str(path))
    gen = torch.Generator().manual_seed(0)
    for key, value in tensors.items():
        if ".lora_B." in key:
            tensors[key] = torch.randn(value.shape, generator=gen, dtype=value.dtype) * 0.1
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_lora_adapter_of_a_training_run_evaluates_without_flags(lora_run, tmp_path, monkeypatch):
    from versavid_r1.eval import parse_eval_args, run_eval
    from versavid_r1.eval.models import load_eval_model
    from versavid_r1.modeling import load_vl_model

    out, base = lora_run["out"], lora_run["work"] / "tiny"
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(base), "the adapter records an absolute base path"
    assert (out / "checkpoint-1" / "adapter_config.json").is_file()
    for model_dir in (out, out / "checkpoint-1"):
        fill_lora_b(model_dir / "adapter_model.safetensors")

    monkeypatch.chdir(tmp_path)  # another folder: the relative "tiny" of training means nothing here
    plain = {n: p.detach().clone() for n, p in load_vl_model(base).named_parameters()}
    for model_dir in (out, out / "checkpoint-1"):
        cfg = parse_eval_args(["--model", str(model_dir), "--device", "cpu", "--max_new_tokens", "4"])
        model, processor = load_eval_model(cfg)
        assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
        expected = lora_merged_by_hand(plain, model_dir)
        got = dict(model.named_parameters())
        changed = [n for n in expected if not torch.equal(expected[n], plain[n])]
        assert changed, "the adapter changes some weights"
        for name in expected:
            assert torch.allclose(got[name], expected[name], atol=1e-6), name

    # the whole evaluation on the adapter folder, with the training's prompt preset
    summary = run_eval(parse_eval_args([
        "--model", str(out), "--data_path", str(lora_run["data"]), "--data_format", "internal",
        "--output_dir", str(tmp_path / "eval"), "--device", "cpu", "--max_new_tokens", "4",
        "--policy_prompt", "authors", "--progress", "false", *VIDEO]))
    assert summary["counts"]["scored"] == len(lora_run["rows"])
    assert summary["environment"]["git"]["commit"] == git_head()
    records = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in lora_run["rows"]}
    for rec in records:  # the authors' template: question, newline, the tag sentence; nothing else
        assert rec["prompt"] == by_id[rec["id"]]["problem"] + "\n" + prompts.AUTHORS_INSTRUCTION


def git_head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_run_folder_records_settings_commit_and_versions(lora_run):
    import transformers
    import trl

    info = json.loads((lora_run["out"] / "versavid_run.json").read_text())
    assert info["grpo_config"]["max_completion_length"] == 8 and info["grpo_config"]["max_steps"] == 1
    yaml_lr = yaml.safe_load(TINY_CONFIG.read_text())["learning_rate"]
    assert info["grpo_config"]["num_generations"] == 2 and info["grpo_config"]["learning_rate"] == yaml_lr  # flag, YAML
    assert info["model_config"]["use_peft"] is True and info["model_config"]["lora_target_modules"]
    assert info["model"] == str(lora_run["work"] / "tiny")
    assert info["script_args"]["policy_prompt"] == "authors" and info["video_config"]["nframes"] == 4
    assert info["policy_prompt"] == {"preset": "authors", "instruction": prompts.AUTHORS_INSTRUCTION,
                                     "mcqa_suffix": False, "strip_question": False}
    assert info["reward_config"]["on_judge_error"] == "raise"  # from the YAML
    env = info["environment"]
    assert env["git"]["commit"] == git_head() and isinstance(env["git"]["dirty"], bool)
    assert env["packages"]["transformers"] == transformers.__version__ and env["packages"]["trl"] == trl.__version__
    assert env["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]


def test_completions_table_carries_row_id_type_truth_and_rewards(lora_run):
    tables = sorted((lora_run["out"] / "completions").glob("*.parquet"))
    assert tables
    df = pd.concat(pd.read_parquet(t) for t in tables)
    for column in ("id", "problem_type", "ground_truth", "format", "task_reward", "versavid_reward", "advantage"):
        assert column in df.columns, column
    rows = {r["id"]: r for r in lora_run["rows"]}
    assert set(df["id"]) == set(rows)
    for _, rec in df.iterrows():
        row = rows[rec["id"]]
        assert rec["problem_type"] == row["problem_type"]
        assert rec["ground_truth"] == row["solution"].removeprefix("<answer>").removesuffix("</answer>").strip()
        # gate composition: the total is format x task; a completion that failed the gate is not scored further
        if rec["format"] == 0:
            assert rec["versavid_reward"] == 0 and pd.isna(rec["task_reward"])
        else:
            assert rec["versavid_reward"] == pytest.approx(rec["task_reward"])
        # the trainer's prompt, one text per message: the video, then the authors' template and nothing else
        (message,) = list(rec["prompt"])
        video = str(Path(lora_run["data"]).parent / row["video"])
        assert message == {"role": "user", "content": f"<video: {video}>" + row["problem"] + "\n"
                           + prompts.AUTHORS_INSTRUCTION}


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (bash scripts/install.sh --tracking)")
def test_report_to_wandb_runs_offline(lora_run):
    work = lora_run["work"]
    runs = list(work.glob("wandb/offline-run-*/run-*.wandb"))
    assert runs and runs[0].stat().st_size > 0, sorted(str(p) for p in work.rglob("wandb/*"))
    # TRL logs the completions table to wandb too: our columns, and one text per prompt message
    tables = sorted(work.glob("wandb/offline-run-*/files/media/table/completions_*.table.json"))
    assert tables
    table = json.loads(tables[-1].read_text())
    for column in ("id", "problem_type", "ground_truth", "format", "task_reward", "versavid_reward"):
        assert column in table["columns"], column
    prompt = table["data"][0][table["columns"].index("prompt")]
    assert prompt[0]["role"] == "user" and prompt[0]["content"].startswith("<video: ")
