"""Difficulty filtering with the real parts: the tiny Qwen2.5-VL samples through the evaluation's batched
transformers generator, the training reward code scores (MCQA by rule; DarkEventInfer and caption through
a judge service on 127.0.0.1), and the decisions, the resume and the rescoring are checked against an
independent recomputation from the saved completions.

The policy is steered (the project's `steering_sequence_bias`, as in the CPU demo) towards one fixed answer,
so the ground truth of every decision is known: a row whose answer is that text is solved by every sample."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from judge_stub_server import StubJudge
from versavid_r1 import prompts
from versavid_r1.answer import extract_answer
from versavid_r1.data import load_rows, make_conversation
from versavid_r1.data.difficulty import FilterConfig, decide
from versavid_r1.data.difficulty_run import main as filter_main, run_filter
from versavid_r1.eval.config import EvalSetupError
from versavid_r1.eval.generation import HFGenerator
from versavid_r1.eval.models import load_eval_model
from versavid_r1.eval.scoring import f1_score
from versavid_r1.rewards import format_ok, multiple_choice_reward
from versavid_r1.trainer.video_inputs import steering_sequence_bias

STEER = "<think> I watch the video. </think><answer> {} </answer>"


def _subset(demo_jsonl: Path, ids: list[str], name: str, solutions: dict[str, str] | None = None) -> Path:
    """Rows of the demo file (optionally with other ground truths), written next to it (relative video paths
    stay valid)."""
    rows = {r["id"]: r for r in map(json.loads, demo_jsonl.read_text().splitlines())}
    for rid, answer in (solutions or {}).items():
        rows[rid]["solution"] = f"<answer>{answer}</answer>"
    path = demo_jsonl.parent / name
    path.write_text("".join(json.dumps(rows[i]) + "\n" for i in ids))
    return path


def _cfg(tiny_dirs, video_cfg, data: Path, out: Path, **extra) -> FilterConfig:
    settings = dict(model=tiny_dirs["qwen2_5_vl"], data_path=str(data), out=str(out), num_samples=2,
                    nframes=video_cfg.nframes, min_pixels=video_cfg.min_pixels, max_pixels=video_cfg.max_pixels,
                    max_new_tokens=24, batch_size=2, dtype="float32", device="cpu", seed=3)
    return FilterConfig(**{**settings, **extra})


def _steered(cfg: FilterConfig, answer: str, bias: float = 100.0) -> HFGenerator:
    model, processor = load_eval_model(cfg)
    gen = HFGenerator(model, processor, cfg)
    gen.generation_config.sequence_bias = steering_sequence_bias(
        processor, STEER.format(answer), bias, processor.tokenizer.eos_token_id)
    return gen


def _records(out_dir: Path, name: str) -> dict[int, dict]:
    return {r["line"]: r for r in map(json.loads, (out_dir / name).read_text().splitlines())}


def test_mcqa_rows_all_samples_solve_are_dropped_resumed_and_rescored(tiny_dirs, video_cfg, demo_jsonl, tmp_path,
                                                                       capsys):
    data = _subset(demo_jsonl, ["demo-0000", "demo-0004"], "difficulty-mcqa.jsonl")  # answers A and B
    out = tmp_path / "kept" / "mcqa.jsonl"
    cfg = _cfg(tiny_dirs, video_cfg, data, out)
    gen = _steered(cfg, "A")
    report = run_filter(cfg, generator=gen)

    # Oracle: recompute every sample's training reward from the saved completions.
    gens, recs = _records(Path(cfg.output_dir), "generations.jsonl"), _records(Path(cfg.output_dir), "samples.jsonl")
    solutions = {1: "<answer>A</answer>", 2: "<answer>B</answer>"}
    for line, solution in solutions.items():
        comps = gens[line]["completions"]
        assert len(comps) == 2 and all(extract_answer(c) == "A" for c in comps)
        rewards = [multiple_choice_reward(c, solution) if format_ok(c) else 0.0 for c in comps]
        assert [s["reward"] for s in recs[line]["samples"]] == rewards
        assert recs[line]["pass_rate"] == sum(r == 1.0 for r in rewards) / 2
    assert (recs[1]["pass_rate"], recs[2]["pass_rate"]) == (1.0, 0.0)
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in kept] == ["demo-0004"]
    assert report["per_type"]["MCQA"] == {"rows": 2, "kept": 1, "not_scored": 0, "dropped_solved": 1,
                                          "dropped_unsolved": 0, "dropped_flat_f1": 0}
    assert report["run"]["generated"] == 2 and report["run"]["generate_calls"] == 1
    # The kept rows load from their new folder: relative video paths were re-expressed from it.
    assert kept[0]["video"] == os.path.relpath(data.parent / "videos/demo-0004.mp4", out.parent)
    assert Path(load_rows(out, video_cfg)[0]["video_paths"][0]) == (data.parent / "videos/demo-0004.mp4").resolve()

    # A rerun with the same settings generates nothing; other sampling settings are refused.
    again = run_filter(_cfg(tiny_dirs, video_cfg, data, out), generator=gen)
    assert again["run"] == {"rows": 2, "finished_earlier": 2, "scored_from_kept": 0, "generated": 0,
                            "generate_calls": 0}
    with pytest.raises(EvalSetupError, match="num_samples: 2 -> 3"):
        run_filter(_cfg(tiny_dirs, video_cfg, data, out, num_samples=3), generator=gen)

    # Another threshold needs no generation: the saved pass rates decide again.
    assert filter_main(["--data", str(data), "--out", str(out), "--model", tiny_dirs["qwen2_5_vl"], "--num_samples",
                        "2", "--nframes", str(video_cfg.nframes), "--min_pixels", str(video_cfg.min_pixels),
                        "--max_pixels", str(video_cfg.max_pixels), "--max_new_tokens", "24", "--batch_size", "2",
                        "--dtype", "float32", "--device", "cpu", "--seed", "3", "--rescore_only", "true",
                        "--min_pass_rate", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "| MCQA | 2 | 0 | 1 | 1 | 0 | 0 |" in printed
    assert out.read_text() == ""


def test_sampling_ignores_the_checkpoints_own_generation_settings(tiny_dirs, video_cfg, demo_jsonl, tmp_path):
    """Qwen2.5-VL-Instruct ships top_k 1 in generation_config.json; transformers fills unset settings from it, so
    without the training sampler pinned every sample would be the argmax answer."""
    data = _subset(demo_jsonl, ["demo-0000"], "difficulty-one.jsonl")
    cfg = _cfg(tiny_dirs, video_cfg, data, tmp_path / "o.jsonl", num_samples=4)
    model, processor = load_eval_model(cfg)
    model.generation_config.top_k = 1
    model.generation_config.repetition_penalty = 1.05
    gen = HFGenerator(model, processor, cfg)
    assert (gen.generation_config.top_k, gen.generation_config.repetition_penalty) == (0, 1.0)
    run_filter(cfg, generator=gen)
    (rec,) = _records(Path(cfg.output_dir), "generations.jsonl").values()
    assert len(set(rec["completions"])) == 4


def test_judged_rows_are_scored_through_a_judge_service(tiny_dirs, video_cfg, demo_jsonl, tmp_path):
    answer = "blue"  # the (short) ground truth of the first DarkEventInfer row; the second's is another event
    data = _subset(demo_jsonl, ["demo-0001", "demo-0005", "demo-0003"], "difficulty-judged.jsonl",
                   solutions={"demo-0001": answer})
    out = tmp_path / "judged.jsonl"
    with StubJudge("qwen") as qwen, StubJudge("caption", caption_scores={answer: (0.5, 0.25)}) as caption:
        cfg = _cfg(tiny_dirs, video_cfg, data, out, qwen_judge_url=qwen.url, caption_judge_url=caption.url)
        report = run_filter(cfg, generator=_steered(cfg, answer))
    # The answers went to the services: two DarkEventInfer rows x 2 samples (one call per distinct item: the
    # client caches repeats), the caption row's answer to the caption judge.
    assert {(i.problem_type, extract_answer(i.content)) for i in qwen.items} == {("DarkEventInfer", answer)}
    assert {extract_answer(i.content) for i in caption.items} == {answer}
    recs = _records(Path(cfg.output_dir), "samples.jsonl")
    assert [s["task_reward"] for s in recs[1]["samples"]] == [2.0, 2.0] and recs[1]["pass_rate"] == 1.0
    assert [s["task_reward"] for s in recs[2]["samples"]] == [0.0, 0.0] and recs[2]["pass_rate"] == 0.0
    assert [s["f1"] for s in recs[3]["samples"]] == [pytest.approx(f1_score(0.5, 0.25))] * 2
    assert recs[3]["f1_spread"] == 0.0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["demo-0005"]
    assert report["per_type"]["caption"]["dropped_flat_f1"] == 1
    assert report["per_type"]["DarkEventInfer"]["dropped_solved"] == 1


def test_decision_thresholds():
    t = {"max_pass_rate": 1.0, "min_pass_rate": 0.0, "min_f1_spread": 0.2}
    mcqa = {"status": "ok", "problem_type": "MCQA", "samples": [{}] * 5}
    assert decide({**mcqa, "solved": 5}, t) == "dropped: solved"
    assert decide({**mcqa, "solved": 4}, t) == "kept"
    assert decide({**mcqa, "solved": 0}, t) == "kept"
    assert decide({**mcqa, "solved": 4}, {**t, "max_pass_rate": 0.8}) == "dropped: solved"
    assert decide({**mcqa, "solved": 0}, {**t, "min_pass_rate": 0.2}) == "dropped: unsolved"
    cap = {"status": "ok", "problem_type": "caption", "samples": [{}] * 5}
    assert decide({**cap, "f1_spread": 0.19}, t) == "dropped: flat F1"
    assert decide({**cap, "f1_spread": 0.2}, t) == "kept"
    assert decide({"status": "judge_error", "problem_type": "caption"}, t) == "kept: not scored"


@pytest.mark.parametrize("config", ["configs/grpo_paper_8xA800.yaml", "configs/grpo_1gpu.yaml", "authors"])
def test_training_config_gives_the_training_prompt_and_sampler(tiny_dirs, demo_jsonl, tmp_path, config):
    """`--training_config`: the prompt builder, preset, option-letter line, video options and sampler of the
    training run (issue 20, item 3). Oracle: the training side built the way TrlParser builds it from the YAML
    (ScriptArguments for the prompt and video, GRPOConfig for the sampler)."""
    import dataclasses

    import yaml
    from trl import GRPOConfig

    from versavid_r1.data.difficulty_run import _prepare, load_items
    from versavid_r1.eval.generation import sampling_settings
    from versavid_r1.trainer.args import ScriptArguments

    root = Path(__file__).resolve().parents[1]
    if config == "authors":  # a training file of its own: the authors' prompt, other sampler and frames
        path = tmp_path / "train.yaml"
        path.write_text("policy_prompt: authors\nnframes: 4\nmax_pixels: 6272\nmin_pixels: 3136\ntemperature: 0.7\n"
                        "top_p: 0.9\nmax_completion_length: 64\nbf16: true\n")
    else:
        path = root / config
    data = yaml.safe_load(path.read_text())
    names = {f.name for f in dataclasses.fields(ScriptArguments)}
    script = ScriptArguments(**{k: v for k, v in data.items() if k in names})
    sampler_keys = ("temperature", "top_k", "top_p", "repetition_penalty", "max_completion_length")
    grpo = GRPOConfig(output_dir=str(tmp_path / "unused"), use_cpu=True,
                      **{k: data[k] for k in sampler_keys if k in data})

    cfg = FilterConfig(model=tiny_dirs["qwen2_5_vl"], data_path=str(demo_jsonl), out=str(tmp_path / "o.jsonl"),
                       training_config=str(path), nframes=script.nframes, min_pixels=script.min_pixels,
                       max_pixels=script.max_pixels)
    assert sampling_settings(cfg) == {"temperature": grpo.temperature, "top_p": grpo.top_p, "top_k": grpo.top_k,
                                      "repetition_penalty": grpo.repetition_penalty}
    assert cfg.max_new_tokens == grpo.max_completion_length
    assert cfg.video_config() == script.video_config() and cfg.decoy_check == script.decoy_check
    if config != "authors":
        assert grpo.top_k == 50, "both GPU configs sample with the paper's top-k"

    class Recorder:  # the generator's side of `_prepare`: what it is asked to generate from
        def prepare(self, messages, clips):
            return messages

    items, _ = load_items(cfg)
    mcqa = next(it for it in items if it["row"]["problem_type"] == "MCQA")
    ((_, _, messages),), errors = _prepare([mcqa], Recorder(), cfg, cfg.video_config())
    assert not errors
    training = make_conversation(mcqa["row"], script.video_config(), prompt=script.policy_prompt_config())
    assert messages == training  # the trainer's conversation builder (grpo.build_trainer)
    text = messages[0]["content"][1]["text"]
    assert (prompts.MCQA_SUFFIX in text) is (config != "authors"), "the option-letter line as the preset says"

    with pytest.raises(ValueError, match="top_k=5 conflicts with training_config"):
        FilterConfig(model="m", data_path=str(demo_jsonl), out="o.jsonl", training_config=str(path), top_k=5)
