"""Ground truths already inside <answer> tags: the builders wrap them once, and validation refuses nested,
repeated or unbalanced answer tags with the row's line number (the judge would otherwise get
`<answer>yellow` as the ground truth)."""
from __future__ import annotations

import json

import pytest

from versavid_r1.answer import extract_answer
from versavid_r1.data import validate_file
from versavid_r1.data.builders import BuildError, build_mixvidqa_rows, load_event_annotations, read_records
from versavid_r1.data.cli import build_dei_main, build_mix_main


def _pair(answer: str) -> dict:
    return {"clip_a": "a", "clip_b": "b", "question": "Which colour?", "answer": answer, "target": "a"}


def test_mixvidqa_builder_wraps_a_tagged_answer_once(tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text(json.dumps(_pair("<answer>yellow</answer>")) + "\n" + json.dumps(_pair(" <answer> red </answer>"))
                   + "\n" + json.dumps(_pair("green")) + "\n")
    out = tmp_path / "mix.jsonl"
    assert build_mix_main(["--input", str(src), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["solution"] for r in rows] == ["<answer>yellow</answer>", "<answer>red</answer>",
                                             "<answer>green</answer>"]
    assert [extract_answer(r["solution"]) for r in rows] == ["yellow", "red", "green"]
    assert validate_file(out, check_videos=False).ok


@pytest.mark.parametrize("answer, kind", [
    ("<answer><answer>yellow</answer></answer>", "nested"),
    ("<answer>yellow</answer><answer>red</answer>", "repeated"),
    ("<answer>yellow", "unbalanced"),
    ("the answer is <answer>yellow</answer>", "text outside"),
    ("<answer> </answer>", "empty"),
])
def test_mixvidqa_builder_refuses_bad_tags_naming_the_line(tmp_path, capsys, answer, kind):
    src = tmp_path / "pairs.jsonl"
    src.write_text(json.dumps(_pair("blue")) + "\n" + json.dumps(_pair(answer)) + "\n")
    with pytest.raises(BuildError, match=f"line 2: answer: .*{kind}"):
        build_mixvidqa_rows(read_records(src))
    assert build_mix_main(["--input", str(src), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "line 2" in capsys.readouterr().err


def test_dei_builder_wraps_a_tagged_caption_once_and_refuses_nested(tmp_path):
    ann = tmp_path / "events.jsonl"
    segments = [{"start": 1, "end": 2, "caption": "a man enters"},
                {"start": 4, "end": 6, "caption": "<answer>he opens the box</answer>"},
                {"start": 8, "end": 9, "caption": "he leaves"}]
    ann.write_text(json.dumps({"video_id": "x", "duration": 12, "segments": segments}) + "\n")
    out = tmp_path / "dei.jsonl"
    assert build_dei_main(["--annotations", str(ann), "--out", str(out)]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["solution"] == "<answer>he opens the box</answer>"

    segments[1]["caption"] = "<answer><answer>he opens the box</answer></answer>"
    ann.write_text(json.dumps({"video_id": "x", "duration": 12, "segments": segments}) + "\n")
    with pytest.raises(BuildError, match="line 1: .*nested answer tags"):
        load_event_annotations(ann)


@pytest.mark.parametrize("solution, kind", [
    ("<answer><answer>yellow</answer></answer>", "nested"),  # what the old MixVidQA builder wrote
    ("<answer>yellow</answer><answer>red</answer>", "repeated"),
    ("<answer>yellow</answer></answer>", "repeated"),
    ("<answer><answer>yellow</answer>", "nested"),
])
def test_validation_rejects_nested_or_repeated_answer_tags_with_the_line(tmp_path, solution, kind):
    good = {"problem": "Which colour?", "solution": "<answer>blue</answer>", "problem_type": "MixVidQA",
            "video": ["a.mp4", "b.mp4"]}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "solution": solution}) + "\n")
    report = validate_file(path, check_videos=False)
    assert [(e.line, e.field) for e in report.errors] == [(2, "solution")]
    assert kind in report.errors[0].message
    assert len(report.rows) == 1
