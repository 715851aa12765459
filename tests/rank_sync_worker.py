"""Run by tests/test_rank_sync.py under `torchrun --nproc_per_node 2` (gloo, CPU): one Qwen25VLGRPOTrainer per rank.

1. The generation path is chosen together: rank 0's batch suits the shared prefill (G copies of each prompt in
   a row), rank 1's does not (rows interleaved); both must take TRL's path. Each rank prints how many videos
   its vision tower encoded during generation (`videos=N`).
2. A video that fails to load on rank 1 only: both ranks skip the row (the row guard shares failures) and go
   on; each prints the rows it skipped.
3. Building the batch fails on rank 1 only, outside any row (a bug, memory), after the rows loaded: every rank must stop with rank 1's
   error, at once.

Usage: rank_sync_worker.py MODEL_DIR DATA_JSONL OUTPUT_DIR
"""
from __future__ import annotations

import os
import sys

import torch

from versavid_r1.data import VideoConfig, load_rows, load_video
from versavid_r1.trainer import Qwen25VLGRPOTrainer, rows_to_dataset

LOADER_ERROR = "cannot decode the clip of this row (rank 1 only)"
BATCH_ERROR = "building the batch failed (rank 1 only)"


def main(model_dir: str, data: str, out: str) -> None:
    from transformers import AutoProcessor
    from trl import GRPOConfig

    from versavid_r1.modeling import load_vl_model

    rank = int(os.environ["RANK"])
    cfg = VideoConfig(nframes=4, min_pixels=4 * 28 * 28, max_pixels=8 * 28 * 28)
    fail = {"now": False}

    def loader(row):
        if fail["now"] and rank == 1 and row["id"] == "demo-0000":
            raise RuntimeError(LOADER_ERROR)
        return [load_video(row, cfg)]

    args = GRPOConfig(output_dir=out, per_device_train_batch_size=4, num_generations=2, max_completion_length=4,
                      max_steps=1, beta=0.0, use_cpu=True, bf16=False, report_to="none", save_strategy="no", seed=0,
                      dataloader_pin_memory=False)
    trainer = Qwen25VLGRPOTrainer(
        model=load_vl_model(model_dir, dtype="float32", attn_implementation="sdpa"),
        reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
        train_dataset=rows_to_dataset(load_rows(data, cfg)[:2]),
        processing_class=AutoProcessor.from_pretrained(model_dir, padding_side="left"),
        video_config=cfg, video_loader=loader,
    )
    visual = trainer.model.model.visual
    encoded = []
    hook = visual.register_forward_hook(lambda m, a, kw, o: encoded.append(int(kw["grid_thw"].shape[0])),
                                        with_kwargs=True)
    ds = trainer.train_dataset
    batch = [ds[i] for i in ((0, 0, 1, 1) if rank == 0 else (0, 1, 0, 1))]
    with torch.no_grad():
        trainer._generate_and_score_completions(batch)
    hook.remove()
    print(f"rank={rank} videos={sum(encoded)}", flush=True)
    fail["now"] = True
    trainer._generate_and_score_completions(batch)
    skipped = ",".join(f.name.split()[0].rsplit("/", 1)[-1] for f in trainer.row_guard.skipped.values())
    print(f"rank={rank} skipped={skipped}", flush=True)
    if rank == 1:  # fails after the row guard's own collective, as a bug in building the batch would
        prepare = trainer.row_guard.prepare

        def broken(*args, **kwargs):
            prepare(*args, **kwargs)
            raise RuntimeError(BATCH_ERROR)

        trainer.row_guard.prepare = broken
    trainer._generate_and_score_completions(batch)
    print(f"rank={rank} went on after the failure", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
