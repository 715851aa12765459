"""The training entry (`python -m versavid_r1.grpo`) on CPU: configs, preflight, real judge services on
127.0.0.1, and the multi-process / DeepSpeed / kill-and-resume runs (marked slow, still run by default).

The tiny policy has random weights and would never write `<answer>`, so the runs that need answers use
`--demo_answer_bias`, which steers about half the completions towards a fixed well-formed answer. The runs
start from configs/grpo_tiny_cpu.yaml (the CPU demo) with the smoke settings of `SMOKE` on top: short, two
generations, and `on_judge_error skip` (the tiny judge LM's caption judge answers 503).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import SMOKE_GRPO, answer_is_a, bf16_attention
from versavid_r1.grpo import main, make_parser, resolve_resume, run
from versavid_r1.tasks import CAPTION, DARK_EVENT_INFER, MCQA, MIX_VID_QA
from versavid_r1.trainer.checkpoints import COMPLETE_MARKER

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "grpo_tiny_cpu.yaml"
TYPES = (MCQA, DARK_EVENT_INFER, MIX_VID_QA, CAPTION)


# --- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from versavid_r1.tiny_model import build_tiny_qwen25vl

    return str(build_tiny_qwen25vl(tmp_path_factory.getbasetemp() / "trainer-tiny-qwen25vl", seed=0))


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    from versavid_r1.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.getbasetemp() / "trainer-demo-16", n=16, seed=0).parent


def subset(demo_dir: Path, name: str, types=TYPES, per_type: int = 1) -> str:
    """A JSONL beside the demo videos with `per_type` rows of each of `types`."""
    rows = [json.loads(line) for line in (demo_dir / "demo.jsonl").read_text().splitlines() if line.strip()]
    picked = []
    for t in types:
        picked += [answer_is_a(r) if t == MCQA else r for r in rows if r["problem_type"] == t][:per_type]
    path = demo_dir / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked))
    return str(path)


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    """Both judge services, for real, on 127.0.0.1: the Qwen2.5 judge on the tiny causal LM, and the caption
    judge on the Qwen judge's OpenAI-compatible endpoint (as the CPU demo runs them)."""
    from versavid_r1.judges import (
        CaptionJudgeSettings, QwenJudgeSettings, create_caption_judge_app, create_qwen_judge_app,
    )
    from versavid_r1.judges.server import BackgroundServer
    from versavid_r1.tiny_model import build_tiny_causal_lm

    lm = str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))
    qwen = BackgroundServer(create_qwen_judge_app(QwenJudgeSettings(
        model=lm, backend="transformers", device="cpu", served_model_name="tiny-judge", chat_max_tokens=32,
    ))).start()
    os.environ.setdefault("VERSAVID_TEST_UPSTREAM_KEY", "unused")
    caption = BackgroundServer(create_caption_judge_app(CaptionJudgeSettings(
        base_url=qwen.url + "/v1", model="tiny-judge", max_attempts=1, max_tokens=32,
        upstream_api_key_env="VERSAVID_TEST_UPSTREAM_KEY",
    ))).start()
    yield {"qwen": qwen.url, "caption": caption.url}
    caption.stop()
    qwen.stop()


def dead_url() -> str:
    from versavid_r1.judges.server import free_port

    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


# Smoke-run settings on top of the demo config: random weights steered to an answer, few short steps.
SMOKE = [*SMOKE_GRPO, "--max_steps", "4", "--per_device_train_batch_size", "8",
         "--max_completion_length", "24", "--save_steps", "2", "--on_judge_error", "skip", "--judge_retries", "0"]


def entry_args(model, data, out, *extra) -> list[str]:
    return ["--config", str(TINY_CONFIG), "--model_name_or_path", model, "--data_path", data,
            "--output_dir", str(out), "--log_completions", "false", "--report_to", "none", *SMOKE, *extra]


def parse(args):
    return make_parser().parse_args_and_config(args=args)


def steps_logged(history, key):
    return [h for h in history if key in h]


def subprocess_env(**extra):
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


# --- options, configs, preflight ---------------------------------------------------------------------------
def test_configs_parse_and_follow_the_paper():
    from trl import GRPOConfig, ModelConfig

    from versavid_r1.trainer.args import ScriptArguments

    names = {f for cls in (ScriptArguments, GRPOConfig, ModelConfig) for f in cls.__dataclass_fields__}
    for name in ("grpo_paper_8xA800.yaml", "grpo_1gpu.yaml", "grpo_tiny_cpu.yaml"):
        cfg = yaml.safe_load((ROOT / "configs" / name).read_text())
        assert not set(cfg) - names, f"{name}: unknown keys {set(cfg) - names}"
        if cfg.get("deepspeed"):
            assert (ROOT / cfg["deepspeed"]).is_file()
    paper = yaml.safe_load((ROOT / "configs" / "grpo_paper_8xA800.yaml").read_text())
    expect = dict(model_name_or_path="Qwen/Qwen2.5-VL-7B-Instruct", beta=0.0, num_generations=8, temperature=1.0,
                  learning_rate=1e-6, nframes=16, min_pixels=128 * 28 * 28, max_pixels=196 * 28 * 28,
                  max_prompt_length=8192, max_completion_length=2048, num_train_epochs=1, save_steps=50, seed=42,
                  bf16=True, gradient_checkpointing=True)
    assert {k: paper[k] for k in expect} == expect
    # 6 policy processes x 8 completions x 4 accumulation steps / 8 generations = 24 prompts per step (ref)
    assert 6 * paper["per_device_train_batch_size"] * paper["gradient_accumulation_steps"] // 8 == 24
    for name in ("zero2.json", "zero3.json", "zero3_offload.json"):
        ds = json.loads((ROOT / "configs" / "deepspeed" / name).read_text())
        assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"
    assert json.loads((ROOT / "configs/deepspeed/zero3_offload.json").read_text())[
        "zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    # the tiny config parses for real on this machine, flags override it
    script, training, model = parse(["--config", str(TINY_CONFIG), "--nframes", "2", "--on_judge_error", "skip"])
    assert (script.nframes, script.on_judge_error) == (2, "skip")
    assert training.report_to == ["tensorboard"] and script.demo_answer_bias == 0.0  # the demo needs no steering
    assert script.video_config().min_pixels == 3136 and script.reward_config().composition == "gate"


def test_paper_config_samples_like_the_authors_and_bounds_its_checkpoints(tmp_path):
    """Through the entry point's own parser (use_cpu only so that bf16 parses on a CPU machine)."""
    path = ROOT / "configs" / "grpo_paper_8xA800.yaml"
    _, training, _ = parse(["--config", str(path), "--output_dir", str(tmp_path), "--use_cpu", "true"])
    # transformers' GenerationConfig defaults, as the authors' generate call used them (TRL's own top_k is 0)
    assert (training.temperature, training.top_k, training.top_p) == (1.0, 50, 1.0)
    assert training.save_total_limit == 3 and training.save_steps == 50  # ~100 GB per ZeRO-3 checkpoint
    assert training.steps_per_generation == 1 and training.gradient_accumulation_steps == 4
    text = path.read_text()
    comment = text[text.index("# steps_per_generation"):text.index("steps_per_generation: 1")]
    assert all(word in comment for word in ("memory", "throughput", "off-policy", "on-policy"))
    assert "100 GB" in text


def test_resume_flag_semantics(tmp_path):
    out = tmp_path / "run"
    assert resolve_resume("auto", str(out)) is None
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        resolve_resume("true", str(out))
    for step in (2, 10):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        (out / f"checkpoint-{step}" / COMPLETE_MARKER).write_text("{}")
    assert resolve_resume("true", str(out)).endswith("checkpoint-10")
    assert resolve_resume("auto", str(out)).endswith("checkpoint-10")
    assert resolve_resume(str(out / "checkpoint-2"), str(out)).endswith("checkpoint-2")
    assert resolve_resume(None, str(out)) is None and resolve_resume("false", str(out)) is None
    with pytest.raises(FileNotFoundError):
        resolve_resume(str(out / "checkpoint-99"), str(out))


def test_missing_judge_stops_before_the_model_loads(demo_dir, tmp_path, capsys):
    data = subset(demo_dir, "all-types")
    qwen, caption = dead_url(), dead_url()
    with pytest.raises(SystemExit) as exc:
        # the model path does not exist: reaching the model would fail differently
        main(entry_args(str(tmp_path / "no-model"), data, tmp_path / "out",
                        "--qwen_judge_url", qwen, "--caption_judge_url", caption, "--judge_ready_timeout", "1"))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Qwen2.5 judge" in err and qwen in err and "python src/qwen25_judge_service.py" in err
    assert "caption judge" in err and caption in err and "python src/gpt35_judge_service.py" in err
    assert "1 DarkEventInfer, 1 MixVidQA rows" in err and "1 caption rows" in err


def test_bad_data_is_reported_before_anything_else(demo_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "q", "solution": "<answer>A</answer>", "problem_type": "MCQA",
                               "video": "missing.mp4"}) + "\n" + "{not json\n")
    with pytest.raises(SystemExit) as exc:
        main(entry_args(str(tmp_path / "no-model"), str(bad), tmp_path / "out", "--check_judges", "false"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err  # the rows, not a traceback before them
    assert err.lstrip().startswith("ERROR: ") and "line 1" in err and "line 2" in err


def test_too_small_dataset_is_refused(demo_dir, tmp_path, capsys):
    data = subset(demo_dir, "two-rows", types=(MCQA,), per_type=2)  # one generation batch takes 4 prompts
    with pytest.raises(SystemExit):
        main(entry_args(str(tmp_path / "no-model"), data, tmp_path / "out"))
    assert "2 rows but one generation batch takes 4 distinct prompts" in capsys.readouterr().err


def test_vllm_server_mode_is_refused_by_the_entry(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(entry_args(str(tmp_path / "m"), str(tmp_path / "d.jsonl"), tmp_path / "o",
                        "--use_vllm", "true", "--vllm_mode", "server"))
    assert "cannot carry video" in capsys.readouterr().err


# --- training with real judges -----------------------------------------------------------------------------
def test_all_four_problem_types_in_one_batch_with_real_judges(tiny_model, demo_dir, judges, tmp_path):
    data = subset(demo_dir, "all-types")  # 4 rows, one per type: every step's batch holds all four
    out = tmp_path / "out"
    script, training, model = parse(entry_args(
        tiny_model, data, out, "--qwen_judge_url", judges["qwen"], "--caption_judge_url", judges["caption"],
        "--max_steps", "2", "--save_steps", "2", "--report_to", "tensorboard", "--log_completions", "true",
    ))
    trainer = run(script, training, model)
    history = trainer.state.log_history
    assert trainer.state.global_step == 2
    first = history[0]
    for t in TYPES:
        assert f"rewards/{t}/format" in first, f"{t} missing from the first step's batch"
    assert sum(h.get("judge/calls", 0) for h in history) > 0, "the judges were asked"
    assert sum(h.get("judge/requests", 0) for h in history) > 0
    assert "rewards/format/mean" in first and "rewards/versavid_reward/mean" in first
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert list(out.glob("runs/*/events.out.tfevents.*")), "TensorBoard logs"
    assert list((out / "completions").glob("*.parquet")), "completion samples"
    info = json.loads((out / "versavid_run.json").read_text())
    assert info["video_config"]["nframes"] == 4 and info["reward_config"]["on_judge_error"] == "skip"


def test_dead_judge_raise_stops_and_skip_counts(tiny_model, demo_dir, tmp_path):
    from versavid_r1.rewards import JudgeError

    data = subset(demo_dir, "mcqa-dei", types=(MCQA, DARK_EVENT_INFER), per_type=2)
    url = dead_url()
    common = ["--qwen_judge_url", url, "--check_judges", "false", "--judge_retries", "0", "--save_strategy", "no"]
    script, training, model = parse(entry_args(tiny_model, data, tmp_path / "a", *common,
                                               "--on_judge_error", "raise", "--max_steps", "3"))
    with pytest.raises(JudgeError) as exc:
        run(script, training, model)
    assert url in str(exc.value)

    script, training, model = parse(entry_args(tiny_model, data, tmp_path / "b", *common,
                                               "--on_judge_error", "skip", "--max_steps", "2"))
    trainer = run(script, training, model)
    history = trainer.state.log_history
    assert trainer.state.global_step == 2
    assert sum(h.get("judge/skipped", 0) for h in history) > 0
    assert sum(h.get("judge/failures", 0) for h in history) > 0


# --- several processes, DeepSpeed, kill and resume (subprocesses) ----------------------------------------
TRAIN_RESUME = ROOT / "tests" / "ds_train_resume.py"  # trains, then resumes at the checkpoint's step


def assert_resume_restored(out: Path, base_model: str) -> None:
    """The model saved after resuming at checkpoint-2's own step (no step left to train) equals checkpoint-2
    tensor by tensor and differs from the base model: all three read back from disk with safetensors."""
    from safetensors.torch import load_file

    resumed = load_file(str(out / "model.safetensors"))
    saved = load_file(str(out / "checkpoint-2" / "model.safetensors"))
    base = load_file(str(Path(base_model) / "model.safetensors"))
    assert resumed.keys() == saved.keys() == base.keys()
    assert [k for k in saved if not torch.equal(resumed[k], saved[k])] == [], "resume did not restore these"
    assert [k for k in base if torch.equal(resumed[k].float(), base[k].float())] == [], "still the base weights"


@pytest.mark.slow
def test_torchrun_two_processes_gloo_train_and_resume(tiny_model, demo_dir, tmp_path):
    data = subset(demo_dir, "mcqa", types=(MCQA,), per_type=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TRAIN_RESUME), str(tmp_path / "rope.json"), "--",
           *entry_args(tiny_model, data, out, "--max_steps", "2", "--per_device_train_batch_size", "4",
                       "--save_steps", "2", "--learning_rate", "0.01")]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads((out / "versavid_run.json").read_text())
    assert info["world_size"] == 2
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert_resume_restored(out, tiny_model)


@pytest.mark.slow
def test_deepspeed_zero3_on_cpu_trains_the_vision_tower_and_resumes(tiny_model, demo_dir, tmp_path):
    from safetensors.torch import load_file

    data = subset(demo_dir, "mcqa", types=(MCQA,), per_type=4)
    out = tmp_path / "out"
    cmd = [sys.executable, str(TRAIN_RESUME), str(tmp_path / "rope.json"), "--", *entry_args(
        tiny_model, data, out, "--deepspeed", str(ROOT / "configs/deepspeed/zero3.json"), "--use_cpu", "false",
        "--max_steps", "2", "--save_steps", "2", "--beta", "0.04", "--learning_rate", "0.05")]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(DS_ACCELERATOR="cpu"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "checkpoint-2" / "global_step2").is_dir(), "a DeepSpeed checkpoint"
    before = load_file(str(Path(tiny_model) / "model.safetensors"))
    after = load_file(str(out / "checkpoint-2" / "model.safetensors"))
    visual = [k for k in before if "visual" in k]
    assert visual and any(not (before[k] == after[k]).all() for k in visual), "vision tower unchanged"
    assert_resume_restored(out, tiny_model)


@pytest.mark.slow
def test_deepspeed_zero2_bf16_resumes_and_generates_with_fp32_seconds_per_grid(tiny_model, demo_dir, tmp_path):
    """ZeRO-2 in bf16 with TRL's generate path: the model gets the same fp32 `second_per_grid_ts` in generate
    as in the loss (Trainer would cast it to bf16: 1.4583 s per grid becomes 1.4609), and the resume is exact."""
    rows = [json.loads(line) for line in (demo_dir / "demo.jsonl").read_text().splitlines() if line.strip()]
    data = tmp_path / "mcqa.jsonl"  # 6 frames of the first 4.3 s: 35 frames at 8 fps, 1.4583 s per grid
    mcqa = [answer_is_a(r) for r in rows if r["problem_type"] == MCQA][:4]
    data.write_text("".join(json.dumps({**r, "video": str(demo_dir / r["video"]), "video_end": 4.3}) + "\n"
                            for r in mcqa))
    out, record = tmp_path / "out", tmp_path / "rope.json"
    cmd = [sys.executable, str(TRAIN_RESUME), str(record), "--", *entry_args(
        tiny_model, str(data), out, "--deepspeed", str(ROOT / "configs/deepspeed/zero2.json"), "--use_cpu", "true",
        "--bf16", "true", "--attn_implementation", bf16_attention(), "--share_prompt_prefill", "false",
        "--nframes", "6", "--max_steps", "2",
        "--save_steps", "2", "--per_device_train_batch_size", "4", "--learning_rate", "0.01")]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(DS_ACCELERATOR="cpu"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "checkpoint-2" / "global_step2").is_dir(), "a DeepSpeed checkpoint"
    assert_resume_restored(out, tiny_model)
    calls = json.loads(record.read_text())
    generate = [c for c in calls if not c["logprob_forward"]]
    loss = [c for c in calls if c["logprob_forward"]]
    assert generate and loss
    expected = float(torch.tensor(2 * 35 / 8 / 6, dtype=torch.float32))
    assert {c["dtype"] for c in calls} == {"torch.float32"}
    assert {v for c in calls for v in c["values"]} == {expected}


@pytest.mark.slow
def test_interrupted_run_says_so_and_resumes_to_the_planned_step_count(tiny_model, demo_dir, tmp_path):
    """Ctrl-C in a terminal running the launcher (SIGINT to its whole process group: bash, torchrun, the
    training, tee): an interruption reported with its step and how to resume, kept in train.log; then the
    resumed run ends at the planned step count."""
    data = subset(demo_dir, "mcqa", types=(MCQA,), per_type=4)
    out = tmp_path / "out"
    steps = ["--max_steps", "6", "--save_steps", "2", "--save_total_limit", "5"]
    # the resume below runs with SMOKE's settings: the same trained parameters (the optimizer state must fit)
    flags = [*steps, "--log_completions", "false", "--report_to", "none", "--freeze_vision_tower", "false"]
    env = subprocess_env(SKIP_INSTALL="1", MODEL_PATH=tiny_model, DATA_PATH=data, CONFIG=str(TINY_CONFIG),
                         OUTPUT_DIR=str(out), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    first = subprocess.Popen(["bash", str(ROOT / "run_qwen25vl_train.sh"), "--", *flags], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while not (out / "checkpoint-2" / COMPLETE_MARKER).is_file():
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGINT)  # Ctrl-C
        stdout, stderr = first.communicate(timeout=300)  # hang detector; loaded: slow last step
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    said = re.compile(r"interrupted at step [2-5]; last complete checkpoint: .*checkpoint-[24]\. Resume with the "
                      r"same command plus --resume_from_checkpoint true")
    assert first.returncode == 130, stderr[-3000:]
    assert said.search((out / "train.log").read_text()), "the training's own line is in the log"
    last = stderr.strip().splitlines()[-2:]
    assert said.search(last[0]) and last[0].startswith("[run] "), stderr[-2000:]
    assert f"OUTPUT_DIR={out} bash run_qwen25vl_train.sh" in last[1] and "--resume_from_checkpoint true" in last[1]
    assert not (out / "checkpoint-6").exists(), "the first run must stop before the end"

    cmd = [sys.executable, "-m", "versavid_r1.grpo", *entry_args(tiny_model, data, out, *steps)]
    second = subprocess.run(cmd + ["--resume_from_checkpoint", "true"], cwd=ROOT, env=subprocess_env(),
                            capture_output=True, text=True, timeout=240)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    assert "resuming from" in log and "checkpoint-" in log
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["max_steps"] == 6
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert sorted(set(steps)) == [1, 2, 3, 4, 5, 6]
