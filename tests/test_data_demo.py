"""The demo dataset: real H.264 files, all four types, and every ground truth checked against the
decoded pixels (colours, shapes, directions, appearances, black spans); the held-out set: colour questions
whose answers are spread evenly, on scenes the training rows never show."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import qwen_vl_utils

from versavid_r1.answer import extract_answer
from versavid_r1.data import VideoConfig, clear_video_cache, load_rows, load_video, validate_file
from versavid_r1.data.demo import (
    BIG_HALF,
    COLOUR_OPTIONS,
    HALF,
    PALETTE,
    load_demo_meta,
    make_demo_dataset,
    make_heldout_dataset,
)

N = 12  # the type cycle M, D, X, C, M, M twice: 6 colour questions, 2 rows of each other type


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    jsonl = make_demo_dataset(out, n=N, seed=3)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return out, jsonl, rows, load_demo_meta(out), None


class Video:
    """Decoded frames of one demo mp4 (all of them: 48 small frames), with pixel measurements."""

    def __init__(self, path):
        info = qwen_vl_utils.get_video_info(path)
        self.fps = info.fps
        self.n = info.total_frames
        frames = qwen_vl_utils.read_video_frames(path, list(range(self.n)))
        self.frames = frames.permute(0, 2, 3, 1).numpy().astype(np.int32)  # [T, H, W, 3]

    def index(self, t):
        return int(round(t * self.fps))

    def matches(self, i, colour, tol=60):
        return np.abs(self.frames[i] - np.array(PALETTE[colour])).sum(axis=-1) < tol

    def count(self, i, colour):
        return int(self.matches(i, colour).sum())

    def centroid_x(self, i, colour):
        ys, xs = np.nonzero(self.matches(i, colour))
        assert len(xs) > 40, f"no {colour} shape in frame {i}"
        return float(xs.mean()), float(ys.mean())

    def kind(self, i, colour):
        """square / circle / triangle: a triangle (apex up) has most of its pixels in the lower half
        of its bounding box; a square fills its box, a circle about pi/4 of it."""
        ys, xs = np.nonzero(self.matches(i, colour))
        assert 40 < len(xs) < 2 * (2 * HALF + 1) ** 2, f"{len(xs)} {colour} pixels in frame {i}: not one shape"
        top = (ys < (ys.min() + ys.max()) / 2.0).mean()
        fill = len(xs) / float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
        if top < 0.4:
            return "triangle"
        return "square" if fill > 0.9 else "circle"

    def colour_at(self, i, x, y):
        patch = self.frames[i, int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3].reshape(-1, 3).mean(axis=0)
        name = min(PALETTE, key=lambda c: np.abs(patch - PALETTE[c]).sum())
        assert np.abs(patch - PALETTE[name]).sum() < 45, f"pixel {patch} is no palette colour"
        return name

    def direction(self, i, j, colour):
        return "right" if self.centroid_x(j, colour)[0] > self.centroid_x(i, colour)[0] else "left"


CHANGE = re.compile(r"The (\w+) (\w+) turns (\w+)\.$")
TURN = re.compile(r"The (\w+) (\w+) turns around and moves to the (left|right)\.$")
APPEAR = re.compile(r"A (\w+) (\w+) appears\.$")
START = re.compile(r"A (\w+) (\w+) moves to the (left|right)\.$")


def check_event(video: Video, text: str, before: int, after: int):
    """The event `text` is what the pixels show between frame `before` and frame `after`."""
    if m := CHANGE.match(text):
        old, kind, new = m.groups()
        assert video.count(before, old) > 40 and video.count(before, new) == 0
        assert video.count(after, new) > 40 and video.count(after, old) == 0
        assert video.kind(before, old) == kind and video.kind(after, new) == kind
    elif m := TURN.match(text):
        colour, kind, new_dir = m.groups()
        old_dir = "left" if new_dir == "right" else "right"
        assert video.direction(before - 4, before, colour) == old_dir
        assert video.direction(after, after + 4, colour) == new_dir
        assert video.kind(after, colour) == kind
    elif m := APPEAR.match(text):
        colour, kind = m.groups()
        assert video.count(before, colour) == 0
        assert video.kind(after, colour) == kind
    elif m := START.match(text):
        colour, kind, direction = m.groups()
        assert video.direction(0, 4, colour) == direction and video.kind(0, colour) == kind
    else:
        raise AssertionError(f"unrecognised event text {text!r}")


def options_of(problem):
    return dict(re.findall(r"^([A-D])\. (.+)$", problem, flags=re.M))


def test_demo_is_valid_and_has_every_type(demo):
    out, jsonl, rows, meta, _ = demo
    assert len(rows) == N
    assert [r["problem_type"] for r in rows[:6]] == ["MCQA", "DarkEventInfer", "MixVidQA", "caption", "MCQA", "MCQA"]
    report = validate_file(jsonl)
    assert report.ok, report.format()
    for rel in meta["videos"]:
        assert (out / rel).read_bytes()[4:8] == b"ftyp"  # real mp4 containers
        info = qwen_vl_utils.get_video_info(out / rel)
        assert (info.total_frames, info.fps, info.width, info.height) == (48, 8.0, 128, 96)


def check_colour_row(video: Video, row: dict):
    """The big shape of every frame has the answer's colour; no other option colour is on screen."""
    answer = options_of(row["problem"])[extract_answer(row["solution"])]
    assert list(options_of(row["problem"]).values()) == list(COLOUR_OPTIONS)  # always the same options
    big_area = (2 * BIG_HALF + 1) ** 2
    for i in range(0, video.n, 6):
        assert video.count(i, answer) > 0.3 * big_area  # a big shape (a small one has < 441 pixels)
        assert all(video.count(i, other) == 0 for other in COLOUR_OPTIONS if other != answer)
    return answer


def test_colour_questions_are_true_of_the_pixels_and_spread_evenly(demo):
    out, _, rows, meta, _ = demo
    answers = [check_colour_row(Video(out / r["video"]), r) for r in rows if r["problem_type"] == "MCQA"]
    assert answers == [*COLOUR_OPTIONS, *COLOUR_OPTIONS[:2]]  # the colours in turn: the letters spread evenly


def test_dark_event_answers_describe_the_masked_event(demo):
    out, _, rows, meta, _ = demo
    cfg = VideoConfig(nframes=16, min_pixels=28 * 28, max_pixels=28 * 28 * 16)
    for row in (r for r in rows if r["problem_type"] == "DarkEventInfer"):
        video = Video(out / row["video"])
        start, end = row["mask_span"]
        before, after = video.index(start) - 1, video.index(end)  # the context frames next to the span
        check_event(video, extract_answer(row["solution"]), before, after)
        # The event happens inside the span (the frames at its ends differ in the event's way) and the
        # loader blacks the span out.
        scene = meta["scenes"][row["video"]]
        assert any(start < e.time < end and e.text == extract_answer(row["solution"]) for e in scene.events)
        clip = load_video(load_rows_for(out, row), cfg)
        assert any(clip.masked) and all(int(clip.frames[k].max()) == 0 for k in range(16) if clip.masked[k])


def load_rows_for(out, row):
    return {**row, "video_paths": [str(out / row["video"])]}


def test_mixvidqa_question_is_answerable_from_the_target_clip_only(demo):
    out, _, rows, meta, _ = demo
    for row in (r for r in rows if r["problem_type"] == "MixVidQA"):
        target = {"a": 0, "b": 1}[row["target"]]
        videos = [Video(out / v) for v in row["video"]]
        answer = extract_answer(row["solution"])
        last = 47
        # Only the target clip has a circle (shapes measured at their known places at the end).
        for k, v in enumerate(videos):
            scene = meta["scenes"][row["video"][k]]
            kinds = [v.kind(last, s.color_at(6.0)) for s in scene.shapes]
            assert ("circle" in kinds) == (k == target), (k, kinds)
        tv = videos[target]
        circle = next(s for s in meta["scenes"][row["video"][target]].shapes if s.kind == "circle")
        if row["problem"].startswith("What colour does the circle turn into"):
            assert tv.kind(last, answer) == "circle" and tv.count(0, answer) == 0
        elif row["problem"].startswith("In which direction does the circle move after it turns around"):
            colour = tv.colour_at(last, circle.x(6.0), circle.lane)
            assert tv.kind(last, colour) == "circle"
            assert tv.direction(0, 4, colour) != answer and tv.direction(last - 6, last, colour) == answer
        elif row["problem"].startswith("What colour is the circle that appears"):
            assert tv.count(0, answer) == 0 and tv.kind(last, answer) == "circle"
        else:
            raise AssertionError(row["problem"])


def test_captions_list_the_events_in_order(demo):
    out, _, rows, meta, _ = demo
    for row in (r for r in rows if r["problem_type"] == "caption"):
        video = Video(out / row["video"])
        scene = meta["scenes"][row["video"]]
        caption = extract_answer(row["solution"])
        assert row["events"] == [e.text for e in scene.events]
        times = [e.time for e in scene.events]
        assert times == sorted(times)
        pos = -1
        for event in row["events"]:
            # Each event appears in the caption, in order.
            body = event[0].lower() + event[1:-1]
            found = caption.lower().find(body.lower())
            assert found > pos, (event, caption)
            pos = found
        for e in scene.events:
            if e.time == 0:
                check_event(video, e.text, 0, 0)
            else:
                check_event(video, e.text, video.index(e.time) - 2, video.index(e.time) + 1)


def test_heldout_set_is_even_new_and_readable(demo, tmp_path):
    out, _, rows, meta, _ = demo
    held = make_heldout_dataset(tmp_path / "held", n=12, seed=3)
    held_rows = [json.loads(line) for line in held.read_text().splitlines()]
    held_meta = load_demo_meta(held.parent, "heldout")
    assert validate_file(held).ok and {r["problem_type"] for r in held_rows} == {"MCQA"}
    answers = [check_colour_row(Video(held.parent / r["video"]), r) for r in held_rows]
    assert sorted(answers) == sorted(COLOUR_OPTIONS * 3)  # each colour, so each letter, equally often
    # no held-out scene is a training scene (the same seed: separate random streams)
    training = {json.dumps(s.to_dict(), sort_keys=True) for s in meta["scenes"].values()}
    assert not training & {json.dumps(s.to_dict(), sort_keys=True) for s in held_meta["scenes"].values()}
    assert make_heldout_dataset(tmp_path / "held", n=12, seed=3) == held  # idempotent
    captions = make_heldout_dataset(tmp_path / "held", n=4, seed=3, problem_type="caption")
    assert captions.name == "heldout_caption.jsonl" and held.read_text() == "".join(json.dumps(r) + "\n" for r in held_rows)
    assert {json.loads(line)["problem_type"] for line in captions.read_text().splitlines()} == {"caption"}


def test_demo_is_idempotent_deterministic_and_relocatable(demo, tmp_path):
    out, jsonl, rows, _, _ = demo
    stamp = jsonl.stat().st_mtime_ns
    assert make_demo_dataset(out, n=N, seed=3) == jsonl
    assert jsonl.stat().st_mtime_ns == stamp  # the same dataset is not written again

    again = make_demo_dataset(tmp_path / "again", n=N, seed=3)
    assert again.read_text() == jsonl.read_text()
    other = make_demo_dataset(tmp_path / "other", n=N, seed=4)
    assert other.read_text() != jsonl.read_text()

    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    clear_video_cache()
    loaded = load_rows(moved / jsonl.name)
    assert len(loaded) == N and all(p.startswith(str(moved)) for r in loaded for p in r["video_paths"])
