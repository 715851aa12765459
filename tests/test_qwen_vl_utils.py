"""qwen_vl_utils on real mp4 files written with PyAV: frame counts, sizes, indices, timestamps, readers."""
from __future__ import annotations

import ast
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import qwen_vl_utils as q
from qwen_vl_utils import readers
from versavid_r1.video_writer import write_mp4

FPS = 8
N = 24
H, W = 64, 96
BACKENDS = ["decord", "pyav"]
SMALL = {"min_pixels": 4 * 784, "max_pixels": 16 * 784}  # 64x96 -> 56x84 (6 tokens)
README = Path(q.__file__).resolve().parents[2] / "README.md"


def colour(i: int) -> tuple[int, int, int]:
    """Frame i's solid colour: red = 10 i, green = 230 - 10 i (10 levels apart per frame)."""
    return (10 * i, 230 - 10 * i, 128)


def frame_index_of(frame: torch.Tensor) -> int:
    """Source index of a decoded solid-colour frame ([3, H, W], uint8 or float), from its red level."""
    red = frame[0].float().mean().item()
    green = frame[1].float().mean().item()
    index = round(red / 10)
    assert abs(red - 10 * index) <= 4 and abs(green - (230 - 10 * index)) <= 4, (red, green)
    return index


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("qvl_videos")
    frames = np.empty((N, H, W, 3), dtype=np.uint8)
    for i in range(N):
        frames[i] = colour(i)
    long_frames = np.empty((360, 32, 64, 3), dtype=np.uint8)
    for i in range(360):
        long_frames[i] = (i % 200, 40, 200 - i % 200)
    good = write_mp4(root / "colours.mp4", frames, fps=FPS)
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = root / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {
        "colours": good,
        "long": write_mp4(root / "long.mp4", long_frames, fps=30),
        "corrupt": corrupt,
        "truncated": truncated,
        "missing": root / "no_such_video.mp4",
    }


# ---------------------------------------------------------------- reading real files


@pytest.mark.parametrize("backend", BACKENDS)
def test_video_info(videos, backend):
    info = q.get_video_info(videos["colours"], backend=backend)
    assert (info.total_frames, info.fps, info.height, info.width) == (N, FPS, H, W)
    assert info.duration == pytest.approx(N / FPS)
    assert info.backend == backend and info.path == str(videos["colours"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fetch_video_nframes_size_indices_timestamps(videos, backend):
    ele = {"type": "video", "video": str(videos["colours"]), "nframes": 6, **SMALL}
    (video, meta), sample_fps = q.fetch_video(ele, return_video_metadata=True, return_video_sample_fps=True, backend=backend)
    assert video.dtype == torch.float32 and video.shape == (6, 3, 56, 84)
    assert (56, 84) == q.smart_resize(H, W, 28, **SMALL)
    assert meta["frames_indices"] == [0, 5, 9, 14, 18, 23]  # linspace(0, 23, 6).round()
    assert meta["timestamps"] == pytest.approx([i / FPS for i in meta["frames_indices"]])
    assert [frame_index_of(f) for f in video] == meta["frames_indices"]
    assert sample_fps == meta["sample_fps"] == pytest.approx(6 / N * FPS)
    assert (meta["fps"], meta["total_num_frames"], meta["video_backend"]) == (FPS, N, backend)
    assert meta["duration"] == pytest.approx(N / FPS)
    assert torch.equal(q.fetch_video(ele, backend=backend), video)  # plain call: the tensor only


@pytest.mark.parametrize(
    "keys, expected_frames",
    [
        ({"fps": 2.0}, 6),  # 3 s at 2 fps
        ({}, 6),  # DEFAULTS.fps = 2
        ({"fps": 8.0, "max_frames": 10}, 10),
        ({"fps": 0.5, "min_frames": 8}, 8),
    ],
)
def test_fetch_video_fps_mode(videos, keys, expected_frames):
    video, meta = q.fetch_video({"video": str(videos["colours"]), **keys, **SMALL}, return_video_metadata=True)
    assert video.shape[0] == len(meta["frames_indices"]) == expected_frames
    assert [frame_index_of(f) for f in video] == meta["frames_indices"]


def test_pixel_limits_scale_the_frames(videos):
    video = q.fetch_video({"video": str(videos["colours"]), "nframes": 2, "min_pixels": 784, "max_pixels": 4 * 784})
    h, w = video.shape[-2:]
    assert (h, w) == (28, 56) and h * w <= 4 * 784
    big = q.fetch_video({"video": str(videos["colours"]), "nframes": 2, "min_pixels": 1000 * 784, "max_pixels": 2000 * 784})
    assert big.shape[-2] * big.shape[-1] >= 1000 * 784
    assert q.video_target_size(H, W, 2, {"min_pixels": 1000 * 784, "max_pixels": 2000 * 784}) == tuple(big.shape[-2:])


@pytest.mark.parametrize("backend", BACKENDS)
def test_video_start_end(videos, backend):
    ele = {"video": str(videos["colours"]), "nframes": 4, "video_start": 1.0, "video_end": 2.0, **SMALL}
    video, meta = q.fetch_video(ele, return_video_metadata=True, backend=backend)
    assert meta["frames_indices"] == [8, 11, 13, 16]  # frames 8..16, linspace(8, 16, 4).round()
    assert meta["timestamps"] == pytest.approx([1.0, 1.375, 1.625, 2.0])
    assert meta["total_num_frames"] == 9 and meta["sample_fps"] == pytest.approx(4 / 9 * FPS)
    assert [frame_index_of(f) for f in video] == meta["frames_indices"]
    with pytest.raises(ValueError, match="fewer than 2 frames"):
        q.fetch_video({**ele, "video_start": 2.0, "video_end": 2.0}, backend=backend)


def test_frame_range_tolerates_float_error():
    assert q.frame_range({"video_start": 0.3, "video_end": 0.7}, 100, 10) == (3, 7)
    assert q.frame_range({"video_start": -5, "video_end": 1e9}, 100, 10) == (0, 99)
    assert q.frame_range({}, 100, 10) == (0, 99)
    assert q.frame_timestamps([0, 3, 10], 4) == [0.0, 0.75, 2.5]


def test_too_few_frames_raises(videos):
    with pytest.raises(ValueError, match=r"\[2, 24\].*got 32"):
        q.fetch_video({"video": str(videos["colours"]), "nframes": 32})


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_video_frames_decodes_exactly_the_requested_frames(videos, backend):
    indices = [17, 3, 3, 0, 23, 11]
    frames = q.read_video_frames(videos["colours"], indices, backend=backend)
    assert frames.dtype == torch.uint8 and frames.shape == (len(indices), 3, H, W)
    assert [frame_index_of(f) for f in frames] == indices
    with pytest.raises(IndexError, match="colours.mp4"):
        q.read_video_frames(videos["colours"], [0, N], backend=backend)


def test_decord_and_pyav_agree(videos):
    for name in ("colours", "long"):
        info = q.get_video_info(videos[name])
        indices = q.sample_indices(0, info.total_frames - 1, 12)
        a = q.read_video_frames(videos[name], indices, backend="decord").int()
        b = q.read_video_frames(videos[name], indices, backend="pyav").int()
        assert (a - b).abs().max() <= 3 and (a - b).abs().float().mean() < 0.5
        ma = q.fetch_video({"video": str(videos[name]), "nframes": 8}, return_video_metadata=True, backend="decord")[1]
        mb = q.fetch_video({"video": str(videos[name]), "nframes": 8}, return_video_metadata=True, backend="pyav")[1]
        assert ma["frames_indices"] == mb["frames_indices"] and ma["timestamps"] == mb["timestamps"]


def test_pyav_decodes_only_near_the_requested_frames(videos, monkeypatch):
    decoded = []
    index_of = readers._PyAVVideo._index
    monkeypatch.setattr(readers._PyAVVideo, "_index", lambda self, frame: decoded.append(1) or index_of(self, frame))
    frames = q.read_video_frames(videos["long"], [5, 300], backend="pyav")
    assert frames[:, 0, 0, 0].tolist() == pytest.approx([5, 100], abs=3)  # red = i % 200
    # Sequential decoding would touch 301 frames; seeking starts at the keyframe before frame 300.
    assert len(decoded) <= 120, len(decoded)


# ---------------------------------------------------------------- errors name the file


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_video_raises_file_not_found(videos, backend):
    with pytest.raises(FileNotFoundError, match="no_such_video.mp4"):
        q.get_video_info(videos["missing"], backend=backend)
    with pytest.raises(FileNotFoundError, match="no_such_video.mp4"):
        q.fetch_video({"video": str(videos["missing"])}, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["corrupt", "truncated"])
def test_unreadable_video_raises_naming_file_and_reader(videos, backend, name):
    with pytest.raises(q.VideoReadError, match=rf"{name}\.mp4.*{backend}|{backend}.*{name}\.mp4") as err:
        q.read_video_frames(videos[name], [0], backend=backend)
    assert f"{name}.mp4" in str(err.value) and backend in str(err.value)
    messages = [{"role": "user", "content": [{"type": "video", "video": f"file://{videos[name]}"}]}]
    with pytest.raises(q.VideoReadError, match=f"{name}.mp4"):
        q.process_vision_info(messages, backend=backend)


# ---------------------------------------------------------------- reader choice


@pytest.fixture
def fresh_log(monkeypatch, caplog):
    monkeypatch.setattr(readers, "_logged", set())
    monkeypatch.delenv(q.DEFAULTS.reader_env_var, raising=False)
    caplog.set_level(logging.INFO, logger="qwen_vl_utils")
    return caplog


def test_reader_choice_is_explicit_and_logged_once(videos, fresh_log, monkeypatch):
    assert q.resolve_backend() == "decord"
    assert q.resolve_backend() == "decord"
    monkeypatch.setenv(q.DEFAULTS.reader_env_var, "pyav")
    assert q.get_video_info(videos["colours"]).backend == "pyav"
    assert q.get_video_info(videos["colours"], backend="decord").backend == "decord"  # argument wins
    assert q.get_video_info(videos["colours"], backend="av").backend == "pyav"
    messages = [record.getMessage() for record in fresh_log.records]
    assert sum("decord (the default)" in m for m in messages) == 1
    assert sum(f"pyav (set by ${q.DEFAULTS.reader_env_var})" in m for m in messages) == 1
    with pytest.raises(ValueError, match="torchvision"):
        q.resolve_backend("torchvision")


def test_decord_missing_falls_back_to_pyav_with_a_warning(videos, fresh_log, monkeypatch):
    real_find_spec = readers.importlib.util.find_spec
    monkeypatch.setattr(
        readers.importlib.util, "find_spec", lambda name, *a: None if name == "decord" else real_find_spec(name, *a)
    )
    assert q.get_video_info(videos["colours"]).backend == "pyav"
    assert any(r.levelno == logging.WARNING and "decord is not installed" in r.getMessage() for r in fresh_log.records)
    with pytest.raises(ImportError, match="decord"):
        q.resolve_backend("decord")  # an explicit choice is never replaced


# ---------------------------------------------------------------- frames lists, images, messages


def test_list_of_pil_frames_is_a_video():
    pil_frames = [Image.fromarray(np.full((60, 80, 3), colour(i), dtype=np.uint8)) for i in range(5)]
    ele = {"type": "video", "video": pil_frames, **SMALL}
    (video, meta), sample_fps = q.fetch_video(ele, return_video_metadata=True, return_video_sample_fps=True)
    assert video.shape == (6, 3, *q.smart_resize(60, 80, 28, **SMALL))  # padded to an even count
    assert [frame_index_of(f) for f in video] == [0, 1, 2, 3, 4, 4]
    assert meta["frames_indices"] == [0, 1, 2, 3, 4, 4] and meta["video_backend"] == "frames"
    assert meta["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0] and sample_fps == q.DEFAULTS.frame_list_fps
    arrays = [np.asarray(f) for f in pil_frames[:4]]
    video, fps = q.fetch_video({"video": arrays, "sample_fps": 4, **SMALL}, return_video_sample_fps=True)
    assert video.shape[0] == 4 and fps == 4.0
    with pytest.raises(ValueError, match="same size"):
        q.fetch_video({"video": [pil_frames[0], pil_frames[1].resize((40, 40))]})


def test_process_vision_info_with_video_and_image(videos):
    image = Image.fromarray(np.full((100, 150, 3), 77, dtype=np.uint8))
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [
            {"type": "video", "video": str(videos["colours"]), "nframes": 4, **SMALL},
            {"type": "image", "image": image, "max_pixels": 20 * 784},
            {"type": "text", "text": "What changes?", "video": None, "image": None, "nframes": None},
        ]},
    ]
    images, video_inputs, video_kwargs = q.process_vision_info(messages, return_video_kwargs=True)
    assert len(images) == 1 and images[0].size == (140, 112)  # (w, h); 112 x 140 is exactly 20 tokens
    assert len(video_inputs) == 1 and video_inputs[0].shape == (4, 3, 56, 84)
    assert video_kwargs == {"do_sample_frames": False, "fps": [pytest.approx(4 / N * FPS)]}
    assert len(q.process_vision_info(messages)) == 2
    _, with_meta, kwargs = q.process_vision_info([messages, messages], return_video_kwargs=True, return_video_metadata=True)
    assert len(with_meta) == 2 and with_meta[0][1]["frames_indices"] == [0, 8, 15, 23] and "fps" not in kwargs
    assert q.process_vision_info([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]) == (None, None)
    assert len(q.extract_vision_info(messages)) == 2


def test_none_valued_keys_take_the_defaults(videos):
    # Rows from Arrow carry every key, often None: None means "absent", not an error.
    ele = {"type": "video", "video": str(videos["colours"]), "nframes": None, "fps": None, "image": None, **SMALL}
    assert q.fetch_video(ele).shape[0] == q.smart_nframes({}, N, FPS) == 6
    assert q.smart_nframes({"nframes": 4, "fps": None}, N, FPS) == 4
    with pytest.raises(ValueError, match="either"):
        q.smart_nframes({"nframes": 4, "fps": 1}, N, FPS)


# ---------------------------------------------------------------- limits and defaults


def test_smart_resize_raises_instead_of_returning_a_zero_side():
    with pytest.raises(ValueError, match="round down to 0"):
        q.smart_resize(28, 5000, 28, min_pixels=784, max_pixels=100_000)
    with pytest.raises(ValueError, match="max_pixels"):
        q.smart_resize(100, 100, 28, min_pixels=2000, max_pixels=1000)
    with pytest.raises(ValueError, match="aspect ratio"):
        q.smart_resize(10, 2500, 28)


def test_video_pixel_limits_come_from_the_message():
    # max_pixels above upstream's hidden 768-token clamp is honoured.
    assert q.video_target_size(1080, 1920, 16, {"max_pixels": 2000 * 784}) == q.smart_resize(1080, 1920, 28, 128 * 784, 2000 * 784)
    # total_pixels caps each frame at total_pixels / nframes * 2 ...
    assert q.video_pixel_limits(16, {"total_pixels": 16 * 200 * 784, "max_pixels": 768 * 784}) == (128 * 784, 400 * 784)
    # ... but never below min_pixels.
    assert q.video_pixel_limits(64, {"total_pixels": 64 * 784}) == (128 * 784, 128 * 784)
    # Defaults are DEFAULTS', in tokens times the patch factor squared.
    assert q.video_pixel_limits(2, {}) == (128 * 784, 768 * 784)
    assert q.video_pixel_limits(2, {}, image_patch_size=16)[0] == 128 * 32 * 32
    assert q.video_target_size(100, 100, 4, {"resized_height": 60, "resized_width": 90}) == (56, 84)


def test_defaults_are_frozen_and_documented():
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.DEFAULTS.fps = 1.0  # type: ignore[misc]
    source = Path(q.defaults.__file__).read_text()
    body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Defaults").body
    documented = {
        stmt.target.id
        for stmt, after in zip(body, body[1:])
        if isinstance(stmt, ast.AnnAssign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
    }
    fields = {f.name for f in dataclasses.fields(q.DEFAULTS)}
    assert fields == documented, f"fields without a docstring: {fields - documented}"
    readme = README.read_text()
    assert all(name in readme for name in fields), [name for name in fields if name not in readme]
    assert "Differences from upstream" in readme


def test_metadata_passes_to_hf_processor_and_keeps_timestamps(videos, tmp_path):
    """The upstream pattern processor(..., video_metadata=metas) must work with our extra values."""
    from versavid_r1.tiny_model import build_tiny_qwen25vl
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(build_tiny_qwen25vl(tmp_path / "tiny"))
    messages = [{"role": "user", "content": [
        {"type": "video", "video": str(videos["colours"]), "nframes": 4, **SMALL},
        {"type": "text", "text": "what colour?"},
    ]}]
    _, video_inputs, kwargs = q.process_vision_info(messages, return_video_kwargs=True, return_video_metadata=True)
    frames, meta = video_inputs[0]
    assert set(meta) <= {"fps", "frames_indices", "total_num_frames", "duration", "video_backend", "width", "height"}
    assert meta["timestamps"] == pytest.approx([i / FPS for i in meta["frames_indices"]])
    assert meta.get("sample_fps") == meta.sample_fps > 0
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    out = processor(text=[text], videos=[frames], video_metadata=[meta], return_tensors="pt", do_resize=False, **kwargs)
    t = meta["frames_indices"]
    assert out["video_grid_thw"][0, 0].item() == len(t) // 2
    # second_per_grid_ts = temporal_patch_size / sampling fps, taken from the metadata (not a 24 fps guess).
    assert out["second_per_grid_ts"][0].item() == pytest.approx(2 / meta.sample_fps, rel=1e-3)
