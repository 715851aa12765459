"""Start the Qwen2.5 judge service (DarkEventInfer 0/1/2, MixVidQA True/False; default port 5000).

    python src/qwen25_judge_service.py --model Qwen/Qwen2.5-72B-Instruct --backend vllm \
        --tensor-parallel-size 2
    python src/qwen25_judge_service.py --model path/to/tiny_lm --backend transformers --device cpu

All flags: --help. The app lives in versavid_r1.judges.qwen_app.
"""
from __future__ import annotations

import sys


def main(argv=None) -> None:
    # Options first, with nothing heavy imported: a bad flag exits 2 at once, before any model loads.
    from versavid_r1.judges.server import parse_or_exit
    from versavid_r1.judges.settings import qwen_settings_from_args

    settings = parse_or_exit(qwen_settings_from_args, argv, prog="qwen25_judge_service.py")
    from versavid_r1.judges.qwen_app import create_qwen_judge_app
    from versavid_r1.judges.server import run_service

    run_service(settings, create_qwen_judge_app)


if __name__ == "__main__":
    main(sys.argv[1:])
