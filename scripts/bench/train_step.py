#!/usr/bin/env python
"""One GRPO training step on CPU with the tiny Qwen2.5-VL and all four problem types, split into
video (decode + processor), generation, rewards, loss (forward + backward) and the rest (optimizer,
bookkeeping), so the next bottleneck is visible.

    .venv/bin/python scripts/bench/train_step.py --quick      # G=4, 32 new tokens, 3 steps
    .venv/bin/python scripts/bench/train_step.py              # G=8, 128 new tokens, 5 steps
    .venv/bin/python scripts/bench/train_step.py --no-before  # only the step as the trainer runs it now

Each run measures the step twice in one process: "before" (TRL's plain log-prob forward, every completion
running its prompt and video; the prompt inputs built at the start of each generation) and "after" (the
shared-prefix loss and the background prefetch of the next batches' prompt inputs, the trainer's defaults).

The step is the project's real one: versavid_r1.trainer.Qwen25VLGRPOTrainer on the demo dataset
(MCQA, DarkEventInfer, MixVidQA, caption; 16 frames at 128..196 x 28x28 px as in the paper), rewarded
by the project's `versavid_reward` through `JudgeClient` against judge servers with a fixed 100 ms
service time (tests/judge_stub_server.py, as in reward_stage.py). The timings come from a subclass
that only wraps the trainer's methods with timers.

`--policy-format` (default on): a random model never writes `<think>…</think><answer>…</answer>`,
so the format gate would zero every reward before any judge is asked. The reward function therefore
sees each completion wrapped in those tags (its text as the answer), as a policy that learned the
format would write it, so every judged row reaches a judge. `--no-policy-format` scores the raw
completions. The first step is a warm-up and is not counted.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

C.add_repo_paths(include_tests=True)

PARTS = ("video", "generation", "rewards", "loss", "other")


def policy_formatted(reward):
    """The reward function seeing each completion as `<think>…</think><answer>text</answer>`."""
    import functools

    def wrap(completion):
        if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
            return [{**m, "content": wrap(m["content"])} if m.get("role") == "assistant" else m for m in completion]
        text = " ".join(str(completion).replace("<", " ").replace(">", " ").split()) or "nothing"
        return f"<think>Looking at the frames.</think><answer>{text}</answer>"

    @functools.wraps(reward)
    async def formatted(prompts=None, completions=(), **kwargs):
        return await reward(prompts=prompts, completions=[wrap(c) for c in completions], **kwargs)

    formatted.__name__ = formatted.__qualname__ = "versavid_reward"
    return formatted


def timed_trainer_class():
    """Qwen25VLGRPOTrainer with timers around the methods that make up a step (no behaviour change)."""
    from transformers import TrainerCallback

    from versavid_r1.trainer import Qwen25VLGRPOTrainer

    class Timed(Qwen25VLGRPOTrainer):
        timings: "defaultdict[int, defaultdict[str, float]]"

        def _t(self, name, fn, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.timings[self.state.global_step][name] += time.perf_counter() - t0

        def _build_video_batch(self, inputs):
            return self._t("video", super()._build_video_batch, inputs)

        def _generate_single_turn(self, *args, **kwargs):
            return self._t("generation", super()._generate_single_turn, *args, **kwargs)

        def _calculate_rewards(self, *args, **kwargs):
            return self._t("rewards", super()._calculate_rewards, *args, **kwargs)

        def _generate_and_score_completions(self, inputs):
            return self._t("generate_and_score", super()._generate_and_score_completions, inputs)

        def training_step(self, *args, **kwargs):
            return self._t("training_step", super().training_step, *args, **kwargs)

    class StepClock(TrainerCallback):
        def __init__(self, trainer):
            self.trainer, self.last = trainer, None

        def on_step_begin(self, args, state, control, **kw):
            if self.last is None:
                self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            self.trainer.timings[state.global_step - 1]["wall"] += now - self.last
            self.last = now

    return Timed, StepClock


def time_vision_tower(trainer) -> None:
    """Accumulate the vision tower's forward time per step (generation and loss passes together)."""
    visual = trainer.model.model.visual
    start: list[float] = []
    visual.register_forward_pre_hook(lambda *a: start.append(time.perf_counter()))

    def done(*a):
        trainer.timings[trainer.state.global_step]["vision_forward"] += time.perf_counter() - start.pop()

    visual.register_forward_hook(done)


def with_long_videos(rows: list[dict]) -> list[dict]:
    """The demo rows pointed at 30 s / 40 s 640x360 clips (the video_load.py benchmark's), so video
    decoding costs what it costs on real footage; the demo's own clips are 6 s at 128x96."""
    from versavid_r1.data import VIDEO_PATHS_KEY

    a, b = (str(C.long_video(s, fps=30, width=640, height=360, seed=10 + k)) for k, s in enumerate((30.0, 40.0)))
    out = []
    for row in rows:
        row = dict(row)
        pair = row["problem_type"] == "MixVidQA"
        row["video"] = row[VIDEO_PATHS_KEY] = [a, b] if pair else [a]
        if not pair:
            row["video"] = a
        if row.get("mask_span") is not None:
            row["mask_span"] = [10.0, 14.0]
        out.append(row)
    return out


def run_train_step(generations: int = 4, new_tokens: int = 32, steps: int = 3, nframes: int = 16,
                   service_ms: float = 100.0, policy_format: bool = True, long_videos: bool = True,
                   report: "C.Report | None" = None, share_prompt_loss: bool = True, prefetch: bool = True) -> dict:
    from transformers import PrinterCallback
    from trl import GRPOConfig
    from judge_stub_server import StubJudge

    from versavid_r1.data import VideoConfig, load_rows
    from versavid_r1.data.demo import make_demo_dataset
    from versavid_r1.modeling import load_processor, load_vl_model
    from versavid_r1.trainer import rows_to_dataset
    from reward_stage import project_reward

    report = report or C.Report("train step")
    model_dir = C.tiny_vl_model("tiny")
    # cache_size=0: every row is decoded once per step, as in a one-epoch run where no row repeats.
    cfg = VideoConfig(nframes=nframes, cache_size=0)
    # one epoch holds every step (4 prompts each): the background prefetch looks ahead within an epoch only
    n = max(8, 4 * (steps + 1))
    rows = load_rows(str(make_demo_dataset(C.cache_dir(f"demo-data-{n}" if n > 8 else "demo-data"), n=n, seed=0)), cfg)
    if long_videos:
        rows = with_long_videos(rows)
    Timed, StepClock = timed_trainer_class()
    with StubJudge("qwen", delay_s=service_ms / 1000) as qwen, StubJudge("caption", delay_s=service_ms / 1000) as cap:
        reward = project_reward(qwen.url, cap.url)
        args = GRPOConfig(
            output_dir=str(C.cache_dir("train-step-out")), per_device_train_batch_size=4 * generations,
            num_generations=generations, max_completion_length=new_tokens, max_steps=steps + 1, learning_rate=1e-5,
            beta=0.0, loss_type="grpo", temperature=1.0, use_cpu=True, bf16=False, report_to="none",
            save_strategy="no", logging_steps=1, seed=0, dataloader_pin_memory=False, disable_tqdm=True,
            log_completions=False)
        trainer = Timed(model=load_vl_model(model_dir, dtype="float32", attn_implementation="sdpa"),
                        reward_funcs=[policy_formatted(reward) if policy_format else reward], args=args,
                        train_dataset=rows_to_dataset(rows), processing_class=load_processor(model_dir, padding_side="left"),
                        video_config=cfg, share_prompt_loss=share_prompt_loss, prefetch_videos=prefetch)
        trainer.timings = defaultdict(lambda: defaultdict(float))
        time_vision_tower(trainer)
        trainer.add_callback(StepClock(trainer))
        trainer.remove_callback(PrinterCallback)  # the per-step log dicts would drown the report
        trainer.train()
        judge_items = len(qwen.items) + len(cap.items)
    per_step = []
    for step in sorted(trainer.timings)[1:]:  # step 0 is the warm-up
        t = trainer.timings[step]
        parts = {"video": t["video"], "generation": t["generation"], "rewards": t["rewards"],
                 "loss": t["training_step"] - t["generate_and_score"]}
        parts["other"] = max(0.0, t["wall"] - sum(parts.values()))
        parts["total"] = t["wall"]
        parts["vision_forward"] = t["vision_forward"]
        per_step.append(parts)
    med = {k: C.median([s[k] for s in per_step]) for k in (*PARTS, "total", "vision_forward")}
    f = {"generations": generations, "prompts": 4, "new_tokens": new_tokens, "steps_timed": len(per_step),
         "nframes": nframes, "service_ms": service_ms, "policy_format": policy_format, "per_step": per_step,
         "median_s": med, "judge_items": judge_items, "share_pct": {k: 100 * med[k] / med["total"] for k in PARTS}}
    report.add(f"videos: {'30 s / 40 s 640x360 clips' if long_videos else 'the demo clips (6 s, 128x96)'}, "
               "decoded once per step (no clip cache)")
    report.add(f"step: 4 prompts (one per problem type) x G={generations}, {new_tokens} new tokens, {nframes} frames, "
               f"judge service {service_ms:g} ms, policy-format rewards: {policy_format}; "
               f"{judge_items} judge items over {steps + 1} steps")
    report.add(f"shared-prefix loss: {share_prompt_loss}, background prefetch of the prompt inputs: {prefetch}; "
               f"median over {len(per_step)} steps: total {C.fmt_s(med['total'])}")
    for k in PARTS:
        report.add(f"  {k:<11} {C.fmt_s(med[k]):>10}  {f['share_pct'][k]:5.1f}%")
    report.add(f"  of which vision tower forward passes (generation + loss): "
               f"{C.fmt_s(med['vision_forward'])} ({100 * med['vision_forward'] / med['total']:.1f}% of the step)")
    return f


def main(argv=None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--generations", type=int, default=None, help="G (default 4 quick, 8 full)")
    p.add_argument("--new-tokens", type=int, default=None, help="completion length (default 32 quick, 128 full)")
    p.add_argument("--nframes", type=int, default=16)
    p.add_argument("--service-ms", type=float, default=100.0)
    p.add_argument("--policy-format", action=argparse.BooleanOptionalAction, default=True,
                   help="score completions as if wrapped in <think>/<answer> tags (see above)")
    p.add_argument("--long-videos", action=argparse.BooleanOptionalAction, default=True,
                   help="point the demo rows at 30-40 s 640x360 clips (default) instead of the 6 s demo clips")
    p.add_argument("--before", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the step as before the shared-prefix loss and the prefetch (both off), first")
    a = p.parse_args(argv)
    C.set_threads(a.threads)
    report = C.Report("One CPU training step: where the time goes")
    C.header(report, a)
    runs = {}
    for name, on in ([("before", False)] if a.before else []) + [("after", True)]:
        report.add(f"-- {name} --")
        runs[name] = run_train_step(a.generations or (4 if a.quick else 8), a.new_tokens or (32 if a.quick else 128),
                                    C.repeats_of(a, 2, 4), a.nframes, a.service_ms, a.policy_format, a.long_videos,
                                    report, share_prompt_loss=on, prefetch=on)
    f = runs["after"]
    report.data = runs
    order = sorted(PARTS, key=lambda k: f["share_pct"][k])
    for k in order:  # the largest share (the next bottleneck) last
        report.ratio(f"train_step_{k}_share", f["share_pct"][k], unit="%",
                     note=f"{C.fmt_s(f['median_s'][k])} of {C.fmt_s(f['median_s']['total'])}")
    if "before" in runs:
        before = runs["before"]["median_s"]
        report.ratio("train_step_loss_before_vs_after", before["loss"] / f["median_s"]["loss"])
        report.ratio("train_step_before_vs_after", before["total"] / f["median_s"]["total"])
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
