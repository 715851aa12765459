"""Start the Qwen2.5 judge service (DarkEventInfer 0/1/2, MixVidQA True/False; default port 5000).

    python src/qwen25_judge_service.py --model Qwen/Qwen2.5-72B-Instruct --backend vllm \
        --tensor-parallel-size 2
    python src/qwen25_judge_service.py --model path/to/tiny_lm --backend transformers --device cpu

All flags: --help. The app lives in versavid_r1.judges.qwen_app.
"""
from __future__ import annotations

import sys


def main(argv=None) -> None:
    from versavid_r1.judges import create_qwen_judge_app, qwen_settings_from_args
    from versavid_r1.judges.server import run_service

    run_service(qwen_settings_from_args(argv), create_qwen_judge_app)


if __name__ == "__main__":
    main(sys.argv[1:])
