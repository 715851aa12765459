"""MVBench conversion from a small fake MVBench tree in the benchmark's real layout (json/ + video/<source>/...):
videos are found in each task's own folder (also the renamed re-upload folders), bounds are kept only for the
bounded tasks, and the frame-folder task (TVQA JPEGs at 3 fps) becomes a Motion-JPEG video whose frames the
loader returns exactly as the JPEGs decode."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from versavid_r1.data import VideoConfig, load_video
from versavid_r1.eval.convert_cli import mvbench_main
from versavid_r1.eval.formats import load_eval_items
from versavid_r1.eval.mvbench import MVBENCH_TASKS
from versavid_r1.video_writer import solid_color_frames, write_mp4

SIDE = 56  # a multiple of 28: with these pixel limits the loader does not resize


def _mp4(path: Path) -> None:
    write_mp4(path, solid_color_frames((30, 160, 60), 12, SIDE, SIDE), fps=4)


def _item(video: str, **extra) -> dict:
    return {"video": video, "question": "What happens?", "candidates": ["one", "two"], "answer": "two", **extra}


def _tree(root: Path) -> None:
    v = root / "video"
    _mp4(v / "star/Charades_v1_480/AB12.mp4")
    _mp4(v / "other_dataset/AB12.mp4")  # the same name elsewhere: the task's own folder decides
    _mp4(v / "clevrer/video_validation/video_1.mp4")
    _mp4(v / "ssv2_video_mp4/142103.mp4")  # the re-upload: renamed folder, .mp4 for the json's .webm
    frames = v / "tvqa/frames_fps3_hq/castle_s01e01_seg02_clip_00"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(1, 13):  # 12 frames at 3 fps = 4 s, each different
        pixels = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        pixels[:8] = 20 * k
        Image.fromarray(pixels).save(frames / f"{k:05d}.jpg", quality=90)
    j = root / "json"
    j.mkdir()
    for name, items in {
        "action_sequence": [_item("AB12.mp4", start=1.0, end=3.5)],
        "moving_direction": [_item("video_1.mp4", start=0.5, end=1.0)],  # not a bounded task: bounds ignored
        "action_antonym": [_item("142103.webm")],
        "episodic_reasoning": [_item("castle_s01e01_seg02_clip_00", start=1.0, end=3.0)],
        "fine_grained_pose": [_item("S001C001P001R001A040_rgb.avi")],  # NTU videos: downloaded separately
    }.items():
        (j / f"{name}.json").write_text(json.dumps(items))


def test_the_twenty_tasks_as_the_benchmark_lists_them():
    assert len(MVBENCH_TASKS) == 20 and len({t.name for t in MVBENCH_TASKS}) == 20
    assert {t.name for t in MVBENCH_TASKS if t.bounded} == {
        "action_sequence", "action_prediction", "object_interaction", "action_localization", "episodic_reasoning"}
    assert [t.name for t in MVBENCH_TASKS if t.media == "frames"] == ["episodic_reasoning"]


def test_convert_a_tree_in_mvbench_layout_and_load_the_frame_task(tmp_path, capsys, fresh_video_cache):
    root = tmp_path / "MVBench"
    _tree(root)
    out = tmp_path / "eval" / "mvbench.jsonl"
    assert mvbench_main(["--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5 rows written, 0 left out, 1 written with a missing video" in printed
    assert "nturgbd or nturgbd_convert" in printed and "1 turned into videos" in printed
    rows = {r["id"].split("/")[0]: r for r in map(json.loads, out.read_text().splitlines())}
    v = root.resolve() / "video"
    assert rows["action_sequence"]["video"] == str(v / "star/Charades_v1_480/AB12.mp4")
    assert (rows["action_sequence"]["video_start"], rows["action_sequence"]["video_end"]) == (1.0, 3.5)
    assert rows["moving_direction"]["video"] == str(v / "clevrer/video_validation/video_1.mp4")
    assert "video_start" not in rows["moving_direction"]
    assert rows["action_antonym"]["video"] == str(v / "ssv2_video_mp4/142103.mp4")
    rendered = (tmp_path / "eval" / "mvbench_frames" / "episodic_reasoning" / "castle_s01e01_seg02_clip_00.mkv")
    assert rows["episodic_reasoning"]["video"] == str(rendered.resolve())
    assert rows["episodic_reasoning"]["category"] == "Episodic Reasoning"

    # The frame task loads as a video: 3 fps, bounded to 1..3 s, each frame the pixels its JPEG decodes to.
    vcfg = VideoConfig(nframes=4, min_pixels=SIDE * SIDE, max_pixels=SIDE * SIDE)
    (item,) = [it for it in load_eval_items(out, "mcqa", vcfg) if it.id.startswith("episodic")]
    clip = load_video(item.row, vcfg)
    assert all(1.0 <= t <= 3.0 for t in clip.timestamps) and clip.timestamps == [i / 3 for i in clip.indices]
    jpgs = sorted((v / "tvqa/frames_fps3_hq/castle_s01e01_seg02_clip_00").iterdir())
    for frame, index in zip(clip.frames, clip.indices):
        with av.open(str(jpgs[index])) as container:  # the same decoder, one JPEG at a time
            expected = next(container.decode(video=0)).to_ndarray(format="rgb24")
        assert torch.equal(frame, torch.from_numpy(expected).permute(2, 0, 1))

    # A rerun reuses the rendered video instead of making it again.
    mtime = rendered.stat().st_mtime_ns
    assert mvbench_main(["--root", str(root), "--out", str(out), "--tasks", "episodic_reasoning"]) == 0
    assert "0 turned into videos" in capsys.readouterr().out and rendered.stat().st_mtime_ns == mtime
