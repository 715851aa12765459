"""configs/eval/demo.yaml evaluates the CPU demo's model with the video settings it was trained with, and
configs/eval/mcqa.yaml reads training-format rows as well as benchmark rows (issue 18, item 5)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from versavid_r1.data.args import VideoArguments
from versavid_r1.eval import load_eval_items, parse_eval_args

ROOT = Path(__file__).resolve().parents[1]


def test_demo_eval_config_has_the_demo_training_video_and_prompt_settings():
    cfg = parse_eval_args(["--config", str(ROOT / "configs/eval/demo.yaml"), "--model", "m"])
    train = yaml.safe_load((ROOT / "configs/grpo_tiny_cpu.yaml").read_text())
    defaults = VideoArguments()
    for name in VideoArguments.__dataclass_fields__:  # every video and prompt option the demo set or left default
        if name in ("video_cache_size", "video_cache_mb", "max_frames", "min_frames"):
            continue  # no effect on what the model sees (cache; frame bounds of fps sampling, which is off)
        assert getattr(cfg, name) == train.get(name, getattr(defaults, name)), name
    assert (cfg.max_new_tokens, cfg.do_sample, cfg.dtype) == (train["max_completion_length"], False, train["dtype"])
    assert cfg.video_config().fps is None and cfg.video_config().nframes == 4


def test_mcqa_config_reads_training_rows_and_benchmark_rows(demo_jsonl, tmp_path):
    cfg = parse_eval_args(["--config", str(ROOT / "configs/eval/mcqa.yaml"), "--model", "m"])
    training = [json.loads(line) for line in Path(demo_jsonl).read_text().splitlines()]
    mcqa = next(r for r in training if r["problem_type"] == "MCQA")
    benchmark = {"id": "b1", "video": mcqa["video"], "question": "What colour is the big shape?",
                 "options": ["red", "green", "blue", "yellow"], "answer": "C"}
    mixed = Path(demo_jsonl).parent / "mixed-formats.jsonl"  # beside the videos
    mixed.write_text(json.dumps(mcqa) + "\n" + json.dumps(benchmark) + "\n")
    items = load_eval_items(mixed, cfg.data_format, cfg.video_config())
    assert [it.ok for it in items] == [True, True], [it.error for it in items]
    assert items[0].row["problem"] == mcqa["problem"] and items[0].row["solution"] == mcqa["solution"]
    assert items[1].row["solution"] == "<answer>C</answer>" and "C. blue" in items[1].row["problem"]
