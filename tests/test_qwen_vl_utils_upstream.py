"""qwen_vl_utils agrees with the published qwen-vl-utils 0.0.14 on smart_resize and smart_nframes.

The upstream wheel is downloaded from the package registry into a temporary directory (once per test
session) and its vision_process.py is imported as `upstream_qwen_vl_utils`, so it never shadows ours.
The test skips only when the registry cannot be reached.
"""
from __future__ import annotations

import importlib.util
import math
import random
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import qwen_vl_utils as ours
from versavid_r1.video_writer import write_mp4

UPSTREAM = "qwen-vl-utils==0.0.14"
N_CASES = 3000
_OFFLINE_MARKERS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "Read timed out",
    "ProxyError",
    "Max retries exceeded",
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("upstream_qwen_vl_utils")
    cmd = [
        sys.executable, "-m", "pip", "download", UPSTREAM, "--no-deps", "--only-binary=:all:",
        "--dest", str(folder), "--disable-pip-version-check", "--timeout", "20", "--retries", "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        offline = [line.strip() for line in output.splitlines() if any(m in line for m in _OFFLINE_MARKERS)]
        if offline:
            pytest.skip(f"package registry unreachable, cannot download {UPSTREAM} (pip: {offline[-1][-200:]})")
        pytest.fail(f"`pip download {UPSTREAM}` failed:\n{output[-2000:]}")
    wheel = next(folder.glob("qwen_vl_utils-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("qwen_vl_utils/vision_process.py", folder)
    # Upstream imports `requests` (only for http images, unused here); stub it if it is not installed.
    if importlib.util.find_spec("requests") is None:
        monkeypatch_module.setitem(sys.modules, "requests", types.ModuleType("requests"))
    # Upstream picks its video reader at import time; make it decord (ours' default) for the
    # end-to-end comparison below.
    monkeypatch_module.setenv("FORCE_QWENVL_VIDEO_READER", "decord")
    spec = importlib.util.spec_from_file_location(
        "upstream_qwen_vl_utils", folder / "qwen_vl_utils" / "vision_process.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as e:  # noqa: BLE001 - any exception counts as "raised"
        return ("raised", type(e).__name__)


def _resize_case(rng: random.Random):
    factor = rng.choice([28, 28, 28, 32, 14, 56])
    kind = rng.random()
    if kind < 0.1:  # exact scalings: sqrt and division land on multiples of factor (float boundaries)
        a, b, s = factor * rng.randint(1, 40), factor * rng.randint(1, 40), rng.choice([2, 3, 4, 5, 8])
        if rng.random() < 0.5:
            return a * s, b * s, factor, rng.choice([None, factor**2]), a * b  # shrink to exactly a x b
        return a, b, factor, a * b * s * s, None  # grow to exactly (a*s) x (b*s)
    kind = rng.uniform(0.1, 1.0)
    if kind < 0.35:  # camera-like sizes
        h, w = rng.randint(16, 2200), rng.randint(16, 4000)
    elif kind < 0.55:  # tiny
        h, w = rng.randint(1, 80), rng.randint(1, 80)
    elif kind < 0.75:  # log-uniform up to 20k
        h, w = (int(math.exp(rng.uniform(0, math.log(20000)))) for _ in range(2))
    elif kind < 0.9:  # aspect ratio around the 200 limit
        short = rng.randint(1, 60)
        long_ = int(short * rng.uniform(150, 260))
        h, w = (short, long_) if rng.random() < 0.5 else (long_, short)
    elif kind < 0.95:  # exact multiples
        h, w = factor * rng.randint(1, 60), factor * rng.randint(1, 60)
    else:  # zero sides
        h, w = rng.choice([(0, rng.randint(1, 500)), (rng.randint(1, 500), 0), (0, 0)])
    min_pixels = max_pixels = None
    if rng.random() < 0.8:
        min_pixels = rng.choice([rng.randint(1, 512) * factor**2, rng.randint(1, 2_000_000), 4 * factor**2])
    if rng.random() < 0.8:
        max_pixels = rng.choice([rng.randint(1, 2048) * factor**2, rng.randint(1, 20_000_000), 16384 * factor**2])
    return h, w, factor, min_pixels, max_pixels


def test_smart_resize_matches_upstream(upstream):
    rng = random.Random(20260611)
    compared = raised = degenerate = 0
    for _ in range(N_CASES):
        case = _resize_case(rng)
        theirs = _outcome(upstream.smart_resize, *case)
        mine = _outcome(ours.smart_resize, *case)
        if theirs[0] == "raised":
            raised += 1
            assert mine[0] == "raised", f"upstream raised {theirs[1]} but ours returned {mine[1]} for {case}"
        elif min(theirs[1]) <= 0:
            # Upstream returns a size with a 0 side here; ours raises ValueError (documented).
            degenerate += 1
            assert mine == ("raised", "ValueError"), f"upstream returned {theirs[1]}, ours {mine} for {case}"
        else:
            compared += 1
            assert mine == theirs, f"smart_resize{case}: upstream {theirs[1]}, ours {mine}"
    assert compared >= 1000, (compared, raised, degenerate)
    assert raised >= 50 and degenerate >= 1, (compared, raised, degenerate)


def _nframes_case(rng: random.Random):
    total = rng.choice([0, 1, 2, 3, 5, rng.randint(0, 40), rng.randint(1, 600), rng.randint(1, 20000)])
    video_fps = rng.choice([0, 1, 10, 24, 25, 30, 60, 29.97, 23.976, rng.uniform(0.5, 120), rng.randint(1, 240)])
    ele = {}
    mode = rng.random()
    if mode < 0.35:
        ele["nframes"] = rng.choice([rng.randint(0, 64), rng.randint(0, 2 * total + 2), rng.uniform(0, 100), 16, 32])
    elif mode < 0.95:
        if rng.random() < 0.8:
            ele["fps"] = rng.choice([0.5, 1, 2, 4, rng.uniform(0.05, 30), rng.randint(1, 60)])
        if rng.random() < 0.5:
            ele["min_frames"] = rng.choice([1, 2, 3, 4, 8, rng.randint(0, 200), rng.uniform(0, 50)])
        if rng.random() < 0.5:
            ele["max_frames"] = rng.choice([2, 16, 32, 768, rng.randint(0, 2000), rng.uniform(0, 500)])
    else:  # both: upstream asserts, ours raises ValueError
        ele["nframes"] = rng.randint(2, 64)
        ele["fps"] = rng.uniform(0.5, 4)
    return ele, total, video_fps


def test_smart_nframes_matches_upstream(upstream):
    rng = random.Random(20260612)
    compared = raised = 0
    for _ in range(N_CASES):
        ele, total, video_fps = _nframes_case(rng)
        theirs = _outcome(upstream.smart_nframes, dict(ele), total, video_fps)
        mine = _outcome(ours.smart_nframes, dict(ele), total, video_fps)
        if theirs[0] == "raised":
            raised += 1
            assert mine[0] == "raised", f"upstream raised {theirs[1]}, ours returned {mine[1]}: {ele}, {total}, {video_fps}"
        else:
            compared += 1
            assert mine == theirs, f"smart_nframes({ele}, {total}, {video_fps}): upstream {theirs[1]}, ours {mine}"
            assert type(mine[1]) is type(theirs[1])
    assert compared >= 1000 and raised >= 100, (compared, raised)


@pytest.fixture(scope="module")
def noise_video(tmp_path_factory) -> Path:
    frames = np.random.default_rng(0).integers(0, 256, size=(37, 90, 160, 3), dtype=np.uint8)
    return write_mp4(tmp_path_factory.mktemp("up_video") / "noise.mp4", frames, fps=12)


@pytest.mark.parametrize(
    "keys",
    [
        {"nframes": 16},
        {"fps": 1.0},
        {},
        {"nframes": 8, "video_start": 1.0, "video_end": 2.5},
        {"fps": 4, "min_pixels": 16 * 784, "max_pixels": 300 * 784},
        {"nframes": 6, "resized_height": 100, "resized_width": 140},
    ],
)
def test_fetch_video_matches_upstream(upstream, noise_video, keys):
    ele = {"type": "video", "video": str(noise_video), **keys}
    (theirs, their_meta), their_fps = upstream.fetch_video(dict(ele), return_video_sample_fps=True, return_video_metadata=True)
    (mine, my_meta), my_fps = ours.fetch_video(dict(ele), return_video_sample_fps=True, return_video_metadata=True)
    assert mine.dtype == theirs.dtype == torch.float32
    assert mine.shape == theirs.shape
    assert torch.equal(mine, theirs)
    assert my_meta["frames_indices"] == list(their_meta["frames_indices"])
    assert my_meta["total_num_frames"] == their_meta["total_num_frames"]
    assert my_meta["fps"] == pytest.approx(their_meta["fps"])
    assert my_fps == pytest.approx(their_fps)


def test_process_vision_info_and_fetch_image_match_upstream(upstream, noise_video):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (123, 77, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [
        {"type": "video", "video": str(noise_video), "nframes": 4},
        {"type": "image", "image": image, "max_pixels": 50 * 784},
        {"type": "text", "text": "describe"},
    ]}]
    their_images, their_videos, their_kwargs = upstream.process_vision_info(messages, return_video_kwargs=True)
    my_images, my_videos, my_kwargs = ours.process_vision_info(messages, return_video_kwargs=True)
    assert my_kwargs.keys() == their_kwargs.keys()
    assert my_kwargs["fps"] == pytest.approx(their_kwargs["fps"])
    assert my_images[0].size == their_images[0].size
    assert np.array_equal(np.asarray(my_images[0]), np.asarray(their_images[0]))
    assert torch.equal(my_videos[0], their_videos[0])
    assert upstream.process_vision_info(messages, return_video_metadata=True, return_video_kwargs=True)[2] == \
        ours.process_vision_info(messages, return_video_metadata=True, return_video_kwargs=True)[2]
