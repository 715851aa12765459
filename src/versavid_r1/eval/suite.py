"""The paper's table in one command:

    python -m versavid_r1.eval --suite paper --model CKPT --data_root DIR [--output_dir DIR]
        [--benchmarks videomme mvbench ...] [--flag value ...]
    torchrun --nproc_per_node N -m versavid_r1.eval --suite paper ...      # rows shared by N processes

`--suite paper` is configs/eval/suite_paper.yaml (or give a YAML path): the benchmarks in the paper's order,
each with its protocol's evaluation YAML and the paper's numbers. Every benchmark whose converted rows
`DIR/<name>.jsonl` exist is evaluated into `OUTPUT/<name>/` (`run_eval`: resumable, one folder per
benchmark, settings recorded in each); a missing one is skipped with a line saying how to get it. Other
flags (`--nframes 8`, `--qwen_judge_url ...`, `--backend vllm`) apply to every benchmark. The model is
loaded once per process. Under torchrun each process evaluates its share of every benchmark and process 0
merges them (`eval.shard`). At the end process 0 writes `OUTPUT/results.json` and `results.md`
(`eval.results`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from versavid_r1.run_record import SOURCE_ROOT

from .benchmarks import BENCHMARKS
from .config import EvalSetupError, parse_eval_args
from .results import build_results, write_results
from .runner import run_eval
from .shard import make_barrier, merge_shards, process_group, shard_config

log = logging.getLogger(__name__)


@dataclass
class SuiteEntry:
    name: str
    config: Path
    paper: Optional[float] = None
    baseline: Optional[float] = None
    paper_note: Optional[str] = None


def suite_file(spec: str) -> Path:
    """A suite YAML path, or a suite name looked up as configs/eval/suite_<name>.yaml (here, then the repo)."""
    given = Path(spec)
    if given.suffix in (".yaml", ".yml") or given.is_file():
        if not given.is_file():
            raise EvalSetupError(f"--suite {spec}: no such file")
        return given
    for base in (Path.cwd(), SOURCE_ROOT):
        candidate = base / "configs" / "eval" / f"suite_{spec}.yaml"
        if candidate.is_file():
            return candidate
    raise EvalSetupError(f"--suite {spec}: no configs/eval/suite_{spec}.yaml (give a suite YAML path)")


def load_suite(spec: str) -> tuple[dict[str, Any], list[SuiteEntry]]:
    path = suite_file(spec)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = []
    for k, item in enumerate(data.get("benchmarks") or []):
        if item.get("name") not in BENCHMARKS:
            raise EvalSetupError(f"{path}: benchmarks[{k}]: unknown benchmark {item.get('name')!r} "
                                 f"(known: {', '.join(BENCHMARKS)})")
        config = Path(item["config"])
        entries.append(SuiteEntry(item["name"], config if config.is_absolute() else path.parent / config,
                                  item.get("paper"), item.get("baseline"), item.get("paper_note")))
    meta = {k: v for k, v in data.items() if k != "benchmarks"}
    return {**meta, "file": str(path)}, entries


def parse_suite_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m versavid_r1.eval --suite", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="'paper' (configs/eval/suite_paper.yaml) or a suite YAML")
    p.add_argument("--model", required=True, help="checkpoint to evaluate (model folder or LoRA adapter)")
    p.add_argument("--data_root", required=True, help="folder of the converted rows, <benchmark>.jsonl each")
    p.add_argument("--output_dir", "--output", default="outputs/eval/suite", help="results folder")
    p.add_argument("--benchmarks", nargs="+", default=None, metavar="NAME", help="only these benchmarks")
    p.add_argument("--shard_timeout_hours", type=float, default=24.0,
                   help="how long processes wait for each other at the end of a benchmark (torchrun)")
    return p.parse_known_args(list(argv))


SUITE_SET = ("--config", "--data_path", "--task_name", "--num_shards", "--shard_index")


def benchmark_config(entry: SuiteEntry, ns: argparse.Namespace, rest: Sequence[str], data: Path):
    clash = sorted({a.split("=")[0] for a in rest if a.split("=")[0] in SUITE_SET})
    if clash:
        raise EvalSetupError(f"{', '.join(clash)}: set by the suite for each benchmark (use a suite YAML or "
                             "--benchmarks instead)")
    argv = ["--config", str(entry.config), "--model", ns.model, "--data_path", str(data), "--data_format", "auto",
            "--output_dir", str(Path(ns.output_dir) / entry.name), "--task_name", entry.name, *rest]
    return parse_eval_args(argv)


def how_to_get(name: str, data: Path) -> str:
    bench = BENCHMARKS[name]
    return (f"skip {bench.title}: no {data}. Download: {bench.download}; then "
            f".venv/bin/python -m versavid_r1.eval.convert {name} ... --out {data} (docs/evaluation.md)")


class Generators:
    """One model per process, shared by every benchmark (each gets a generator with its own settings)."""

    def __init__(self, model=None, processor=None, out_dir: Optional[str] = None):
        self.model, self.processor, self.llm = model, processor, None
        self.out_dir = out_dir  # where vLLM's merged copy of a LoRA adapter is written once (the suite's folder)

    def get(self, cfg):
        from .generation import HFGenerator, make_generator

        if cfg.backend == "vllm":
            gen = make_generator(cfg, self.out_dir or cfg.output_dir, llm=self.llm)
            self.llm = gen.llm
            return gen
        if self.model is None:
            from .models import load_eval_model

            self.model, self.processor = load_eval_model(cfg)
        return HFGenerator(self.model, self.processor, cfg)


def _device_for(cfg, local_rank: int):
    import torch

    if cfg.device in ("", "auto") and torch.cuda.is_available():
        cfg.device = f"cuda:{local_rank}"
    return cfg


def run_suite(ns: argparse.Namespace, rest: Sequence[str], generators: Optional[Generators] = None,
              rank_world: Optional[tuple[int, int, int]] = None, barrier=None) -> Optional[dict[str, Any]]:
    """Evaluate every present benchmark (see the module docstring); the results dict on process 0, else None.

    `rank_world` and `barrier` replace torchrun's environment and the gloo barrier (tests run the shards of
    a two-process run one after the other in one process)."""
    meta, entries = load_suite(ns.suite)
    if ns.benchmarks:
        unknown = sorted(set(ns.benchmarks) - {e.name for e in entries})
        if unknown:
            raise EvalSetupError(f"--benchmarks: {', '.join(unknown)} not in the suite "
                                 f"({', '.join(e.name for e in entries)})")
        entries = [e for e in entries if e.name in ns.benchmarks]
    rank, world, local_rank = rank_world or process_group()
    barrier = barrier or make_barrier(world, ns.shard_timeout_hours)
    generators = generators or Generators(out_dir=ns.output_dir)
    outcomes = []
    for entry in entries:
        data = Path(ns.data_root) / f"{entry.name}.jsonl"
        if not data.is_file():
            if rank == 0:
                print(how_to_get(entry.name, data), file=sys.stderr)
            outcomes.append({"entry": entry, "status": "skipped", "data": str(data)})
            continue
        cfg = _device_for(benchmark_config(entry, ns, rest, data), local_rank)
        try:
            summary = run_eval(shard_config(cfg, rank, world), generator=generators.get(cfg))
        except EvalSetupError as exc:  # e.g. a judge this benchmark needs is down: the others still run
            log.error("%s: %s", entry.name, exc)
            outcomes.append({"entry": entry, "status": "error", "error": str(exc), "cfg": cfg})
            barrier()
            continue
        barrier()
        if world > 1 and rank == 0:
            summary = merge_shards(cfg, world)
        outcomes.append({"entry": entry, "status": "done", "summary": summary, "cfg": cfg})
    if rank != 0:
        return None
    results = build_results(meta, outcomes, ns, world)
    write_results(results, Path(ns.output_dir))
    return results


def suite_main(argv: Sequence[str]) -> int:
    """Exit 0 when a benchmark was scored, 1 when none was, 2 for a setup problem (see docs/evaluation.md)."""
    from .results import results_markdown

    ns, rest = parse_suite_args(argv)
    try:
        results = run_suite(ns, rest)
    except (EvalSetupError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a bad flag value for the benchmarks' configs
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if results is None:
        return 0
    print(results_markdown(results))
    print(f"results: {Path(ns.output_dir) / 'results.md'}, {Path(ns.output_dir) / 'results.json'}")
    return 0 if any(b.get("n") for b in results["benchmarks"]) else 1
