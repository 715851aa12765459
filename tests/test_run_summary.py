"""The closing summary of a training run names the folders the loggers really wrote (not a `runs/` folder
that a wandb-only run never creates), and the model card names the local base model."""
from __future__ import annotations

from types import SimpleNamespace

from transformers.integrations import TensorBoardCallback, WandbCallback

from versavid_r1.run_summary import log_locations
from versavid_r1.trainer.model_card import name_local_base


class WandbStandIn(WandbCallback):
    def __init__(self):   # the real one needs the wandb package (the `tracking` extra)
        pass


def test_each_logger_is_named_with_the_folder_it_wrote(tmp_path):
    out = tmp_path / "run"
    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(out / "runs" / "Dec07_host")
    offline = SimpleNamespace(dir=str(tmp_path / "wandb" / "offline-run-1-abc" / "files"), url=None)

    lines = log_locations([tensorboard], out)
    assert lines[0] == f"tensorboard:  {out}/runs/Dec07_host (tensorboard --logdir {out})"
    assert lines[-1].startswith(f"log history:  {out}/trainer_state.json")

    lines = log_locations([WandbStandIn()], out, wandb_run=offline)
    assert "/runs" not in " ".join(lines) and len(lines) == 2
    assert lines[0] == (f"wandb:        offline (upload with: wandb sync {tmp_path}/wandb/offline-run-1-abc); "
                        f"local files {tmp_path}/wandb/offline-run-1-abc")
    online = SimpleNamespace(dir=offline.dir, url="https://wandb.ai/me/huggingface/runs/abc")
    assert log_locations([WandbStandIn()], out, wandb_run=online)[0].startswith(
        "wandb:        https://wandb.ai/me/huggingface/runs/abc; local files")
    assert log_locations([], out) == [lines[-1]]   # --report_to none: the log history only


def test_the_model_card_names_a_local_base_model(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("This model is a fine-tuned version of [None](https://huggingface.co/None).\n")
    assert name_local_base(str(card), "/models/warm-start")
    assert card.read_text() == "This model is a fine-tuned version of the local model `/models/warm-start`.\n"
    assert not name_local_base(str(card), "/models/warm-start")    # nothing left to replace
