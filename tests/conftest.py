"""Fixtures shared by several test modules: the offline tiny models and the synthetic demo rows (built once
per session, used by the trainer tests) and a clean decoded-clip cache (the data tests)."""
from __future__ import annotations

import functools

import pytest

from versavid_r1.data import VideoConfig, clear_video_cache, load_rows

# configs/grpo_tiny_cpu.yaml is the CPU demo's learning experiment (8 generations, two updates per batch, a KL
# term, a warm-started model); tests that start from it for a short smoke run on the RANDOM tiny model replace
# those with the cheapest valid GRPO settings, and steer generation towards a well-formed answer so that
# rewards vary within a group (else every advantage, and every gradient, is 0): on a multiple-choice row whose
# right answer is A (`answer_is_a`) a completion that keeps to that text earns 1 and one that strays 0. The demo
# config keeps its random vision tower fixed; the smoke runs train every weight, as the paper's configs do.
SMOKE_ANSWER = "A"
SMOKE_GRPO = ["--num_generations", "2", "--num_iterations", "1", "--beta", "0.0", "--freeze_vision_tower", "false",
              "--demo_answer_bias", "10.0",
              "--demo_answer_text", f"<think> I watch the video. </think><answer> {SMOKE_ANSWER} </answer>"]



@functools.lru_cache(maxsize=None)
def bf16_attention() -> str:
    """The attention implementation for a bf16 training test on this CPU: "sdpa", or "eager" where torch's own
    bf16 sdpa backward cannot run. With ATEN_CPU_CAPABILITY below what the CPU has (default or avx2 on an
    AVX512-BF16 machine) torch packs for AVX512 but dispatches a kernel that refuses the packing ("pack_vnni2 is
    only supported when avx512 is supported"): a combination no real CPU has, so the test keeps its subject
    (bf16 training, its resume) and leaves sdpa to the fp32 tests."""
    import torch
    import torch.nn.functional as F

    q = torch.randn(1, 2, 64, 16, dtype=torch.bfloat16, requires_grad=True)
    try:
        F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    except RuntimeError as err:
        if "pack_vnni2" not in str(err):
            raise
        return "eager"
    return "sdpa"


def answer_is_a(row: dict) -> dict:
    """A multiple-choice row with its options reordered so that the right one comes first (letter A): the
    same question about the same video, still true of the pixels, now answered by the smoke runs' text."""
    import re

    head, _, options = row["problem"].partition("\nOptions:\n")
    texts = [re.sub(r"^[A-Z]\.\s*", "", line) for line in options.splitlines() if line.strip()]
    right = ord(re.search(r"<answer>\s*([A-Z])", row["solution"]).group(1)) - ord("A")
    texts.insert(0, texts.pop(right))
    lines = [f"{chr(ord('A') + i)}. {t}" for i, t in enumerate(texts)]
    return {**row, "problem": head + "\nOptions:\n" + "\n".join(lines), "solution": f"<answer>{SMOKE_ANSWER}</answer>"}

# Tiny video settings: 4 frames of at most 8 tokens (28x28 px each) -> 2 temporal patches.
VIDEO = dict(nframes=4, min_pixels=4 * 28 * 28, max_pixels=8 * 28 * 28)


def pytest_xdist_auto_num_workers(config):
    """`-s` (show the tests' output) runs the tests in this process: pytest.ini's `-n auto` would run them in
    worker processes, whose output pytest never shows. An explicit `-n N` still wins (xdist does the same
    for --pdb)."""
    if config.getoption("capture") == "no":
        return 0
    return None


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    from versavid_r1.tiny_model import build_tiny_qwen2vl, build_tiny_qwen25vl

    base = tmp_path_factory.getbasetemp()
    return {
        "qwen2_5_vl": str(build_tiny_qwen25vl(base / "trainer-tiny-qwen25vl", seed=0)),
        "qwen2_vl": str(build_tiny_qwen2vl(base / "trainer-tiny-qwen2vl", seed=0)),
    }


@pytest.fixture(scope="session")
def qwen3_dirs(tmp_path_factory):
    """Tiny Qwen3-VL, Qwen3-VL-MoE and Qwen3.5 dirs (about 0.3 s each), keyed by model_type."""
    from versavid_r1.tiny_model import BUILDERS

    base = tmp_path_factory.getbasetemp()
    return {arch: str(BUILDERS[arch](base / f"trainer-tiny-{arch}", seed=0))
            for arch in ("qwen3_vl", "qwen3_vl_moe", "qwen3_5")}


@pytest.fixture(scope="session")
def model_dirs(tiny_dirs, qwen3_dirs):
    """Every family's tiny dir, keyed by model_type."""
    return {**tiny_dirs, **qwen3_dirs}


def run_isolated(cmd: list[str], env: dict, timeout: float, cwd=None) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `cmd` run in its own session: a timeout kills its whole process group,
    DeepSpeed's op compiler included (which would otherwise leave its build lock behind)."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="session")
def demo_jsonl(tmp_path_factory):
    from versavid_r1.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.getbasetemp() / "trainer-demo-8", n=8, seed=0)


@pytest.fixture(scope="session")
def video_cfg():
    return VideoConfig(**VIDEO)


@pytest.fixture(scope="session")
def demo_rows(demo_jsonl, video_cfg):
    rows = load_rows(str(demo_jsonl), video_cfg)
    assert {r["problem_type"] for r in rows[:4]} == {"MCQA", "DarkEventInfer", "MixVidQA", "caption"}
    return rows


@pytest.fixture
def fresh_video_cache():
    """An empty decoded-clip cache before and after the test, so cache counts and hits are the test's own."""
    clear_video_cache()
    yield
    clear_video_cache()
