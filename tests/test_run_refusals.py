"""Refusals that cannot cost a run, and checks that come before anything loads (in-process, tiny model):

- a checkpoint is resumed only whole: a missing or unreadable part is named in one line (exit 2), or accepted
  with --resume_weights_only, which the log says;
- after a kill during the first save, `--resume_from_checkpoint auto` starts fresh and sets the incomplete
  checkpoint aside; a finished run without checkpoints is not overwritten silently; --overwrite_output_dir
  clears everything the earlier run wrote;
- an option outside its domain, a mistyped flag or a wrong device: one line, exit 2."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_resume import args, mcqa_data, train  # noqa: F401 - mcqa_data is a fixture
from versavid_r1.grpo import main, resolve_resume
from versavid_r1.trainer.checkpoint_parts import IncompleteCheckpoint, check_resumable
from versavid_r1.trainer.checkpoints import COMPLETE_MARKER, is_complete
from versavid_r1.trainer.fresh_start import plan_fresh_start
from versavid_r1.trainer.run_guard import OutputDirError


@pytest.fixture(scope="module")
def finished(tiny_dirs, mcqa_data, tmp_path_factory):  # noqa: F811
    """A finished one-step run with its checkpoint-1 (read only: tests copy it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(*args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, "--max_steps", "1", "--log_completions", "true"))
    assert is_complete(str(out / "checkpoint-1"))
    return out


def copy_run(src: Path, dst: Path, checkpoints: bool = True) -> Path:
    shutil.copytree(src, dst, ignore=None if checkpoints else shutil.ignore_patterns("checkpoint-*"))
    return dst


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("part, name", [("optimizer.pt", "optimizer"), ("scheduler.pt", "scheduler"),
                                        ("rng_state.pth", "RNG state"), ("trainer_state.json", "trainer state"),
                                        ("model.safetensors", "weights")])
def test_a_checkpoint_missing_a_part_is_refused_naming_it(finished, tmp_path, part, name):
    folder = copy_run(finished / "checkpoint-1", tmp_path / "checkpoint-1")
    check_resumable(str(folder))  # whole: accepted
    (folder / part).unlink()
    with pytest.raises(IncompleteCheckpoint, match=f"its {name} \\({part}\\) is missing"):
        check_resumable(str(folder))
    if name in ("weights", "trainer state"):  # never optional
        with pytest.raises(IncompleteCheckpoint):
            check_resumable(str(folder), weights_only=True)
    else:
        assert f"its {name} is not in the checkpoint" in check_resumable(str(folder), weights_only=True)


def test_a_cut_or_missing_part_stops_the_entry_before_the_model_loads(finished, tiny_dirs, mcqa_data, tmp_path,  # noqa: F811
                                                                       capsys):
    out = copy_run(finished, tmp_path / "run")
    optimizer = out / "checkpoint-1" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:-100])  # cut short by a kill or a full disk
    with pytest.raises(IncompleteCheckpoint, match=r"optimizer \(optimizer.pt\) is unreadable \(BadZipFile"):
        check_resumable(str(out / "checkpoint-1"))
    optimizer.unlink()
    with pytest.raises(SystemExit) as exc:
        main(args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, "--max_steps", "2", "--resume_from_checkpoint", "true"))
    assert exc.value.code == 2
    err = one_line_error(capsys)
    assert "checkpoint-1 cannot be resumed: its optimizer (optimizer.pt) is missing" in err
    assert "--resume_weights_only true" in err


@pytest.mark.slow
def test_a_weights_only_resume_is_accepted_and_says_so(finished, tiny_dirs, mcqa_data, tmp_path, capsys):  # noqa: F811
    out = copy_run(finished, tmp_path / "run")
    for part in ("optimizer.pt", "scheduler.pt"):
        (out / "checkpoint-1" / part).unlink()
    trainer = train(*args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, "--max_steps", "2", "--resume_from_checkpoint",
                          "true", "--resume_weights_only", "true"))
    assert trainer.state.global_step == 2
    log = capsys.readouterr().out  # the entry logs to stdout
    assert "resuming the weights of" in log and "(--resume_weights_only true): its optimizer, scheduler are not in " \
        "the checkpoint and start fresh" in log, log[-3000:]


@pytest.mark.slow
def test_after_a_kill_during_the_first_save_auto_starts_fresh(tiny_dirs, mcqa_data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    (out / "checkpoint-1").mkdir(parents=True)  # the first save was killed: no completion marker
    (out / "checkpoint-1" / "model.safetensors").write_bytes(b"cut")
    flags = args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, "--max_steps", "1")
    with pytest.raises(SystemExit):  # no flag: refused, pointing at `auto`
        main(flags)
    assert "--resume_from_checkpoint auto" in one_line_error(capsys)
    with pytest.raises(SystemExit):  # true: nothing complete to resume, pointing at `auto`
        main(flags + ["--resume_from_checkpoint", "true"])
    assert "'auto' to start fresh" in one_line_error(capsys)
    trainer = train(*flags, "--resume_from_checkpoint", "auto")
    assert trainer.state.global_step == 1 and is_complete(str(out / "checkpoint-1"))
    aside = [p for p in out.iterdir() if p.name.startswith("incomplete-checkpoint-1-")]
    assert len(aside) == 1 and (aside[0] / "model.safetensors").read_bytes() == b"cut", "set aside, not deleted"
    assert resolve_resume("true", str(out)) == str(out / "checkpoint-1")


def test_a_finished_run_without_checkpoints_is_not_overwritten(finished, tiny_dirs, mcqa_data, tmp_path, capsys):  # noqa: F811
    out = copy_run(finished, tmp_path / "run", checkpoints=False)
    before = (out / "model.safetensors").read_bytes()
    for resume in ([], ["--resume_from_checkpoint", "auto"]):
        with pytest.raises(SystemExit) as exc:
            main(args(tiny_dirs["qwen2_5_vl"], mcqa_data, out, "--max_steps", "1", *resume))
        assert exc.value.code == 2
        err = one_line_error(capsys)
        assert "holds a finished run (trainer_state.json, model.safetensors)" in err and "--overwrite_output_dir" in err
    assert (out / "model.safetensors").read_bytes() == before


def test_overwrite_clears_everything_the_earlier_run_wrote(finished, tmp_path):
    out = copy_run(finished, tmp_path / "run")
    (out / "incomplete-checkpoint-3-20260101-000000").mkdir()
    (out / "train.log").write_text("the launcher's log of this run\n")
    (out / "warm-start").mkdir()  # not written by the training run
    assert list((out / "completions").glob("*.parquet")), "the fixture run logged completion samples"
    plan_fresh_start(str(out), None, overwrite=True).apply()
    assert sorted(p.name for p in out.iterdir()) == [".versavid_train.lock", "train.log", "warm-start"]


def test_refusals_come_before_the_model_loads(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / COMPLETE_MARKER).write_text("{}")
    with pytest.raises(OutputDirError, match="--resume_from_checkpoint true"):
        plan_fresh_start(str(out), None, overwrite=False)
    assert plan_fresh_start(str(out), str(out / "checkpoint-4"), overwrite=False).remove == []


# --- options: one line, exit 2, before anything loads -------------------------------------------------------
@pytest.mark.parametrize("flags, said", [
    (["--beta", "-1"], "--beta must be >= 0, got -1.0"),
    (["--epsilon", "-0.2"], "--epsilon must be > 0, got -0.2"),
    (["--num_iterations", "0"], "--num_iterations must be >= 1, got 0"),
    (["--max_completion_length", "0"], "--max_completion_length must be >= 1, got 0"),
    (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["--judge_timeout", "0"], "--judge_timeout must be > 0, got 0.0"),
    (["--judge_retries", "-1"], "--judge_retries must be >= 0, got -1"),
    (["--judge_max_unparseable_rate", "1.5"], "--judge_max_unparseable_rate must be >= 0 and <= 1, got 1.5"),
    (["--video_read_timeout_s", "0"], "read_timeout_s must be a finite number > 0"),
    (["--max_stepz", "2"], "--max_stepz"),
    (["--use_cpu", "false", "--bf16", "true"], "Your setup doesn't support bf16/gpu"),  # on a CPU machine
])
def test_a_bad_option_is_one_line_and_exit_2(tmp_path, capsys, flags, said):
    if "--bf16" in flags:
        import torch

        if torch.cuda.is_available():
            pytest.skip("bf16 is supported on this machine")
    with pytest.raises(SystemExit) as exc:
        main(args(str(tmp_path / "no-model"), str(tmp_path / "no-data.jsonl"), tmp_path / "out", *flags))
    assert exc.value.code == 2
    assert said in one_line_error(capsys)
    assert not os.path.exists(tmp_path / "out")


# --- a full disk while writing any part of a checkpoint ----------------------------------------------------
def test_a_full_disk_on_the_optimizer_state_is_named(tiny_dirs, demo_rows, video_cfg, tmp_path, monkeypatch):
    """optimizer.pt is written by torch's own stream, which reported a full disk as `unexpected pos`; here the
    file is /dev/full, whose every write fails with ENOSPC."""
    from test_trainer import make_trainer
    from versavid_r1.trainer import Qwen25VLGRPOTrainer
    from versavid_r1.trainer.checkpoints import CheckpointError

    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:4], video_cfg, tmp_path, save_strategy="steps")
    trainer.create_optimizer_and_scheduler(num_training_steps=1)
    real = Qwen25VLGRPOTrainer._save_optimizer_and_scheduler

    def onto_a_full_disk(self, output_dir):
        os.symlink("/dev/full", os.path.join(output_dir, "optimizer.pt"))
        return real(self, output_dir)

    monkeypatch.setattr(Qwen25VLGRPOTrainer, "_save_optimizer_and_scheduler", onto_a_full_disk)
    with pytest.raises(CheckpointError, match="no space left on device while saving checkpoint .*checkpoint-0"):
        trainer._save_checkpoint(trainer.model, None)
    assert not is_complete(str(tmp_path / "out" / "checkpoint-0"))
