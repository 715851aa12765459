"""A resumed run equals the run that never stopped, step for step, on the CPU demo's path: all four problem
types scored by the two judge services (lexical backend, real HTTP on 127.0.0.1), videos prefetched in the
background, generation batches reused for two updates (`num_iterations` 2) and shuffled by whole groups, the
row guard on, the sampler in its second epoch. The oracle is the uninterrupted run itself: its logged
metrics per step (the reward of every problem type drawn, hence which types were drawn) and its final
weights, read back from disk tensor by tensor. A run resumed at its last step trains nothing and says so.

The interrupted run is the uninterrupted run's own checkpoint-5, copied into a fresh output folder: a run
killed right after saving it leaves exactly those files.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from versavid_r1.grpo import make_parser, run

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS, CHECKPOINT = 7, 5   # 8 rows, 4 prompts per generation batch, 2 updates each: 4 steps per epoch


@pytest.fixture(scope="module")
def lexical_judges():
    from versavid_r1.judges import (
        CaptionJudgeSettings, QwenJudgeSettings, create_caption_judge_app, create_qwen_judge_app,
    )
    from versavid_r1.judges.server import BackgroundServer

    with BackgroundServer(create_qwen_judge_app(QwenJudgeSettings(model="lexical", backend="lexical"))) as qwen, \
            BackgroundServer(create_caption_judge_app(CaptionJudgeSettings(backend="lexical"))) as caption:
        yield qwen.url, caption.url


def train(out: Path, model: str, data: str, judges: tuple[str, str], *extra: str):
    qwen, caption = judges
    argv = ["--config", str(ROOT / "configs/grpo_tiny_cpu.yaml"), "--model_name_or_path", model, "--data_path", data,
            "--output_dir", str(out), "--qwen_judge_url", qwen, "--caption_judge_url", caption,
            "--per_device_train_batch_size", "8", "--num_generations", "2", "--max_completion_length", "24",
            "--max_steps", str(MAX_STEPS), "--save_steps", str(CHECKPOINT), "--learning_rate", "0.01",
            "--demo_answer_bias", "10.0", "--demo_answer_text", "<think> I watch the video. </think><answer> A </answer>",
            "--report_to", "none", "--log_completions", "false", *extra]
    return run(*make_parser().parse_args_and_config(args=argv))


def step_logs(trainer) -> dict[int, dict]:
    """The metrics logged at each step: rewards per problem type, loss, KL, lengths... Left out: timings, and
    the judge client's HTTP counters, which depend on its cache of verdicts (empty in a new process; a cached
    verdict is the verdict the judge gives again)."""
    return {entry["step"]: {k: v for k, v in entry.items()
                            if "time" not in k and "per_second" not in k and not k.startswith("judge/")}
            for entry in trainer.state.log_history if "loss" in entry}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_a_resumed_run_equals_the_run_that_never_stopped(tiny_dirs, demo_jsonl, lexical_judges, tmp_path, capsys):
    model = tiny_dirs["qwen2_5_vl"]
    full = train(tmp_path / "full", model, str(demo_jsonl), lexical_judges)
    expected = step_logs(full)
    assert sorted(expected) == list(range(1, MAX_STEPS + 1))
    card = (tmp_path / "full" / "README.md").read_text()
    assert f"fine-tuned version of the local model `{model}`" in card and "[None]" not in card
    summary = capsys.readouterr().out
    assert f"log history:  {(tmp_path / 'full').resolve()}/trainer_state.json" in summary and "/runs" not in summary
    drawn = {s: sorted(k.split("/")[1] for k in log if k.endswith("/format") and k != "rewards/format/mean")
             for s, log in expected.items()}
    assert {t for types in drawn.values() for t in types} == {"MCQA", "DarkEventInfer", "MixVidQA", "caption"}

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / f"checkpoint-{CHECKPOINT}", resumed_dir / f"checkpoint-{CHECKPOINT}")
    resumed = train(resumed_dir, model, str(demo_jsonl), lexical_judges, "--resume_from_checkpoint", "true")
    got = step_logs(resumed)
    for step in range(CHECKPOINT + 1, MAX_STEPS + 1):
        assert got[step] == expected[step], f"step {step}: types drawn {drawn[step]}"
    ours, theirs = weights(resumed_dir), weights(tmp_path / "full")
    assert set(ours) == set(theirs)
    assert [k for k in theirs if not torch.equal(ours[k], theirs[k])] == []

    # Resumed at its last step: nothing more is trained, no checkpoint beyond max_steps, and it says so.
    capsys.readouterr()
    again = train(resumed_dir, model, str(demo_jsonl), lexical_judges, "--resume_from_checkpoint", "true")
    assert again.state.global_step == MAX_STEPS
    assert sorted(p.name for p in resumed_dir.glob("checkpoint-*")) == [f"checkpoint-{CHECKPOINT}",
                                                                        f"checkpoint-{MAX_STEPS}"]
    assert f"checkpoint-{MAX_STEPS} is already at max_steps {MAX_STEPS}: nothing to train" in capsys.readouterr().out
    assert [k for k in theirs if not torch.equal(weights(resumed_dir)[k], theirs[k])] == []


# --- the pieces, against their oracles ------------------------------------------------------------------------
def test_the_sampler_draws_each_epochs_order_as_an_uninterrupted_sampler_does():
    """Oracle: TRL's RepeatSampler iterated once per epoch from the start. A fresh sampler told its epoch
    (what a resumed run has) yields the same order; TRL's own restarts at epoch 0's."""
    from trl.trainer.utils import RepeatSampler

    from versavid_r1.trainer.resume import EpochRepeatSampler

    kwargs = dict(mini_repeat_count=2, batch_size=4, repeat_count=2, shuffle=True, seed=42)
    upstream = RepeatSampler(list(range(16)), **kwargs)
    orders = [list(upstream) for _ in range(4)]
    assert len({tuple(o) for o in orders}) == 4
    for epoch in range(4):
        fresh = EpochRepeatSampler.like(RepeatSampler(list(range(16)), **kwargs))
        fresh.set_epoch(epoch)
        assert list(fresh) == orders[epoch]
    counted = EpochRepeatSampler(list(range(16)), **kwargs)          # never told: counts its iterations
    assert [list(counted) for _ in range(4)] == orders
    restarted = RepeatSampler(list(range(16)), **kwargs)
    assert list(restarted) != orders[3]


def test_the_resume_state_round_trips_a_batch_with_uses_left_and_the_failed_rows(tmp_path):
    """What `ResumeMixin` writes beside rng_state.pth comes back (loaded with weights_only=True)."""
    from types import SimpleNamespace

    from versavid_r1.trainer.resume import ResumeMixin, resume_state_file
    from versavid_r1.trainer.row_guard import FailedRow, RowGuard
    from versavid_r1.trainer.video_inputs import PromptVideoInputs

    class Base:   # the Trainer's own RNG save and load (tested upstream)
        def _save_rng_state(self, output_dir):
            pass

        def _load_rng_state(self, checkpoint):
            pass

    class Trainer(ResumeMixin, Base):
        def __init__(self, step, buffered):
            self.args = SimpleNamespace(steps_per_generation=1, process_index=0)
            self.num_iterations = 2
            self._step, self._buffered_inputs = step, buffered
            self.row_guard = RowGuard(3)

    video = PromptVideoInputs([1, 2, 3], {"pixel_values_videos": torch.randn(4, 6)}, [torch.zeros(2, 3, 4, 4)], [0.5])
    batch = [{"completion_ids": torch.tensor([[5, 6]]), "videos": [video], "num_items_in_batch": torch.tensor(2)}]
    saved = Trainer(5, batch)
    saved.row_guard.skipped = {"k": FailedRow("k", "data.jsonl:3 (id 'q7')", "v/a.mp4", "VideoReadError: bad")}
    saved._save_rng_state(str(tmp_path))
    assert Path(resume_state_file(str(tmp_path), 0)).is_file()
    loaded = Trainer(0, None)
    loaded._load_rng_state(str(tmp_path))
    assert loaded._step == 5 and loaded.row_guard.skipped == saved.row_guard.skipped
    (back,) = loaded._buffered_inputs
    assert torch.equal(back["completion_ids"], batch[0]["completion_ids"])
    assert back["videos"][0].input_ids == [1, 2, 3] and back["videos"][0].second_per_grid_ts == [0.5]
    assert torch.equal(back["videos"][0].video_fields["pixel_values_videos"], video.video_fields["pixel_values_videos"])

    at_boundary = Trainer(6, batch)          # every use of the batch done: nothing to carry over
    at_boundary._save_rng_state(str(tmp_path))
    loaded._load_rng_state(str(tmp_path))
    assert loaded._step == 6 and loaded._buffered_inputs is None
