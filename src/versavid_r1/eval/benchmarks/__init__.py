"""The paper's twelve benchmarks: each one's converter (its released files -> evaluation rows) and its
official scoring (answer rule or judge, and the benchmark's own aggregate), in the paper's table order.

    from versavid_r1.eval.benchmarks import BENCHMARKS, get_benchmark
    get_benchmark("videomme").aggregate(records)

Modules: base (the Benchmark interface, the multiple-choice case), layout (converter helpers), extract (the
benchmarks' answer rules), judge (the OpenAI-compatible benchmark judge), one module per benchmark (nextqa
holds NExT-QA and IntentQA; wrapped holds MVBench, DREAM-1K and the two proxy test sets).
"""
from __future__ import annotations

from typing import Optional

from .base import Benchmark
from .causal_vidqa import CausalVidQA
from .longvideobench import LongVideoBench
from .mmvu import MMVU
from .nextqa import IntentQA, NExTQA
from .video_holmes import VideoHolmes
from .videomme import VideoMME
from .vidcapbench import VidCapBench
from .wrapped import DarkEventInferTest, Dream1K, MixVidQATest, MVBench

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    VideoMME(), LongVideoBench(), MVBench(), MMVU(), NExTQA(), IntentQA(), CausalVidQA(), VideoHolmes(),
    Dream1K(), VidCapBench(), DarkEventInferTest(), MixVidQATest(),
)}


def get_benchmark(name: Optional[str]) -> Optional[Benchmark]:
    """The benchmark of that name, or None (a row of no known benchmark is scored by the project alone)."""
    return BENCHMARKS.get(name) if name else None


def bench_only(row: Optional[dict]) -> bool:
    """A row scored by its benchmark's judge alone (no project reward applies to it)."""
    return bool(((row or {}).get("bench") or {}).get("only"))


__all__ = ["BENCHMARKS", "Benchmark", "bench_only", "get_benchmark"]
