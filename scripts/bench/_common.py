"""Shared helpers of the benchmark scripts: timing with medians, RATIO lines, machine description,
the cached inputs every benchmark builds (tiny models, long synthetic videos), and TRL-style
generation inputs.

Every benchmark measures this project and a faithful re-creation of the original design side by
side in one process, repeats both (interleaved, so drift of a shared machine hits both alike) and
reports medians. The last lines a script prints are `RATIO name = X (target ...) PASS|MISS`.

Nothing heavy is imported at module level: gpu_step.py runs on a GPU machine that may lack parts of
the CPU stack, and the tests import every script quickly.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "VERSAVID_BENCH_CACHE"


# ------------------------------------------------------------------ paths ------------------------
def add_repo_paths(include_tests: bool = False) -> None:
    """Make the project importable without an install (the GPU machine gets only the working tree)."""
    paths = [REPO_ROOT / "src", REPO_ROOT / "qwen-vl-utils" / "src"]
    if include_tests:
        paths.append(REPO_ROOT / "tests")
    for p in reversed(paths):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def cache_dir(sub: str = "") -> Path:
    """Where built inputs are kept between runs: $VERSAVID_BENCH_CACHE or outputs/bench-cache."""
    root = Path(os.environ.get(CACHE_ENV) or REPO_ROOT / "outputs" / "bench-cache")
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------ statistics -------------------
def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def fmt_s(seconds: float) -> str:
    """Seconds in a readable unit (µs, ms or s)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def spread(values: Sequence[float]) -> str:
    """`median (min..max, n=K)` of timings."""
    return f"{fmt_s(median(values))} (min {fmt_s(min(values))}, max {fmt_s(max(values))}, n={len(values)})"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleaved(cases: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every case `repeats` times, alternating cases within each round (a noisy machine slows
    all cases of a round alike), after `warmup` untimed rounds. Returns seconds per case."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            out[name].append(timed(fn)[0])
    return out


# ------------------------------------------------------------------ reporting --------------------
@dataclass
class Ratio:
    """A measured ratio and its target. `higher_is_better=False` for overheads and costs."""

    name: str
    value: float
    target: Optional[float] = None
    higher_is_better: bool = True
    unit: str = "x"
    note: str = ""

    @property
    def passed(self) -> Optional[bool]:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def line(self) -> str:
        val = f"{self.value:.1f}%" if self.unit == "%" else f"{self.value:.2f}{self.unit}"
        if self.target is None:
            tgt, verdict = "(no target)", "INFO"
        else:
            op = ">=" if self.higher_is_better else "<="
            t = f"{self.target:g}%" if self.unit == "%" else f"{self.target:g}{self.unit}"
            tgt, verdict = f"(target {op} {t})", "PASS" if self.passed else "MISS"
        note = f"  # {self.note}" if self.note else ""
        return f"RATIO {self.name} = {val} {tgt} {verdict}{note}"


@dataclass
class Report:
    """What a benchmark prints: a header, result lines, then the RATIO lines last."""

    title: str
    lines: list[str] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def ratio(self, *args: Any, **kwargs: Any) -> Ratio:
        r = Ratio(*args, **kwargs)
        self.ratios.append(r)
        return r

    def finish(self, json_path: Optional[str] = None) -> int:
        """Print the ratios (headline last) and optionally write everything as JSON. Exit code 0."""
        print(flush=True)
        for r in self.ratios:
            print(r.line(), flush=True)
        if json_path:
            payload = {"title": self.title, "machine": describe_machine(), "data": self.data,
                       "ratios": [{**r.__dict__, "passed": r.passed} for r in self.ratios]}
            Path(json_path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        return 0


def base_parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark has: --quick, --repeats, --json."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (under a minute here)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: 3 quick, 5 full)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine, 2 spinning intra-op "
                        "threads make timings swing 10x when another process runs; 0 = torch's default)")
    return p


def set_threads(n: int) -> None:
    """torch intra-op threads for this process (0 leaves torch's default)."""
    if n and n > 0:
        import torch

        torch.set_num_threads(n)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def repeats_of(args: argparse.Namespace, quick: int = 3, full: int = 5) -> int:
    n = args.repeats if args.repeats is not None else (quick if args.quick else full)
    if n < 1:
        raise SystemExit("--repeats must be >= 1")
    return n


# ------------------------------------------------------------------ machine ----------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def describe_machine() -> str:
    """One line: CPU, cores usable by this process, memory, GPU, torch/transformers versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = _memory_gib()
    parts = [f"{cores} cores ({_cpu_model()})", f"{mem:.0f} GiB RAM" if mem else "RAM unknown"]
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            parts.append(f"GPU {props.name} ({props.total_memory / 1024**3:.0f} GiB)")
        else:
            parts.append("no GPU")
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        parts.append("torch missing")
    try:
        import transformers

        parts.append(f"transformers {transformers.__version__}")
    except ImportError:
        pass
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def header(report: Report, args: argparse.Namespace, extra: str = "") -> None:
    report.add(f"== {report.title} ==")
    report.add(f"machine: {describe_machine()}")
    report.add(f"mode: {'quick' if getattr(args, 'quick', False) else 'full'}{extra}")


# ------------------------------------------------------------------ inputs -----------------------
# Sizes of the CPU models used by the benchmarks (versavid_r1.tiny_model.TinySpec overrides).
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {},  # the project's tiny model: hidden 64, 2 layers, about 0.3 M parameters
    "small": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vision_hidden_size": 64, "vision_intermediate_size": 128},
}


def tiny_vl_model(size: str = "tiny", arch: str = "qwen2_5_vl") -> Path:
    """A cached random model directory of the given size and family (`arch`: a tiny builder's; built offline in
    seconds)."""
    from versavid_r1.tiny_model import BUILDERS

    if size not in MODEL_SIZES:
        raise SystemExit(f"unknown model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
    name = "qwen25vl" if arch == "qwen2_5_vl" else arch  # the cache folder of earlier runs stays valid
    return BUILDERS[arch](cache_dir() / f"{name}-{size}", seed=0, **MODEL_SIZES[size])


def tiny_judge_lm() -> Path:
    from versavid_r1.tiny_model import build_tiny_causal_lm

    return build_tiny_causal_lm(cache_dir() / "judge-lm-tiny", seed=0)


def _shot_frames(seconds: float, fps: float, width: int, height: int, seed: int) -> Iterable["Any"]:
    """Frames of a synthetic video made of shots of 2-6 s (moving gradient + a moving block, new
    colours each shot). Shot cuts make x264 insert keyframes like real edited footage does, so the
    seek cost per sampled frame is bounded by the shot length, as in real videos."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = int(round(seconds * fps))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    i = 0
    while i < total:
        shot = min(total - i, int(rng.uniform(2.0, 6.0) * fps))
        base = rng.uniform(30, 220, size=3)
        tilt = rng.uniform(-0.6, 0.6, size=2)
        speed = rng.uniform(-3, 3, size=2)
        box = rng.uniform(0, 255, size=3)
        for k in range(shot):
            grad = (xx * tilt[0] + yy * tilt[1] + k * 2.0) % 64
            frame = np.clip(base[None, None, :] + grad[..., None], 0, 255).astype(np.uint8)
            cx = int((width / 2 + speed[0] * k) % width)
            cy = int((height / 2 + speed[1] * k) % height)
            frame[max(0, cy - height // 8):cy + height // 8, max(0, cx - width // 8):cx + width // 8] = box
            yield frame
        i += shot


def long_video(seconds: float, fps: float = 30.0, width: int = 640, height: int = 360, seed: int = 0) -> Path:
    """A cached synthetic H.264 mp4 (versavid_r1.video_writer.write_mp4) of the given length."""
    from versavid_r1.video_writer import write_mp4

    path = cache_dir("videos") / f"shots-{seconds:g}s-{fps:g}fps-{width}x{height}-seed{seed}.mp4"
    if not path.is_file() or path.stat().st_size == 0:
        tmp = path.with_suffix(".tmp.mp4")
        write_mp4(tmp, _shot_frames(seconds, fps, width, height, seed), fps=fps)
        os.replace(tmp, path)
    return path


def keyframe_stats(path: Path) -> dict[str, float]:
    """Frames, keyframes and mean keyframe interval (seconds) of an mp4, read with PyAV."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        frames = keys = 0
        for packet in c.demux(stream):
            if packet.size == 0:
                continue
            frames += 1
            keys += bool(packet.is_keyframe)
    return {"frames": frames, "keyframes": keys, "fps": fps,
            "mean_gop_s": frames / max(keys, 1) / fps}


# ------------------------------------------------------------------ generation -------------------
def import_trainer_module(module: str):
    """versavid_r1.trainer.<module> (video_inputs, shared_prefix, shared_prefill). Loaded from its file when
    the package's __init__ cannot be imported (it imports TRL and datasets, which the GPU machine may lack);
    these modules need only torch and transformers, so loading one alone is safe."""
    import importlib

    import versavid_r1  # noqa: F401  (light; whatever it sets up for transformers applies here too)

    try:
        return importlib.import_module(f"versavid_r1.trainer.{module}")
    except Exception:  # ImportError, or a TRL that does not match this transformers
        import importlib.util

        name = f"versavid_r1_trainer_{module}"
        if name in sys.modules:
            return sys.modules[name]
        path = REPO_ROOT / "src" / "versavid_r1" / "trainer" / f"{module}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
        return loaded


def import_video_inputs():
    """versavid_r1.trainer.video_inputs (see `import_trainer_module`)."""
    return import_trainer_module("video_inputs")


def generate_inputs(prompt_ids: list[list[int]], fields: dict[str, Any], pad_id: int, device: Any = "cpu") -> dict:
    """`model.generate` keyword arguments from `collate_generation_fields` output, built the way
    TRL's `_generate_single_turn` does it (left padding of ids, attention mask and per-token fields)."""
    import torch

    width = max(len(ids) for ids in prompt_ids)

    def left_pad(rows: list[list[int]], value: int) -> "torch.Tensor":
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        return out

    inputs: dict[str, Any] = {"input_ids": left_pad(prompt_ids, pad_id),
                              "attention_mask": left_pad([[1] * len(r) for r in prompt_ids], 0)}
    for key, value in fields.items():
        inputs[key] = left_pad(value, 0) if isinstance(value, list) else value
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
