#!/usr/bin/env python
"""Build an offline tiny random Qwen2.5-VL (or Qwen2-VL, Qwen3-VL, Qwen3-VL-MoE, Qwen3.5, or text-only Qwen2)
model directory.

    python scripts/make_tiny_qwen25vl.py --out outputs/tiny-qwen25vl
    python scripts/make_tiny_qwen25vl.py --out outputs/tiny-qwen2vl --arch qwen2_vl
    python scripts/make_tiny_qwen25vl.py --out outputs/tiny-qwen3vl --arch qwen3_vl   # or qwen3_vl_moe, qwen3_5
    python scripts/make_tiny_qwen25vl.py --out outputs/tiny-judge-lm --arch causal_lm
    python scripts/make_tiny_qwen25vl.py --out outputs/wide --hidden-size 256 --num-hidden-layers 4

The weights are random: outputs are gibberish; the model is for plumbing (tests, demo run, CPU judge).
Idempotent: an existing identical build is reused; a different one needs --overwrite.
All logic lives in versavid_r1.tiny_model; this is only the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time

from versavid_r1.tiny_model import ARCHS, TinyModelDirError, TinySpec, build_tiny, model_summary


def _flag_type(field: dataclasses.Field):
    default = field.default
    if isinstance(default, bool):
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    return int  # int fields and vocab_size (int | None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output model directory")
    ap.add_argument("--arch", choices=ARCHS, default="qwen2_5_vl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace a different tiny build at --out")
    sizes = ap.add_argument_group("size flags (TinySpec fields; default in brackets)")
    for f in dataclasses.fields(TinySpec):
        sizes.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_flag_type(f), default=None,
                           help=f"[{f.default}]")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TinySpec)
                 if getattr(args, f.name) is not None}
    t0 = time.perf_counter()
    try:
        path = build_tiny(args.out, arch=args.arch, seed=args.seed, overwrite=args.overwrite, **overrides)
    except (TinyModelDirError, ValueError) as err:
        print(f"make_tiny_qwen25vl: error: {err}", file=sys.stderr)
        return 2
    summary = model_summary(path)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["arch"] = args.arch
    summary.pop("files")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
