"""load_video on plain rows (the frames fetch_video would give), per-row overrides, the decoded-clip
cache, prompt messages (and the Arrow None-key trap), and the processor kwargs with a real processor."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import qwen_vl_utils
import torch

from versavid_r1 import prompts
from versavid_r1.data import (
    VideoConfig,
    clean_messages,
    load_rows,
    load_video,
    make_conversation,
    video_cache_info,
    video_processor_kwargs,
)
from versavid_r1.video_writer import write_mp4

SMALL = dict(min_pixels=28 * 28 * 2, max_pixels=28 * 28 * 6)


def ramp_video(path, n=37, fps=10, h=48, w=64):
    x = np.linspace(0, 80, w, dtype=np.float32)[None, :, None]
    return write_mp4(path, np.stack([np.broadcast_to(30 + 4 * i + x, (h, w, 3)).astype(np.uint8) for i in range(n)]), fps)


pytestmark = pytest.mark.usefixtures("fresh_video_cache")


@pytest.fixture
def video(tmp_path):
    return str(ramp_video(tmp_path / "ramp.mp4"))


@pytest.fixture
def decode_calls(monkeypatch):
    calls = []
    real = qwen_vl_utils.read_video_frames

    def spy(path, indices, backend=None, **kwargs):
        calls.append(list(indices))
        return real(path, indices, backend=backend, **kwargs)

    monkeypatch.setattr(qwen_vl_utils, "read_video_frames", spy)
    return calls


def row(video, ptype="caption", **extra):
    return {"problem": "Describe.", "solution": "<answer>x</answer>", "problem_type": ptype, "video": video, **extra}


@pytest.mark.parametrize("sampling", [{"nframes": 8}, {"fps": 2.0}])
def test_plain_rows_give_exactly_what_fetch_video_gives(video, sampling):
    cfg = VideoConfig(**({"nframes": None} if "fps" in sampling else {}), **sampling, **SMALL)
    clip = load_video(row(video), cfg)
    ele = {"video": video, **sampling, **SMALL}
    if "fps" in sampling:
        ele.update(min_frames=cfg.min_frames, max_frames=cfg.max_frames)
    fetched, meta = qwen_vl_utils.fetch_video(ele, return_video_metadata=True)
    assert clip.indices == meta["frames_indices"]
    assert clip.timestamps == pytest.approx(meta["timestamps"])
    assert clip.fps == pytest.approx(meta["sample_fps"])
    assert clip.frames.dtype == torch.uint8 and torch.equal(clip.frames.float(), fetched)
    assert clip.sources == [0] * clip.num_frames and not any(clip.masked)
    expected_t = 8 if "nframes" in sampling else 6  # 3.7 s at 2 fps -> 7.4 -> rounded down to even
    assert clip.num_frames == expected_t


def test_per_row_overrides(video):
    cfg = VideoConfig(nframes=8, **SMALL)
    base = load_video(row(video), cfg)
    assert load_video(row(video, nframes=4), cfg).num_frames == 4
    assert load_video(row(video, fps=1.0), cfg).num_frames == 4  # 3.7 s * 1 fps, min_frames 4
    small = load_video(row(video, max_pixels=28 * 28 * 2), cfg)
    assert small.frames.shape[-2] * small.frames.shape[-1] < base.frames.shape[-2] * base.frames.shape[-1]
    sized = load_video(row(video, resized_height=56, resized_width=84), cfg)
    assert tuple(sized.frames.shape[-2:]) == (56, 84)
    assert VideoConfig(fps=1.0).fps == 1.0  # fps in the config wins over the default nframes
    assert load_video(row(video), VideoConfig(fps=4.0, **SMALL)).num_frames == 14


def test_cache_decodes_each_video_once_and_is_bounded(tmp_path, video, decode_calls):
    cfg = VideoConfig(nframes=8, cache_size=2, **SMALL)
    r = row(video)
    first = load_video(r, cfg)
    for _ in range(8):  # a generation group and the loss pass ask again
        assert load_video(dict(r), cfg) is first
    assert len(decode_calls) == 1
    info = video_cache_info()
    assert (info.hits, info.misses, info.size, info.maxsize) == (8, 1, 1, 2)

    # Anything that changes the frames is part of the key: another config, a span, a row override.
    load_video(r, VideoConfig(nframes=4, cache_size=2, **SMALL))
    load_video(row(video, "DarkEventInfer", mask_span=[1.0, 2.0]), cfg)
    assert len(decode_calls) == 3 and video_cache_info().size == 2  # bounded: the first clip left
    load_video(r, cfg)
    assert len(decode_calls) == 4

    # A rewritten file is decoded again (its size / mtime are part of the key).
    again = load_video(r, cfg)
    ramp_video(video, n=20)
    os.utime(video, ns=(1, 1))
    changed = load_video(r, cfg)
    assert changed is not again and len(decode_calls) == 5

    load_video(r, VideoConfig(nframes=8, cache_size=0, **SMALL))  # disabled
    load_video(r, VideoConfig(nframes=8, cache_size=0, **SMALL))
    assert len(decode_calls) == 7


def test_same_row_and_seed_give_the_same_frames_without_cache(video):
    cfg = VideoConfig(nframes=8, cache_size=0, **SMALL)
    r = row(video, "DarkEventInfer", mask_span=[1.2, 1.6])
    a, b = load_video(r, cfg), load_video(json.loads(json.dumps(r)), cfg)
    assert torch.equal(a.frames, b.frames) and a.timestamps == b.timestamps and a.indices == b.indices


def test_make_conversation(tmp_path, video):
    rel_dir = tmp_path / "data"
    rel_dir.mkdir()
    os.link(video, rel_dir / "clip.mp4")
    (rel_dir / "clip2.mp4").write_bytes(open(video, "rb").read())
    rows = [
        {"problem": "Which colour?\nA. red\nB. blue", "solution": "<answer>A</answer>", "problem_type": "MCQA",
         "video": "clip.mp4"},
        {"problem": f"Which colour?\nA. red\nB. blue\n{prompts.MCQA_SUFFIX}", "solution": "<answer>A</answer>",
         "problem_type": "MCQA", "video": "clip.mp4"},
        {"problem": "What does the man do?", "solution": "<answer>waves</answer>", "problem_type": "MixVidQA",
         "video": ["clip.mp4", "clip2.mp4"], "target": "b"},
    ]
    (rel_dir / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_rows(rel_dir / "d.jsonl", VideoConfig(nframes=4, **SMALL))
    mcqa, mcqa_suffixed, mix = (make_conversation(r) for r in loaded)

    assert len(mcqa) == 1 and mcqa[0]["role"] == "user"  # no system prompt
    video_part, text_part = mcqa[0]["content"]
    assert video_part == {"type": "video", "video": str((rel_dir / "clip.mp4").resolve())}
    assert text_part["type"] == "text"
    assert text_part["text"] == (
        f"Which colour?\nA. red\nB. blue\n{prompts.MCQA_SUFFIX}\n{prompts.THINK_ANSWER_INSTRUCTION}"
    )
    assert mcqa_suffixed[0]["content"][1]["text"] == text_part["text"]  # the suffix is not doubled
    assert mix[0]["content"][0]["video"] == [str((rel_dir / n).resolve()) for n in ("clip.mp4", "clip2.mp4")]
    assert mix[0]["content"][1]["text"] == f"What does the man do?\n{prompts.THINK_ANSWER_INSTRUCTION}"
    assert "waves" not in json.dumps(mix) and "target" not in json.dumps(mix)
    # Without load_rows, relative paths resolve against cfg.video_root.
    raw = make_conversation(rows[0], VideoConfig(video_root=str(rel_dir)))
    assert raw[0]["content"][0]["video"] == str((rel_dir / "clip.mp4").resolve())


def test_clean_messages_undoes_arrows_key_merge(video):
    from datasets import Dataset

    messages = make_conversation(row(video))
    ds = Dataset.from_list([{"prompt": messages}])
    back = ds[0]["prompt"]
    assert back[0]["content"][1].get("video", "absent") is None  # the trap: text part gains video: None
    assert clean_messages(back) == messages


def test_processor_kwargs_keep_frames_and_fps(tmp_path, video):
    from transformers import AutoProcessor

    from versavid_r1.tiny_model import build_tiny_qwen25vl

    processor = AutoProcessor.from_pretrained(build_tiny_qwen25vl(tmp_path / "tiny", seed=0))
    cfg = VideoConfig(nframes=8, **SMALL)
    clips = [load_video(row(video), cfg), load_video(row(video, nframes=4), cfg)]
    texts = [processor.apply_chat_template(make_conversation(row(video)), tokenize=False, add_generation_prompt=True)] * 2
    out = processor(text=texts, videos=[c.frames for c in clips], return_tensors="pt", padding=True,
                    **video_processor_kwargs(clips))
    patch = processor.video_processor.patch_size
    for k, clip in enumerate(clips):
        t, h, w = out["video_grid_thw"][k].tolist()
        assert (t * 2, h * patch, w * patch) == (clip.num_frames, *clip.frames.shape[-2:])  # not resized again
        assert out["second_per_grid_ts"][k] == pytest.approx(2 / clip.fps)


def test_validation_warms_the_loaders_video_info(tmp_path, video, monkeypatch):
    """Training validates the data first; the loader then reuses that info instead of opening each video again."""
    from versavid_r1.data import load_rows

    opened = []
    real = qwen_vl_utils.get_video_info

    def spy(path, backend=None):
        opened.append(path)
        return real(path, backend=backend)

    monkeypatch.setattr(qwen_vl_utils, "get_video_info", spy)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(row(video)) + "\n")
    cfg = VideoConfig(nframes=4, **SMALL)
    (loaded,) = load_rows(str(data), cfg)
    assert len(opened) == 1
    assert load_video(loaded, cfg).num_frames == 4
    assert len(opened) == 1, "the loader opened the video again for its info"
