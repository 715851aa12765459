"""Held-out, video-grounded evaluation of a training run: does the policy answer from the pixels?

`python -m versavid_r1.grpo ... --heldout_path FILE.jsonl` evaluates, after training, greedily and with the
training's own video and prompt settings, on multiple-choice questions of FILE (videos never seen in
training):

- `warm_start`: the policy training started from (`model_name_or_path`; in the CPU demo, the warm start);
- `final`: the trained policy (the run folder);
- `blind`: the trained policy with every frame of every video replaced by a constant grey clip (the clip's
  own mean intensity, so brightness is kept and every shape, colour and motion is gone);
- `shuffled`: the trained policy with the videos permuted between the questions (a cyclic permutation:
  no question keeps its own video; each keeps its text).

When the answers of the file are spread evenly over the options (the demo's are), a policy that ignores
the video scores chance in every condition; `final` above `blind` and `shuffled` is what reading the
video adds. Each accuracy gets its 95 % Wilson interval; the differences final - blind, final - shuffled
and final - warm start get Newcombe's paired interval (`versavid_r1.stats`), as every condition answers the
same questions. The result is written to `RUN_DIR/heldout.json`:
`{"warm_start": {"accuracy": A, "ci95": [LO, HI], "n": N}, "final": {...}, "blind": {...},
"shuffled": {...}, "final_minus_blind": {"difference": D, "ci95": [LO, HI], "method": ...}, ...}`,
each condition's records (completions, answers, scores) to `RUN_DIR/heldout/<condition>/` by the evaluation
runner (`versavid_r1.eval`), whose generation and scoring are used unchanged.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import re
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from versavid_r1.data.args import VideoArguments
from versavid_r1.data.config import ROW_VIDEO_OVERRIDES
from versavid_r1.heldout import HELDOUT_FILE, summarize
from versavid_r1.tasks import MCQA

log = logging.getLogger(__name__)

HELDOUT_DIR = "heldout"
# Per-row keys that travel with a row's video when the videos are permuted (sampling, pixels, clip bounds).
VIDEO_KEYS = ("video", *ROW_VIDEO_OVERRIDES)
_OPTION_LINE = re.compile(r"^\s*([A-G])\.\s", re.MULTILINE)


class HeldoutError(ValueError):
    """The held-out file cannot be evaluated (missing, a bad row, a row that is not multiple choice)."""


# ------------------------------------------------------------------ the file ------------------------------
def load_heldout_items(path: str, video: VideoArguments) -> list:
    """The rows of the held-out file as evaluation items; HeldoutError naming the first problems when a row is
    invalid or not multiple choice (accuracy needs rule-scored answers, and no judge is asked)."""
    from versavid_r1.eval import load_eval_items

    if not Path(path).is_file():
        raise HeldoutError(f"--heldout_path {path}: no such file")
    items = load_eval_items(path, "auto", video.video_config())
    problems = [f"line {it.line}: {it.error}" for it in items if not it.ok]
    problems += [f"line {it.line}: problem_type {it.problem_type!r} (held-out rows must be {MCQA})"
                 for it in items if it.ok and it.problem_type != MCQA]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise HeldoutError(f"--heldout_path {path}: {'; '.join(problems[:3])}{more}")
    if not items:
        raise HeldoutError(f"--heldout_path {path}: no rows")
    return items


def chance_accuracy(items: Sequence) -> float:
    """Expected accuracy of a policy that picks an option at random: the mean of 1 / options per question."""
    counts = [max(1, len(_OPTION_LINE.findall(it.row.get("problem", "")))) for it in items]
    return sum(1.0 / c for c in counts) / len(counts)


def cyclic_permutation(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point (Sattolo's algorithm: one cycle through every index)."""
    order = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return order


def write_shuffled(items: Sequence, out: Path, seed: int) -> Path:
    """The held-out rows with their videos permuted (`cyclic_permutation`), as a JSONL of internal rows whose
    video paths are absolute (the file may live anywhere)."""
    from versavid_r1.data.rows import VIDEO_PATHS_KEY

    donors = cyclic_permutation(len(items), seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for item, k in zip(items, donors):
            donor = items[k].row
            row = {key: value for key, value in item.row.items() if key not in VIDEO_KEYS and key != VIDEO_PATHS_KEY}
            row.update({key: donor[key] for key in VIDEO_KEYS if key in donor})
            paths = donor[VIDEO_PATHS_KEY]
            row["video"] = paths[0] if len(paths) == 1 else list(paths)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


# ------------------------------------------------------------------ the blind control ---------------------
def grey_clip(clip):
    """The clip with every frame one constant grey: the mean of all its pixels (shape and timing kept)."""
    import torch

    level = int(round(float(clip.frames.float().mean())))
    return dataclasses.replace(clip, frames=torch.full_like(clip.frames, level))


class BlindGenerator:
    """An evaluation generator (`versavid_r1.eval.generation`) whose prompts see `grey_clip`s."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def calls(self) -> int:
        return self.inner.calls

    def prepare(self, messages: list[dict], clips: Sequence[Any]):
        return self.inner.prepare(messages, [grey_clip(c) for c in clips])

    def generate(self, inputs):
        return self.inner.generate(inputs)


# ------------------------------------------------------------------ evaluation ----------------------------
@dataclasses.dataclass
class HeldoutSettings:
    """How the policies are evaluated: the training's video and prompt options, greedy decoding."""

    video: VideoArguments
    max_new_tokens: int = 256
    batch_size: int = 32
    dtype: str = "auto"
    attn_implementation: Optional[str] = None
    format_mode: str = "strict"
    seed: int = 0  # the permutation of the shuffled control


def _eval_config(settings: HeldoutSettings, model: str, data_path: str, out: Path, name: str):
    from versavid_r1.eval import EvalConfig

    video = {f.name: getattr(settings.video, f.name) for f in dataclasses.fields(VideoArguments)}
    return EvalConfig(**video, model=model, data_path=data_path, output_dir=str(out), overwrite=True,
                      task_name=f"heldout-{name}", data_format="auto", max_new_tokens=settings.max_new_tokens,
                      batch_size=settings.batch_size, do_sample=False, dtype=settings.dtype,
                      attn_implementation=settings.attn_implementation, format_mode=settings.format_mode,
                      check_judges=False, progress=False)


def _outcomes(cfg, generator, items: Sequence) -> list[bool]:
    """Run the evaluation and return, per held-out item (in file order), whether its answer was right."""
    from versavid_r1.eval import SAMPLES_FILE, run_eval

    run_eval(cfg, generator)
    records = {}
    with open(Path(cfg.output_dir) / SAMPLES_FILE, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                records[record["id"]] = record  # the last record of an id is its current one
    return [records.get(it.id, {}).get("status") == "ok" and records[it.id].get("score") == 1.0 for it in items]


@contextlib.contextmanager
def _quiet(*names: str):
    """Raise these loggers to WARNING for the duration."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def evaluate(data_path: str, start_model: str, final_model: str, run_dir: str | Path,
             settings: HeldoutSettings) -> dict[str, Any]:
    """Evaluate the four conditions (module docstring), write `RUN_DIR/heldout.json` and return its content."""
    from versavid_r1.eval.generation import make_generator

    run_dir = Path(run_dir)
    folder = run_dir / HELDOUT_DIR
    items = load_heldout_items(data_path, settings.video)
    shuffled = write_shuffled(items, folder / "shuffled.jsonl", settings.seed)
    with _quiet("versavid_r1.eval", "versavid_r1.modeling"):  # per-batch and per-load lines: the table says it all
        outcomes: dict[str, list[bool]] = {}
        cfg = _eval_config(settings, start_model, data_path, folder / "warm_start", "warm_start")
        outcomes["warm_start"] = _outcomes(cfg, make_generator(cfg, cfg.output_dir), items)
        cfg = _eval_config(settings, final_model, data_path, folder / "final", "final")
        generator = make_generator(cfg, cfg.output_dir)
        outcomes["final"] = _outcomes(cfg, generator, items)
        cfg = _eval_config(settings, final_model, data_path, folder / "blind", "blind")
        outcomes["blind"] = _outcomes(cfg, BlindGenerator(generator), items)
        cfg = _eval_config(settings, final_model, str(shuffled), folder / "shuffled", "shuffled")
        outcomes["shuffled"] = _outcomes(cfg, generator, items)
    result = summarize(outcomes)
    result.update(chance=chance_accuracy(items), data_path=str(Path(data_path).resolve()),
                  models={"warm_start": start_model, "final": final_model})
    (run_dir / HELDOUT_FILE).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result




def evaluate_trained_run(script_args, training_args, model_args, out: Path) -> None:
    """The held-out evaluation at the end of `versavid_r1.grpo` (its three argument sets), from the saved
    weights: the same code for every run, one process or many, DeepSpeed or not."""
    settings = HeldoutSettings(
        video=script_args, max_new_tokens=training_args.max_completion_length,
        batch_size=script_args.heldout_batch_size, dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation, format_mode=script_args.format_mode,
        seed=training_args.seed,
    )
    started = time.time()
    print(f"\nHeld-out evaluation ({script_args.heldout_path}) ...", flush=True)
    evaluate(script_args.heldout_path, model_args.model_name_or_path, str(out), out, settings)
    print(f"  done in {time.time() - started:.0f} s: {out}/heldout.json", flush=True)
