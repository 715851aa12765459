"""Validation of the JSONL schema: every bad-input class is reported with its line number and field,
load_rows refuses bad files (or skips and counts with skip_invalid), the CLI exits non-zero, and rows
in the authors' released format load unchanged."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from versavid_r1.data import DataValidationError, VideoConfig, load_rows, validate_file
from versavid_r1.data.cli import validate_main
from versavid_r1.video_writer import solid_color_frames, write_mp4

REPO = Path(__file__).resolve().parents[1]
ANS = "<answer>A</answer>"


def good(ptype="MCQA", video="v/clip.mp4", **extra):
    return {"problem": "What happens?", "solution": ANS, "problem_type": ptype, "video": video, **extra}


@pytest.fixture
def data_dir(tmp_path):
    # 4 s at 8 fps (32 frames), 2 s pair partner, and a file that is not a video.
    write_mp4(tmp_path / "v" / "clip.mp4", solid_color_frames((200, 50, 50), 32, 32, 32), fps=8)
    write_mp4(tmp_path / "v" / "other.mp4", solid_color_frames((50, 50, 200), 32, 32, 32), fps=8)
    (tmp_path / "v" / "broken.mp4").write_bytes(b"this is not an mp4 file")
    return tmp_path


# (row or raw line, expected (field) of the error or None for a valid row). Line numbers follow from
# the order, with one blank line (skipped) after the first row.
CASES = [
    (good(), None),
    ("", "blank"),
    ('{"problem": "q", "solution": ', "json"),  # invalid JSON
    ({k: v for k, v in good().items() if k != "problem"}, "problem"),  # missing field
    (good(ptype="OpenQA"), "problem_type"),  # unknown problem type
    (good(solution="A"), "solution"),  # no <answer>
    (good(video="v/missing.mp4"), "video"),  # missing video
    (good(video="v/broken.mp4"), "video"),  # unreadable video
    (good("DarkEventInfer", mask_span=[1.0, 1.0]), "mask_span"),  # empty span
    (good("DarkEventInfer", mask_span=[2.0, 1.0]), "mask_span"),  # reversed span
    (good("DarkEventInfer", mask_span=[3.0, 9.0]), "mask_span"),  # outside the 4 s video
    (good("MixVidQA", video=["v/clip.mp4", "v/other.mp4", "v/clip.mp4"]), "video"),  # three clips
    (good("MixVidQA", video=["v/clip.mp4"]), "video"),  # one clip
    (good("MixVidQA", video=["v/clip.mp4", "v/other.mp4"], segment_seconds=[2.0, 1.0]), "segment_seconds"),
    (good("MixVidQA", video=["v/clip.mp4", "v/other.mp4"], segment_seconds=-1), "segment_seconds"),
    (good("MixVidQA", video=["v/clip.mp4", "v/other.mp4"], segment_seconds="fast"), "segment_seconds"),
    (good("MixVidQA", video=["v/clip.mp4", "v/missing.mp4"]), "video[1]"),
    (good("DarkEventInfer", mask_span=[1.0, 2.0]), None),
    (good("MixVidQA", video=["v/clip.mp4", "v/other.mp4"], segment_seconds=[1.5, 2.0], target="b"), None),
    (good("caption", events=["a red square moves", "it turns blue"]), None),
    (good(nframes=64), "nframes"),  # more frames than the 32-frame video has
    (good(ptype="caption", mask_span=[1.0, 2.0]), "mask_span"),  # span on a non-DEI row
    (["not", "an", "object"], "row"),
]


def write_cases(path: Path) -> dict[int, str | None]:
    expected, lineno = {}, 0
    with open(path, "w") as f:
        for row, fld in CASES:
            lineno += 1
            if fld == "blank":
                f.write("\n")
                continue
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
            expected[lineno] = fld
    return expected


def test_every_bad_input_class_is_reported_with_its_line_and_field(data_dir):
    path = data_dir / "data.jsonl"
    expected = write_cases(path)
    report = validate_file(path, cfg=VideoConfig(nframes=16))

    got: dict[int, set[str]] = {}
    for e in report.errors:
        got.setdefault(e.line, set()).add(e.field)
    bad = {line: fld for line, fld in expected.items() if fld is not None}
    assert set(got) == set(bad), report.format()
    for line, fld in bad.items():
        assert fld in got[line], f"line {line}: expected an error on {fld}, got {got[line]}\n{report.format()}"
    assert report.lines == [line for line, fld in expected.items() if fld is None]
    assert report.n_rows == len(expected) and report.n_invalid == len(bad)
    messages = {e.line: e.message for e in report.errors}
    assert "empty" in messages[9] and "reversed" in messages[10] and "duration" in messages[11]
    assert "exactly two clips" in messages[12] and "not found" in messages[7] and "unreadable" in messages[8]


def test_load_rows_raises_with_every_problem_or_skips_and_counts(data_dir, capsys):
    path = data_dir / "data.jsonl"
    expected = write_cases(path)
    n_bad = sum(1 for f in expected.values() if f is not None)
    with pytest.raises(DataValidationError) as exc:
        load_rows(path, VideoConfig())
    text = str(exc.value)
    for line, fld in expected.items():
        if fld is not None:
            assert f"line {line}: " in text

    rows = load_rows(path, VideoConfig(), skip_invalid=True)
    assert len(rows) == 4
    assert f"skipped {n_bad} invalid rows of {len(expected)}" in capsys.readouterr().out
    # Relative paths resolve against the JSONL's folder; `video` stays as written.
    assert rows[0]["video"] == "v/clip.mp4"
    assert rows[0]["video_paths"] == [str((data_dir / "v" / "clip.mp4").resolve())]


def test_cli_exits_nonzero_and_skip_invalid_counts(data_dir, capsys):
    path = data_dir / "data.jsonl"
    expected = write_cases(path)
    bad = [line for line, f in expected.items() if f is not None]

    assert validate_main([str(path)]) == 1  # in-process: the same entry point as the script
    out = capsys.readouterr().out
    for line in bad:
        assert f"{path}:{line}: error:" in out

    script = str(REPO / "scripts" / "validate_data.py")

    clean = data_dir / "clean.jsonl"
    lenient = subprocess.run(
        [sys.executable, script, str(path), "--skip_invalid", "--write_clean", str(clean)],
        capture_output=True, text=True,
    )
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert f"skipped {len(bad)} invalid rows of {len(expected)}" in lenient.stdout
    assert lenient.stderr.count("skipping invalid row") == len(bad)  # each bad row logged
    assert len(clean.read_text().splitlines()) == 4
    # The cleaned file validates on its own (relative paths still resolve: same folder).
    assert validate_file(clean).ok


def test_authors_released_format_loads_unchanged(data_dir):
    # The four released fields, pre-rendered proxy videos (a single file per row, no span / pair).
    rows = [
        {"problem": "Q?\nA. x\nB. y", "solution": "<answer>B</answer>", "problem_type": "MCQA", "video": "v/clip.mp4"},
        {"problem": "What happened in the dark?", "solution": "<answer>he pours water</answer>",
         "problem_type": "DarkEventInfer", "video": "v/clip.mp4"},
        {"problem": "What is the man doing?", "solution": "<answer>juggling</answer>",
         "problem_type": "MixVidQA", "video": "v/other.mp4"},
        {"problem": "Describe the video.", "solution": "<answer>A man walks.</answer>",
         "problem_type": "caption", "video": str(data_dir / "v" / "clip.mp4")},
    ]
    path = data_dir / "released.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_rows(path)
    assert [{k: v for k, v in r.items() if k not in ("video_paths", "source_line")} for r in loaded] == rows
    assert [r["source_line"] for r in loaded] == [f"{path}:{i}" for i in range(1, 5)]


def test_missing_file_and_empty_file(tmp_path):
    assert not validate_file(tmp_path / "nope.jsonl").ok
    (tmp_path / "empty.jsonl").write_text("\n\n")
    report = validate_file(tmp_path / "empty.jsonl")
    assert not report.ok and "no rows" in report.errors[0].message
    with pytest.raises(DataValidationError):
        load_rows(tmp_path / "empty.jsonl", skip_invalid=True)


def test_all_problems_of_one_row_are_reported(data_dir):
    path = data_dir / "multi.jsonl"
    row = good("DarkEventInfer", video="v/missing.mp4", solution="no tags", mask_span=[2, 1], nframes=1)
    path.write_text(json.dumps(row) + "\n")
    fields = {e.field for e in validate_file(path).errors}
    assert fields == {"solution", "video", "mask_span", "nframes"}
