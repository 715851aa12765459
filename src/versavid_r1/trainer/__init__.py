"""The video GRPO trainer and its launch helpers.

  Qwen25VLGRPOTrainer   TRL GRPOTrainer subclass: video through generation and the loss (grpo_trainer.py)
  ScriptArguments       the project's training options for TrlParser (args.py)
  rows_to_dataset       data rows -> the Dataset the trainer iterates (rows.py)
  preflight             data and judge checks before the model is loaded (preflight.py)
  row_guard             rows that fail to load during training: skipped, counted, replaced (row_guard.py)
  sharing               the prompt work shared by a group's completions: prefill and log-probs (sharing.py)
  video_inputs          processor inputs of video prompts (video_inputs.py)
  vllm_video            vLLM colocate requests with video (vllm_video.py)

Entry point: `python -m versavid_r1.grpo --config configs/grpo_tiny_cpu.yaml` (versavid_r1/grpo.py).
"""
from .args import ScriptArguments
from .grpo_trainer import Qwen25VLGRPOTrainer
from .rows import decode_rows, rows_to_dataset

__all__ = ["Qwen25VLGRPOTrainer", "ScriptArguments", "rows_to_dataset", "decode_rows"]
