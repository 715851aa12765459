"""Evaluation building blocks: row formats, converters on small fixtures, the kill-safe record file, the
config (YAML + flags, the shipped paper defaults) and LoRA adapter checkpoints."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from versavid_r1.data import VideoConfig
from versavid_r1.eval import RowFormatError, load_eval_items, mcqa_to_internal, parse_eval_args
from versavid_r1.eval.convert_cli import dream1k_main, mvbench_main
from versavid_r1.eval.formats import detect_format
from versavid_r1.eval.store import RecordFile, RecordFileError
from versavid_r1.video_writer import solid_color_frames, write_mp4

ROOT = Path(__file__).resolve().parents[1]


# --- mcqa rows -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options,answer,letter", [
    (["runs", "sits", "jumps"], "B", "B"),
    (["runs", "sits", "jumps"], "(c)", "C"),
    (["runs", "sits", "jumps"], "B. sits", "B"),
    (["runs", "sits", "jumps"], "jumps", "C"),
    (["A. runs", "B. sits", "C. jumps"], "sits", "B"),
    (["(A) runs", "(B) sits"], "A", "A"),
    ({"A": "runs", "B": "sits"}, "B", "B"),
])
def test_mcqa_row_to_internal(options, answer, letter):
    row = {"id": "q1", "video": "v.mp4", "question": " What does the man do? ", "options": options,
           "answer": answer, "category": "Action", "nframes": 8}
    out = mcqa_to_internal(row)
    assert out["problem_type"] == "MCQA" and out["solution"] == f"<answer>{letter}</answer>"
    texts = ["runs", "sits", "jumps"][: len(options)]
    assert out["problem"] == "What does the man do?\nOptions:\n" + "\n".join(
        f"{'ABC'[k]}. {t}" for k, t in enumerate(texts))
    assert (out["id"], out["video"], out["category"], out["nframes"]) == ("q1", "v.mp4", "Action", 8)
    assert not {"question", "options", "answer"} & set(out)


@pytest.mark.parametrize("change,field", [
    ({"answer": "Z"}, "answer"),
    ({"answer": "D"}, "answer"),
    ({"answer": "swims"}, "answer"),
    ({"options": ["only one"]}, "options"),
    ({"options": [str(i) for i in range(8)]}, "options"),
    ({"options": ["a", ""]}, "options[1]"),
    ({"question": ""}, "question"),
    ({"question": None}, "question"),
])
def test_mcqa_row_errors_name_the_field(change, field):
    row = {"video": "v.mp4", "question": "Q?", "options": ["runs", "sits", "jumps"], "answer": "B", **change}
    with pytest.raises(RowFormatError, match="^" + re.escape(field)):
        mcqa_to_internal(row)


def test_detect_format():
    assert detect_format({"question": "q", "options": [], "answer": "A"}) == "mcqa"
    assert detect_format({"problem": "q", "solution": "<answer>x</answer>"}) == "internal"
    with pytest.raises(RowFormatError, match="neither"):
        detect_format({"video": "v.mp4"})


def test_load_eval_items_keeps_every_line(tmp_path):
    video = tmp_path / "v.mp4"
    write_mp4(video, solid_color_frames((10, 20, 30), 4, 56, 56), fps=4)
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join([
        json.dumps({"id": "a", "video": "v.mp4", "question": "Q?", "options": ["x", "y"], "answer": "A"}),
        "",
        json.dumps({"video": "v.mp4", "problem": "Describe.", "solution": "<answer>text</answer>",
                    "problem_type": "caption", "category": "Movie"}),
        json.dumps({"id": "c", "video": "v.mp4", "problem": "Q", "solution": "no tags", "problem_type": "MCQA"}),
        "[1, 2]",
    ]) + "\n")
    items = load_eval_items(data, "auto", VideoConfig())
    assert [(it.id, it.line, it.ok) for it in items] == [("a", 1, True), ("line-3", 3, True), ("c", 4, False),
                                                          ("line-5", 5, False)]
    assert items[0].row["video_paths"] == [str(video)] and items[0].problem_type == "MCQA"
    assert items[1].category == "Movie" and items[1].problem_type == "caption"
    assert "solution" in items[2].error and "<answer>" in items[2].error
    assert "expected a JSON object" in items[3].error
    # Forcing the mcqa format on an internal row is a named error, not a crash.
    forced = load_eval_items(data, "mcqa", VideoConfig())
    assert forced[1].error == "question: missing field"


# --- record file -----------------------------------------------------------------------------------------
def test_record_file_latest_wins_and_torn_tail_is_repaired(tmp_path):
    f = RecordFile(tmp_path / "s.jsonl")
    assert f.load() == {}
    assert f.append([{"id": "a", "v": 1}, {"id": "b", "v": 1}]) == 2
    f.append([{"id": "a", "v": 2}])
    with open(f.path, "a") as fh:
        fh.write('{"id": "c", "v": ')  # a write cut by a kill
    assert f.load() == {"a": {"id": "a", "v": 2}, "b": {"id": "b", "v": 1}}
    f.append([{"id": "c", "v": 3}])
    assert f.load()["c"] == {"id": "c", "v": 3}
    assert all(json.loads(x) for x in f.path.read_text().splitlines())

    f.path.write_text('{"id": "a"}\n{broken\n{"id": "b"}\n')
    with pytest.raises(RecordFileError, match="line 2"):
        f.load()


# --- converters ------------------------------------------------------------------------------------------
def _video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, solid_color_frames((200, 10, 10), 4, 56, 56), fps=4)


def test_convert_mvbench(tmp_path, capsys):
    vids = tmp_path / "MVBench" / "video"
    _video(vids / "star" / "Charades_v1_480" / "AB12.mp4")
    _video(vids / "clevrer" / "video_validation" / "video_1.mp4")
    jdir = tmp_path / "MVBench" / "json"
    jdir.mkdir(parents=True)
    (jdir / "action_sequence.json").write_text(json.dumps([
        {"video": "AB12.mp4", "question": "What did the person do first?", "candidates": ["Sat.", "Ran.", "Ate."],
         "answer": "Ran.", "start": 1.5, "end": 9.0},
        {"video": "gone.mp4", "question": "Q?", "candidates": ["a", "b"], "answer": "a"},
        {"video": "AB12.mp4", "question": "Q?", "candidates": ["a", "b"], "answer": "c"},
    ]))
    (jdir / "moving_direction.json").write_text(json.dumps([
        {"video": "video_1.mp4", "question": "Where does the cube go?", "candidates": ["left", "right"],
         "answer": "right"},
    ]))
    out = tmp_path / "mvbench.jsonl"
    assert mvbench_main(["--json", str(jdir), "--video_dir", str(vids), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 rows written, 1 left out, 1 written with a missing video" in printed
    assert "gone.mp4 not found" in printed and "'c' is not exactly one of the candidates" in printed
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0] == {"id": "action_sequence/0", "video": str(vids / "star/Charades_v1_480/AB12.mp4"),
                       "question": "What did the person do first?", "options": ["Sat.", "Ran.", "Ate."],
                       "answer": "B", "category": "Action Sequence", "video_start": 1.5, "video_end": 9.0}
    assert rows[2]["category"] == "Moving Direction" and rows[2]["answer"] == "B"

    # The converted file is read by the evaluation as MCQA rows; the missing video is an item, not a crash.
    items = load_eval_items(out, "mcqa", VideoConfig())
    assert [it.ok for it in items] == [True, True, True]
    assert items[0].row["solution"] == "<answer>B</answer>" and "B. Ran." in items[0].row["problem"]

    # A task MVBench does not have, same file name in two places: ambiguous unless the task's folder is named.
    _video(vids / "other" / "AB12.mp4")
    custom = jdir / "my_task.json"
    custom.write_text((jdir / "action_sequence.json").read_text())
    assert mvbench_main(["--json", str(custom), "--video_dir", str(vids), "--out", str(out)]) == 1
    assert "--task_dir" in capsys.readouterr().err
    assert mvbench_main(["--json", str(custom), "--video_dir", str(vids), "--task_dir",
                         "my_task=star/Charades_v1_480", "--drop_missing", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1


def test_convert_dream1k_both_layouts(tmp_path, capsys):
    vids = tmp_path / "videos"
    _video(vids / "1.mp4")
    _video(vids / "2.mp4")
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps([
        {"idx": 1, "video_file": "video/1.mp4", "description": "A man opens a door. He walks in.",
         "events": ["A man opens a door.", "The man walks in."], "source": "live_action"},
        {"idx": 3, "video_file": "video/3.mp4", "description": "A dog runs."},
        {"idx": 4},
    ]))
    out = tmp_path / "dream.jsonl"
    assert dream1k_main(["--annotations", str(meta), "--video_dir", str(vids), "--out", str(out)]) == 0
    assert "2 rows written, 1 left out, 1 written with a missing video" in capsys.readouterr().out
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0] == {"id": "dream1k/1", "problem": "Describe the video in detail.",
                       "solution": "<answer>A man opens a door. He walks in.</answer>", "problem_type": "caption",
                       "video": str(vids / "1.mp4"), "events": ["A man opens a door.", "The man walks in."],
                       "category": "live_action"}

    tarsier = tmp_path / "DREAM-1k.jsonl"
    tarsier.write_text(json.dumps({
        "idx": 2, "dataset": "DREAM/movie_animation", "video_file": "<placeholder>",
        "text": {"prompt": "<video>\nDescribe the video in detail.", "response": "A cat jumps."},
        "extra_info": {"events": ["A cat jumps."]}}) + "\n")
    assert dream1k_main(["--annotations", str(tarsier), "--video_dir", str(vids), "--question", "What happens?",
                         "--out", str(out)]) == 0
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert (row["video"], row["category"], row["events"], row["problem"]) == (
        str(vids / "2.mp4"), "movie_animation", ["A cat jumps."], "What happens?")
    (item,) = load_eval_items(out, "internal", VideoConfig())
    assert item.ok and item.problem_type == "caption" and item.category == "movie_animation"


# --- config ----------------------------------------------------------------------------------------------
def test_shipped_configs_carry_the_paper_settings():
    qa = {name: parse_eval_args(["--config", str(ROOT / "configs/eval" / name), "--model", "m"])
          for name in ("mcqa.yaml", "dark_event_infer_test.yaml", "mixvidqa_test.yaml")}
    for cfg in qa.values():
        v = cfg.video_config()
        assert (v.fps, v.max_frames, cfg.max_new_tokens, cfg.do_sample, cfg.prompt_mode) == (1.0, 128, 2048, False,
                                                                                             "think")
        assert (v.min_pixels, v.max_pixels) == (128 * 28 * 28, 196 * 28 * 28)
    assert qa["mcqa.yaml"].data_format == "auto"  # benchmark rows and training-format rows
    cap = parse_eval_args(["--config", str(ROOT / "configs/eval/dream1k_caption.yaml"), "--model", "m"])
    v = cap.video_config()
    assert (v.fps, v.nframes, cap.max_new_tokens, cap.do_sample) == (None, 16, 2048, False)


def test_flags_override_the_yaml(tmp_path):
    yml = tmp_path / "e.yaml"
    yml.write_text("task_name: t\nbatch_size: 3\nprompt_mode: think\n")
    cfg = parse_eval_args(["--config", str(yml), "--model", "m", "--output", "o", "--limit", "5",
                           "--prompt_mode", "direct", "--segment_seconds", "1.5"])
    assert (cfg.task_name, cfg.batch_size, cfg.output_dir, cfg.max_samples, cfg.prompt_mode) == ("t", 3, "o", 5,
                                                                                                 "direct")
    assert cfg.video_config().segment_seconds == (1.5, 1.5)
    v = parse_eval_args(["--config", str(ROOT / "configs/eval/mcqa.yaml"), "--video_fps", "0", "--nframes", "8"])
    assert (v.video_config().fps, v.video_config().nframes) == (None, 8)
    yml.write_text("batch_sise: 3\n")
    with pytest.raises(ValueError, match="batch_sise"):
        parse_eval_args(["--config", str(yml)])
    with pytest.raises(ValueError, match="prompt_mode"):
        parse_eval_args(["--prompt_mode", "chatty"])
    with pytest.raises(ValueError, match="min_pixels > max_pixels"):
        parse_eval_args(["--min_pixels", "9000", "--max_pixels", "10"])


# --- LoRA adapters ---------------------------------------------------------------------------------------
def test_lora_adapter_checkpoint_is_loaded_and_merged(tmp_path):
    from peft import LoraConfig, get_peft_model

    from versavid_r1.eval.generation import HFGenerator
    from versavid_r1.eval.models import is_adapter_dir, load_eval_model, processor_source
    from versavid_r1.modeling import load_vl_model
    from versavid_r1.tiny_model import build_tiny_qwen25vl

    base = build_tiny_qwen25vl(tmp_path / "base", seed=0)
    peft_model = get_peft_model(load_vl_model(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    expected = {n.replace("base_model.model.", "").replace(".base_layer", ""): p.detach().clone()
                for n, p in peft_model.merge_and_unload().named_parameters()}
    assert is_adapter_dir(adapter) and not is_adapter_dir(base)

    cfg = parse_eval_args(["--model", str(adapter), "--device", "cpu", "--max_new_tokens", "4"])
    assert processor_source(cfg) == str(base)  # the adapter folder has no processor: the base model's
    model, processor = load_eval_model(cfg)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"  # merged, not a PeftModel
    plain = dict(load_vl_model(base).named_parameters())
    merged = dict(model.named_parameters())
    q = next(n for n in merged if n.endswith("layers.0.self_attn.q_proj.weight"))
    assert not torch.equal(merged[q], plain[q])
    assert torch.allclose(merged[q], expected[q], atol=1e-6)
    assert HFGenerator(model, processor, cfg).tokenizer is processor.tokenizer


# --- caption reference events reach the caption judge -------------------------------------------------
def test_caption_rows_send_their_reference_events_to_the_judge():
    import asyncio

    from judge_stub_server import StubJudge
    from versavid_r1.eval.scoring import score_completions
    from versavid_r1.rewards import JudgeClient

    with StubJudge("caption") as stub:
        cfg = parse_eval_args(["--caption_judge_url", stub.url])
        client = JudgeClient.from_config(cfg.reward_config())
        rows = [{"problem": "Describe.", "solution": "<answer>a dog runs</answer>", "problem_type": "caption",
                 "events": ["a dog runs", "the dog stops"]},
                {"problem": "Describe.", "solution": "<answer>a cat</answer>", "problem_type": "caption"}]
        completions = ["<think>t</think><answer>a dog runs</answer>", "<think>t</think><answer>a bird</answer>"]
        out = asyncio.run(score_completions(rows, completions, cfg, client))
        assert [o["recall"] for o in out] == [1.0, 0.0]
        sent = {item.content: item.events for item in stub.items}
        assert sent == {"<answer>a dog runs</answer>": ["a dog runs", "the dog stops"], "<answer>a bird</answer>": None}
