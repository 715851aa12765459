"""Sources that used to give wrong frames or unbounded memory, on real mp4s written with PyAV:
variable frame rate (timestamps are the frames' real presentation times), display rotation (decord and
PyAV give the same, rotated frames) and full-HD sources (decoded frame by frame at the target size)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import qwen_vl_utils as q
from versavid_r1.video_writer import write_mp4

BACKENDS = ["decord", "pyav"]
# Variable frame rate: 10 frames at 2 fps (0..4.5 s), then 20 frames at 10 fps (5.0..6.9 s).
VFR_TIMES = [0.5 * i for i in range(10)] + [5.0 + 0.1 * i for i in range(20)]


def level(i: int) -> int:
    """Grey level of frame i of the VFR video (8 levels apart, so a decoded frame names its index)."""
    return 8 * i


def index_of(frame: torch.Tensor) -> int:
    return round(frame.float().mean().item() / 8)


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    frames = np.stack([np.full((48, 64, 3), level(i), np.uint8) for i in range(len(VFR_TIMES))])
    return str(write_mp4(tmp_path_factory.mktemp("vfr") / "vfr.mp4", frames, fps=10, times=VFR_TIMES))


@pytest.mark.parametrize("backend", BACKENDS)
def test_vfr_frame_times_are_the_written_presentation_times(vfr_video, backend):
    # the frame read at index i is the one written i-th
    frames = q.read_video_frames(vfr_video, list(range(30)), backend=backend)
    assert [index_of(f) for f in frames] == list(range(30))
    # fetch_video's timestamps are the sampled frames' real times, not index / average fps
    _, meta = q.fetch_video({"video": vfr_video, "nframes": 6}, return_video_metadata=True, backend=backend)
    assert meta["timestamps"] == pytest.approx([VFR_TIMES[i] for i in meta["frames_indices"]], abs=1e-3)
    info = q.get_video_info(vfr_video, backend=backend)
    assert info.total_frames == 30 and info.frame_times == pytest.approx(VFR_TIMES, abs=1e-3)
    # a time range selects the frames shown inside it: 5.0..6.0 s are frames 10..20 (not 21..25 by avg fps)
    assert q.frame_range({"video_start": 5.0, "video_end": 6.0}, 30, info.fps, info.frame_times) == (10, 20)
    assert q.frame_shown_at(4.9, info.fps, 30, info.frame_times) == 9


def test_constant_rate_video_keeps_index_over_fps(tmp_path):
    path = write_mp4(tmp_path / "cfr.mp4", np.zeros((12, 32, 32, 3), np.uint8), fps=24)
    for backend in BACKENDS:
        assert q.get_video_info(path, backend=backend).frame_times is None  # upstream's index / fps


def rotated_source():
    """Frames with a red block at the top left and a frame-dependent blue level."""
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[:, :12, :20, 0] = 250
    for i in range(4):
        frames[i, :, :, 2] = 40 * i
    return frames


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_gives_the_displayed_frames_with_both_readers(tmp_path, rotation):
    source = rotated_source()
    path = write_mp4(tmp_path / f"rot{rotation}.mp4", source, fps=8, rotation=rotation)
    # what a player shows: the stored frame turned `rotation` degrees counter-clockwise
    shown = torch.from_numpy(np.ascontiguousarray(np.rot90(source, k=rotation // 90, axes=(1, 2)))).permute(0, 3, 1, 2)
    out = {}
    for backend in BACKENDS:
        out[backend] = q.read_video_frames(path, [0, 1, 2, 3], backend=backend)
        assert out[backend].shape == shown.shape, backend
        assert (out[backend].int() - shown.int()).abs().float().mean() < 2.0, backend
        info = q.get_video_info(path, backend=backend)
        assert info.rotation == rotation and (info.height, info.width) == tuple(shown.shape[-2:])
    assert torch.equal(out["decord"], out["pyav"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_shrunk_while_decoding_equal_shrinking_them_all_at_once(vfr_video, backend):
    indices = [29, 3, 3, 0, 17]
    full = q.read_video_frames(vfr_video, indices, backend=backend)
    small = q.read_video_frames(vfr_video, indices, backend=backend, size=(28, 56))
    assert small.dtype == torch.uint8 and torch.equal(small, q.resize_frames(full, (28, 56)).to(torch.uint8))


# Peak memory of load_video (what training calls) on one clip, per reader, in a fresh process: PyAV, then
# decord. The peak is VmHWM, the high-water mark of this process's own memory map, reset before each reader
# (writing 5 to clear_refs). Not ru_maxrss: Linux carries it across exec, so a child of a large pytest
# process starts with its parent's size.
_MEASURE = """
import json, sys
from versavid_r1.data import VideoConfig, load_video
path, n = sys.argv[1], int(sys.argv[2])
row = {"problem": "q", "solution": "<answer>a</answer>", "problem_type": "caption", "video": path}
def mb(key):
    return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) / 1024
out = {}
for backend in ("pyav", "decord"):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = mb("VmRSS")
    clip = load_video(row, VideoConfig(nframes=n, backend=backend, cache_size=0))
    out[backend] = {"growth_mb": mb("VmHWM") - base, "shape": list(clip.frames.shape)}
    del clip
print(json.dumps(out))
"""


def test_full_hd_source_is_decoded_at_a_bounded_size(tmp_path):
    """20 frames of 1080p through load_video. Decoding them all and then resizing (the old way) holds every
    frame at the source size as uint8 and as float at once: 620 MB (measured: 840 MB). Shrunk a few at a
    time right after decoding, the peak is a couple of frames plus the reader's own buffers, whatever the
    number of frames (measured: decord about 250 MB, its frame pool; PyAV about 150 MB)."""
    h, w, n = 1080, 1920, 20
    ramp = (np.linspace(0, 200, h)[:, None, None] + np.linspace(0, 50, w)[None, :, None]).astype(np.uint8)
    path = write_mp4(tmp_path / "hd.mp4", (np.broadcast_to(ramp + 2 * i, (h, w, 3)) for i in range(n)), fps=24, crf=30)
    all_frames_mb = n * h * w * 3 * (1 + 4) / 2**20
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(n)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for backend, m in got.items():
        assert m["shape"][:2] == [n, 3] and m["shape"][2] * m["shape"][3] <= 196 * 784
        assert m["growth_mb"] < all_frames_mb, f"{backend}: peak grew {m['growth_mb']:.0f} MB (all frames: {all_frames_mb:.0f} MB)"
