"""Test helper: one GRPO step under DeepSpeed ZeRO-3 on CPU for each given tiny model, in ONE process (DeepSpeed
starts once; test_families_training.py runs it).

    DS_ACCELERATOR=cpu python tests/ds_family_steps.py DEMO.jsonl OUT_DIR '{"qwen3_vl": MODEL_DIR, ...}'

Each model trains one step on one row of each problem type (G = 2, a rule reward with spread: no judge) with
configs/deepspeed/zero3.json, then saves its full weights to OUT_DIR/<arch>/model.safetensors and loads them back
under ZeRO-3 (as a later run starting from the trained model does). The last line is
`RESULT {arch: {step, zero_stage, types, vision_calls_with_grad, shared_fallbacks, reloaded_equal}}`.
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    data, out, dirs = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    zero3 = str(ROOT / "configs" / "deepspeed" / "zero3.json")
    from versavid_r1.grpo import _init_cpu_deepspeed

    _init_cpu_deepspeed(types.SimpleNamespace(deepspeed=zero3))  # gloo process group before any model is built
    from conftest import VIDEO
    from test_trainer import make_trainer
    from test_trainer_prefill import VisionCounter
    from versavid_r1.data import VideoConfig, load_rows

    cfg = VideoConfig(**VIDEO)
    rows = load_rows(data, cfg)
    picked = [next(r for r in rows if r["problem_type"] == t) for t in ("MCQA", "DarkEventInfer", "MixVidQA", "caption")]
    result = {}
    for arch, path in dirs.items():
        trainer = make_trainer(path, picked, cfg, out / arch, per_device_train_batch_size=8, deepspeed=zero3,
                               use_cpu=False)
        counter = VisionCounter(trainer.model)
        try:
            trainer.train()
        finally:
            counter.close()
        trainer.save_model(str(out / arch))
        result[arch] = {
            "step": trainer.state.global_step,
            "zero_stage": trainer.accelerator.state.deepspeed_plugin.zero_stage,
            "types": sorted({r["problem_type"] for r in picked}),
            "vision_calls_with_grad": sum(1 for _, grad in counter.calls if grad),
            "shared_fallbacks": sorted(trainer._shared_prefix_fallbacks),
            "reloaded_equal": reloads_equal(out / arch),
        }
    print("RESULT " + json.dumps(result), flush=True)


def reloads_equal(model_dir: Path) -> bool:
    """Whether the saved model, loaded again under ZeRO-3 (partitioned), holds exactly the saved tensors (for the
    MoE: its experts, which transformers 5.17 would load transposed; compat/zero3_transpose.py)."""
    import deepspeed
    import torch
    from safetensors.torch import load_file

    from versavid_r1.modeling import load_vl_model

    saved = load_file(str(model_dir / "model.safetensors"))
    params = dict(load_vl_model(str(model_dir), dtype="float32", attn_implementation="sdpa").named_parameters())
    names = [n for n in saved if n in params]
    with deepspeed.zero.GatheredParameters([params[n] for n in names]):
        return len(names) == len(saved) and all(torch.equal(params[n].detach(), saved[n]) for n in names)


if __name__ == "__main__":
    main()
