#!/usr/bin/env python
"""Video loading: per-sample load time of plain, DarkEventInfer and MixVidQA rows (16 frames from
30-60 s mp4s), the proxy tasks' overhead over a plain load of the same frames, MixVidQA decoding only
the sampled frames vs decoding both clips whole (the original design), how the decode cost grows
with the number of sampled frames, and the clip cache (hit vs miss).

    .venv/bin/python scripts/bench/video_load.py --quick           # 30 s + 40 s clips
    .venv/bin/python scripts/bench/video_load.py                   # 30, 45 and 60 s clips
    .venv/bin/python scripts/bench/video_load.py --backend pyav

Videos: synthetic 640x360, 30 fps H.264 (versavid_r1.video_writer.write_mp4, cached under
outputs/bench-cache/videos) made of 2-6 s shots, so x264 puts keyframes at the cuts as in edited
footage; the keyframe interval is printed because it bounds the seek cost of one sampled frame.
Every timed load is cold: `clear_video_cache()` empties the clip and metadata caches first, so the
file is opened, probed and decoded each time (the cache is measured separately).
"The same frames" for the overhead: the frame indices the proxy row's clip reports, read with
qwen_vl_utils.read_video_frames from each file (after get_video_info, as a plain load does) and
resized to the clip's size - the work a plain row with those frames costs.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def rows_for(videos: list[Path], span: tuple[float, float] = (10.0, 14.0)) -> dict[str, dict]:
    a, b = str(videos[0]), str(videos[1])
    q, s = "What happens?", "<answer>something</answer>"
    return {
        "plain": {"problem": q, "solution": s, "problem_type": "MCQA", "video": a},
        "dark_event_infer": {"problem": q, "solution": s, "problem_type": "DarkEventInfer", "video": a,
                             "mask_span": list(span)},
        "mixvidqa": {"problem": q, "solution": s, "problem_type": "MixVidQA", "video": [a, b]},
    }


def cold_load(row: dict, cfg):
    from versavid_r1.data import clear_video_cache, load_video

    clear_video_cache()
    return load_video(row, cfg)


def same_frames_load(clip, backend=None):
    """A plain load of exactly the clip's frames: per file, probe + decode those indices + resize."""
    import torch
    import qwen_vl_utils as qvu

    size = tuple(clip.frames.shape[-2:])
    decoded = {}
    for c, path in enumerate(clip.paths):
        wanted = sorted({i for i, s in zip(clip.indices, clip.sources) if s == c})
        if wanted:
            qvu.get_video_info(path, backend=backend)
            frames = qvu.resize_frames(qvu.read_video_frames(path, wanted, backend=backend), size).to(torch.uint8)
            decoded.update({(c, i): frames[k] for k, i in enumerate(wanted)})
    return torch.stack([decoded[(s, i)] for i, s in zip(clip.indices, clip.sources)])


def whole_decode_load(clip, chunk: int = 256):
    """The original MixVidQA design: decode every frame of both clips, then pick the sampled ones
    (decoded in chunks so memory stays bounded; the decode work is the same as all at once)."""
    import numpy as np
    import torch
    import qwen_vl_utils as qvu

    size = tuple(clip.frames.shape[-2:])
    picked = {}
    for c, path in enumerate(clip.paths):
        wanted = {i for i, s in zip(clip.indices, clip.sources) if s == c}
        for start, frames in _decode_all(path, chunk):
            for k in range(frames.shape[0]):
                if start + k in wanted:
                    picked[(c, start + k)] = frames[k]
    arr = np.stack([picked[(s, i)] for i, s in zip(clip.indices, clip.sources)])
    frames = torch.from_numpy(arr).permute(0, 3, 1, 2)
    return qvu.resize_frames(frames, size).to(torch.uint8)


def _decode_all(path: str, chunk: int):
    """(first index, RGB frames [n, H, W, 3]) for every frame of the file, with decord (or PyAV)."""
    try:
        import decord
    except ImportError:
        import av
        import numpy as np

        with av.open(path) as container:
            buf, start = [], 0
            for frame in container.decode(video=0):
                buf.append(frame.to_ndarray(format="rgb24"))
                if len(buf) == chunk:
                    yield start, np.stack(buf)
                    start, buf = start + chunk, []
            if buf:
                yield start, np.stack(buf)
        return
    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=0)
    for start in range(0, len(vr), chunk):
        yield start, vr.get_batch(list(range(start, min(start + chunk, len(vr))))).asnumpy()


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(intercept, slope, R^2) of least squares y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def run_video_bench(seconds=(30.0, 40.0), repeats: int = 3, nframes: int = 16, sweep=(4, 8, 16, 32),
                    backend=None, report: "C.Report | None" = None) -> dict:
    import torch

    from versavid_r1.data import VideoConfig, clear_video_cache, load_video, video_cache_info

    report = report or C.Report("video")
    videos = [C.long_video(s, fps=30, width=640, height=360, seed=10 + k) for k, s in enumerate(seconds)]
    for v in videos:
        ks = C.keyframe_stats(v)
        report.add(f"video {v.name}: {ks['frames']} frames, {ks['keyframes']} keyframes "
                   f"(mean keyframe interval {ks['mean_gop_s']:.1f} s)")
    cfg = VideoConfig(nframes=nframes, cache_size=0, backend=backend)
    rows = rows_for(videos)
    clips = {k: cold_load(r, cfg) for k, r in rows.items()}
    if clips["dark_event_infer"].indices != clips["plain"].indices:
        report.add("note: the DarkEventInfer sample moved a frame into the span; its frames differ from plain")
    if not any(clips["dark_event_infer"].masked):
        raise RuntimeError("no DarkEventInfer frame was masked: the benchmark's span misses the samples")
    for k in ("dark_event_infer", "mixvidqa"):  # the reference must produce the proxy clip's pixels
        ref = same_frames_load(clips[k], backend)
        keep = ~torch.tensor(clips[k].masked)
        if not torch.equal(ref[keep], clips[k].frames[keep]):
            raise RuntimeError(f"{k}: the same-frames reference does not reproduce the loaded frames")

    cases = {
        "plain": lambda: cold_load(rows["plain"], cfg),
        "dark_event_infer": lambda: cold_load(rows["dark_event_infer"], cfg),
        "dark_event_infer_same_frames": lambda: same_frames_load(clips["dark_event_infer"], backend),
        "mixvidqa": lambda: cold_load(rows["mixvidqa"], cfg),
        "mixvidqa_same_frames": lambda: same_frames_load(clips["mixvidqa"], backend),
    }
    times = C.interleaved(cases, repeats, warmup=1)
    whole = [C.timed(lambda: whole_decode_load(clips["mixvidqa"]))[0] for _ in range(max(1, min(3, repeats // 3)))]
    med = {k: C.median(v) for k, v in times.items()}
    med["mixvidqa_whole_decode"] = C.median(whole)
    times["mixvidqa_whole_decode"] = whole

    sweep_t: dict[int, float] = {}
    for n in sweep:
        c = VideoConfig(nframes=n, cache_size=0, backend=backend)
        sweep_t[n] = C.median([C.timed(lambda: cold_load(rows["mixvidqa"], c))[0] for _ in range(repeats)])
    a, b, r2 = linear_fit([float(n) for n in sweep], [sweep_t[n] for n in sweep])

    cached = VideoConfig(nframes=nframes, cache_size=32, backend=backend)
    miss, hit = [], []
    for _ in range(repeats):
        clear_video_cache()
        miss.append(C.timed(lambda: load_video(rows["mixvidqa"], cached))[0])
        hit.append(C.median([C.timed(lambda: load_video(rows["mixvidqa"], cached))[0] for _ in range(20)]))
    info = video_cache_info()

    f = {"seconds": list(seconds), "nframes": nframes, "repeats": repeats, "times": times, "median_s": med,
         "frame_size": list(clips["plain"].frames.shape[-2:]),
         "dei_overhead_pct": 100 * (med["dark_event_infer"] / med["plain"] - 1),
         "dei_overhead_same_frames_pct": 100 * (med["dark_event_infer"] / med["dark_event_infer_same_frames"] - 1),
         "mix_overhead_pct": 100 * (med["mixvidqa"] / med["mixvidqa_same_frames"] - 1),
         "whole_vs_sampled": med["mixvidqa_whole_decode"] / med["mixvidqa"],
         "sweep_s": sweep_t, "fit_fixed_s": a, "fit_per_frame_s": b, "fit_r2": r2,
         "cache_miss_s": C.median(miss), "cache_hit_s": C.median(hit), "cache_info": info._asdict()}
    f["cache_ratio"] = f["cache_miss_s"] / f["cache_hit_s"]
    report.add(f"{nframes} frames per sample, resized to {f['frame_size'][0]}x{f['frame_size'][1]}, cold loads, "
               f"median of {repeats}:")
    for k in cases:
        report.add(f"  {k:<30} {C.spread(times[k])}")
    report.add(f"  {'mixvidqa_whole_decode':<30} {C.spread(whole)}  (original: decode both clips whole)")
    report.add(f"DarkEventInfer overhead: {f['dei_overhead_pct']:+.1f}% vs the plain row, "
               f"{f['dei_overhead_same_frames_pct']:+.1f}% vs its same frames; MixVidQA overhead "
               f"{f['mix_overhead_pct']:+.1f}% vs its same frames")
    report.add("MixVidQA cold load vs sampled frames: " + ", ".join(f"{n}: {C.fmt_s(t)}" for n, t in sweep_t.items())
               + f"  -> fit {C.fmt_s(a)} fixed + {C.fmt_s(b)} per frame (R^2 {r2:.3f})")
    report.add(f"clip cache: miss {C.fmt_s(f['cache_miss_s'])}, hit {C.fmt_s(f['cache_hit_s'])}")
    return f


def main(argv=None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--backend", default=None, choices=("decord", "pyav"), help="video reader (default: decord)")
    p.add_argument("--nframes", type=int, default=16)
    a = p.parse_args(argv)
    C.set_threads(a.threads)
    report = C.Report("Video loading: proxy tasks, sampled-frame decoding, cache")
    C.header(report, a)
    seconds = (30.0, 40.0) if a.quick else (30.0, 45.0, 60.0)
    f = run_video_bench(seconds[:2], C.repeats_of(a, 7, 9), a.nframes, backend=a.backend, report=report)
    if not a.quick:  # the longest clip too: the sampled load should not grow with the video's length
        g = run_video_bench(seconds[1:], C.repeats_of(a, 7, 9), a.nframes, backend=a.backend, report=report)
        f = {"30_45": f, "45_60": g}
        worst = max(f.values(), key=lambda x: max(x["dei_overhead_same_frames_pct"], x["mix_overhead_pct"]))
    else:
        worst = f
    report.data = f
    report.ratio("video_cache_miss_vs_hit", worst["cache_ratio"])
    report.ratio("mixvidqa_whole_decode_vs_sampled", worst["whole_vs_sampled"])
    report.ratio("mixvidqa_decode_linear_fit_r2", worst["fit_r2"], 0.9, unit="",
                 note=f"load time = {C.fmt_s(worst['fit_fixed_s'])} + {C.fmt_s(worst['fit_per_frame_s'])} x frames")
    report.ratio("dark_event_infer_overhead", worst["dei_overhead_same_frames_pct"], 10.0, higher_is_better=False,
                 unit="%")
    report.ratio("mixvidqa_overhead", worst["mix_overhead_pct"], 10.0, higher_is_better=False, unit="%")
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
